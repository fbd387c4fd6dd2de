// ConnectionPool: reusable side-channel connections per peer address. acquire() hands out an idle
// connection (or connects a new one within the timeout); release() returns it unless it is broken.
// Thread-safe. Used by the tcp agent (reads), notifications and disagg's handshakes.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "transfer/frame_connection.h"

namespace tandem {

class ConnectionPool {
 public:
  explicit ConnectionPool(size_t max_idle_per_peer = 8) : max_idle_per_peer_(max_idle_per_peer) {}

  Result<std::unique_ptr<FrameConnection>> acquire(const std::string& host, int port, std::chrono::milliseconds connect_timeout);
  void release(const std::string& host, int port, std::unique_ptr<FrameConnection> conn);
  // Drops idle connections to a peer (e.g. after it restarted).
  void forget(const std::string& host, int port);
  void clear();

  // One request/reply exchange on a pooled connection. A connection that fails is discarded; if a
  // reused (possibly stale) connection fails before anything was received the exchange is retried once
  // on a fresh one.
  Result<Frame> request(const std::string& host, int port, uint16_t type, std::string_view payload,
                        std::chrono::milliseconds timeout, uint32_t max_reply_payload = kDefaultMaxFramePayload);

 private:
  std::string key(const std::string& host, int port) const { return host + ":" + std::to_string(port); }
  size_t max_idle_per_peer_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<FrameConnection>>> idle_;
};

// Sends a kNotify frame and waits for the peer's acknowledgement.
Status send_notification(ConnectionPool& pool, const std::string& host, int port, std::string_view message,
                         std::chrono::milliseconds timeout);

}  // namespace tandem
