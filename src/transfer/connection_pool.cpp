// ConnectionPool (see connection_pool.h).
#include "transfer/connection_pool.h"

namespace tandem {

Result<std::unique_ptr<FrameConnection>> ConnectionPool::acquire(const std::string& host, int port,
                                                                 std::chrono::milliseconds connect_timeout) {
  {
    std::lock_guard lock(mu_);
    auto it = idle_.find(key(host, port));
    if (it != idle_.end() && !it->second.empty()) {
      auto conn = std::move(it->second.back());
      it->second.pop_back();
      return conn;
    }
  }
  return FrameConnection::connect(host, port, connect_timeout);
}

void ConnectionPool::release(const std::string& host, int port, std::unique_ptr<FrameConnection> conn) {
  if (!conn || conn->broken()) return;
  std::lock_guard lock(mu_);
  auto& v = idle_[key(host, port)];
  if (v.size() < max_idle_per_peer_) v.push_back(std::move(conn));
}

void ConnectionPool::forget(const std::string& host, int port) {
  std::lock_guard lock(mu_);
  idle_.erase(key(host, port));
}

void ConnectionPool::clear() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

Result<Frame> ConnectionPool::request(const std::string& host, int port, uint16_t type, std::string_view payload,
                                      std::chrono::milliseconds timeout, uint32_t max_reply_payload) {
  TimePoint deadline = Clock::now() + timeout;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return DeadlineExceededError("request to {}:{} timed out", host, port);
    bool reused = false;
    std::unique_ptr<FrameConnection> conn;
    {
      std::lock_guard lock(mu_);
      auto it = idle_.find(key(host, port));
      if (it != idle_.end() && !it->second.empty()) {
        conn = std::move(it->second.back());
        it->second.pop_back();
        reused = true;
      }
    }
    if (!conn) {
      TANDEM_ASSIGN_OR_RETURN(conn, FrameConnection::connect(host, port, left));
    }
    Status sent = conn->send_frame(type, payload, deadline);
    if (!sent.ok()) {
      if (reused) continue;  // a stale pooled connection: retry on a fresh one
      return sent;
    }
    auto reply = conn->recv_frame(deadline, max_reply_payload);
    if (!reply.ok()) {
      if (reused && reply.status().code() == StatusCode::kUnavailable) continue;
      return reply.status();
    }
    release(host, port, std::move(conn));
    if (reply->type == frame_type::kError) return decode_error_payload(reply->payload);
    return reply;
  }
  return UnavailableError("request to {}:{} failed on a fresh connection", host, port);
}

Status send_notification(ConnectionPool& pool, const std::string& host, int port, std::string_view message,
                         std::chrono::milliseconds timeout) {
  WireWriter w;
  w.put_string(message);
  TANDEM_ASSIGN_OR_RETURN(Frame reply, pool.request(host, port, frame_type::kNotify, w.data(), timeout));
  if (reply.type != frame_type::kAck) return InternalError("unexpected reply type {} to a notification", reply.type);
  return Status::Ok();
}

}  // namespace tandem
