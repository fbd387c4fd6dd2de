// FrameConnection: one TCP connection of the side channel, carrying frames (wire_frame.h) and raw byte
// runs (tcp-transport read payloads). The socket is non-blocking and every operation takes a deadline;
// long operations also watch an optional cancel flag (checked at least every 50 ms), so no caller can
// hang on a dead or stalled peer. Not thread-safe: one user at a time (ConnectionPool hands them out).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "transfer/wire_frame.h"

namespace tandem {

class FrameConnection {
 public:
  // Connects to host:port within `timeout` (name resolution included).
  static Result<std::unique_ptr<FrameConnection>> connect(const std::string& host, int port,
                                                          std::chrono::milliseconds timeout);
  // Takes ownership of a connected socket (from accept).
  FrameConnection(int fd, std::string peer_name);
  ~FrameConnection();
  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;

  Status send_frame(uint16_t type, std::string_view payload, TimePoint deadline);
  Status send_bytes(const void* data, size_t n, TimePoint deadline, const std::atomic<bool>* cancel = nullptr);
  Result<Frame> recv_frame(TimePoint deadline, uint32_t max_payload, const std::atomic<bool>* cancel = nullptr);
  Status recv_bytes(void* data, size_t n, TimePoint deadline, const std::atomic<bool>* cancel = nullptr);
  // Waits until data (or EOF) is readable. Returns kDeadlineExceeded / kAborted (cancel set).
  Status wait_readable(TimePoint deadline, const std::atomic<bool>* cancel = nullptr);

  // send_frame + recv_frame; a kError reply becomes its Status.
  Result<Frame> request(uint16_t type, std::string_view payload, TimePoint deadline,
                        uint32_t max_reply_payload = kDefaultMaxFramePayload);

  // Unblocks any operation in progress (from another thread) and makes the connection broken.
  void shutdown();
  // After any I/O error the stream position is unknown: the connection must not be reused.
  bool broken() const { return broken_.load(); }
  void mark_broken() { broken_ = true; }
  const std::string& peer_name() const { return peer_name_; }

 private:
  Status wait_io(bool for_write, TimePoint deadline, const std::atomic<bool>* cancel);
  Status fail(Status st) {
    broken_ = true;
    return st;
  }
  int fd_ = -1;
  std::string peer_name_;
  std::atomic<bool> broken_{false};
};

}  // namespace tandem
