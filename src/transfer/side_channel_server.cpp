// SideChannelServer: accept loop, per-connection frame loop and dispatch (see side_channel_server.h).
#include "transfer/side_channel_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"

namespace tandem {

Result<std::unique_ptr<SideChannelServer>> SideChannelServer::start(const SideChannelOptions& options) {
  if (options.port < 0 || options.port > 65535) return InvalidArgumentError("side channel port {} out of range", options.port);
  std::unique_ptr<SideChannelServer> s(new SideChannelServer(options));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(options.host.c_str(), std::to_string(options.port).c_str(), &hints, &res);
  if (rc != 0) return InvalidArgumentError("side channel host '{}': {}", options.host, gai_strerror(rc));
  Status last = UnavailableError("no address to listen on for '{}'", options.host);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
      last = UnavailableError("cannot listen on {}:{}: {}", options.host, options.port, std::strerror(errno));
      ::close(fd);
      continue;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    s->port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    s->listen_fd_ = fd;
    break;
  }
  freeaddrinfo(res);
  if (s->listen_fd_ < 0) return last;
  s->accept_thread_ = std::thread([srv = s.get()] { srv->accept_loop(); });
  return s;
}

SideChannelServer::~SideChannelServer() { stop(); }

void SideChannelServer::stop() {
  if (stopping_.exchange(true)) {
    if (accept_thread_.joinable()) accept_thread_.join();
    return;
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  std::list<ConnThread> conns;
  {
    std::lock_guard lock(conns_mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) c.conn->shutdown();
  for (auto& c : conns) {
    if (c.thread.joinable()) c.thread.join();
  }
}

void SideChannelServer::set_handler(uint16_t type, Handler handler) {
  std::unique_lock lock(handlers_mu_);
  handlers_[type] = std::move(handler);
}

void SideChannelServer::remove_handler(uint16_t type) {
  std::unique_lock lock(handlers_mu_);
  handlers_.erase(type);
}

std::vector<std::string> SideChannelServer::take_notifications() {
  std::lock_guard lock(notify_mu_);
  return std::exchange(notifications_, {});
}

void SideChannelServer::set_notification_callback(std::function<void()> callback) {
  std::lock_guard lock(notify_mu_);
  notification_callback_ = std::move(callback);
}

void SideChannelServer::reap_finished_locked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void SideChannelServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, 100);
    if (pr <= 0) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), serv, sizeof(serv),
                NI_NUMERICHOST | NI_NUMERICSERV);
    auto conn = std::make_shared<FrameConnection>(fd, fmt::format("{}:{}", host, serv));
    std::lock_guard lock(conns_mu_);
    reap_finished_locked();
    if (stopping_ || static_cast<int>(conns_.size()) >= options_.max_connections) {
      TLOG_WARN("side channel: refusing connection from {} ({} open)", conn->peer_name(), conns_.size());
      (void)conn->send_frame(frame_type::kError,
                             encode_error_payload(ResourceExhaustedError("side channel connection limit reached")),
                             Clock::now() + std::chrono::milliseconds(200));
      continue;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    conns_.push_back(ConnThread{conn, std::thread([this, conn, done] {
                                  serve_connection(conn);
                                  done->store(true);
                                }),
                                done});
  }
}

void SideChannelServer::serve_connection(std::shared_ptr<FrameConnection> conn) {
  const auto far_future = Clock::now() + std::chrono::hours(24 * 365);
  while (!stopping_ && !conn->broken()) {
    // Idle between frames for as long as the peer likes; once a frame starts it must finish in time.
    Status st = conn->wait_readable(far_future, &stopping_);
    if (!st.ok()) break;
    auto frame = conn->recv_frame(Clock::now() + options_.io_timeout, options_.max_payload, &stopping_);
    if (!frame.ok()) {
      if (frame.status().code() == StatusCode::kInvalidArgument || frame.status().code() == StatusCode::kFailedPrecondition) {
        ++frames_rejected_;
        TLOG_WARN("side channel: rejected frame from {}: {}", conn->peer_name(), frame.status().to_string());
        // Best effort: tell the peer why before closing (the stream cannot be resynchronised; the
        // socket has room for this small frame, so the send does not wait).
        (void)conn->send_frame(frame_type::kError, encode_error_payload(frame.status()),
                               Clock::now() + std::chrono::milliseconds(100));
      }
      break;
    }
    Status handled = dispatch(*frame, *conn);
    if (!handled.ok() && !conn->broken()) {
      Status sent = conn->send_frame(frame_type::kError, encode_error_payload(handled), Clock::now() + options_.io_timeout);
      if (!sent.ok()) break;
    }
  }
  conn->shutdown();
}

Status SideChannelServer::dispatch(const Frame& frame, FrameConnection& conn) {
  if (frame.type == frame_type::kNotify) {
    WireReader r(frame.payload);
    std::string message;
    TANDEM_RETURN_IF_ERROR(r.read_string(&message, "notification", options_.max_payload));
    TANDEM_RETURN_IF_ERROR(r.expect_end("notification"));
    std::function<void()> callback;
    {
      std::lock_guard lock(notify_mu_);
      if (notifications_.size() >= options_.max_pending_notifications) {
        return ResourceExhaustedError("notification queue full ({} pending)", notifications_.size());
      }
      notifications_.push_back(std::move(message));
      callback = notification_callback_;
    }
    if (callback) callback();
    return conn.send_frame(frame_type::kAck, {}, Clock::now() + options_.io_timeout);
  }
  Handler handler;
  {
    std::shared_lock lock(handlers_mu_);
    auto it = handlers_.find(frame.type);
    if (it != handlers_.end()) handler = it->second;
  }
  if (!handler) {
    ++frames_rejected_;
    return InvalidArgumentError("unknown side channel message type {}", frame.type);
  }
  return handler(frame, conn);
}

}  // namespace tandem
