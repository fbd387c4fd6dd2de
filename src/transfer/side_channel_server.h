// SideChannelServer: the one TCP listener of an engine. It accepts connections (one thread each, a
// bounded number), reads frames and dispatches them by type to registered handlers: the tcp agent
// serves reads on it, disagg answers handshakes and lease claims on it, and kNotify frames land in a
// notification queue that the owner drains. Malformed frames get an error reply and the connection is
// closed; a stalled peer times out; stop() unblocks and joins every thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "transfer/frame_connection.h"

namespace tandem {

struct SideChannelOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port (see port())
  uint32_t max_payload = kDefaultMaxFramePayload;
  int max_connections = 512;
  std::chrono::milliseconds io_timeout{30000};  // a frame, once started, must arrive within this
  size_t max_pending_notifications = 1 << 16;
};

class SideChannelServer {
 public:
  // A handler answers `request` on `conn` (exactly one reply frame, optionally followed by raw bytes the
  // peer expects). Returning an error instead makes the server send it as a kError frame. If the
  // handler leaves the connection broken (e.g. a failure mid-stream) the server closes it.
  using Handler = std::function<Status(const Frame& request, FrameConnection& conn)>;

  static Result<std::unique_ptr<SideChannelServer>> start(const SideChannelOptions& options);
  ~SideChannelServer();
  SideChannelServer(const SideChannelServer&) = delete;
  SideChannelServer& operator=(const SideChannelServer&) = delete;

  const std::string& host() const { return options_.host; }
  int port() const { return port_; }
  const SideChannelOptions& options() const { return options_; }

  // Thread-safe; replaces any previous handler for the type.
  void set_handler(uint16_t type, Handler handler);
  void remove_handler(uint16_t type);

  // Notifications received (kNotify frames), oldest first.
  std::vector<std::string> take_notifications();
  // Called (on a server thread, without locks held) after each notification arrives.
  void set_notification_callback(std::function<void()> callback);

  uint64_t frames_rejected() const { return frames_rejected_.load(); }
  void stop();

 private:
  explicit SideChannelServer(SideChannelOptions options) : options_(std::move(options)) {}
  void accept_loop();
  void serve_connection(std::shared_ptr<FrameConnection> conn);
  Status dispatch(const Frame& frame, FrameConnection& conn);
  void reap_finished_locked();

  SideChannelOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> frames_rejected_{0};
  std::thread accept_thread_;

  struct ConnThread {
    std::shared_ptr<FrameConnection> conn;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex conns_mu_;
  std::list<ConnThread> conns_;

  std::shared_mutex handlers_mu_;
  std::unordered_map<uint16_t, Handler> handlers_;

  std::mutex notify_mu_;
  std::vector<std::string> notifications_;
  std::function<void()> notification_callback_;
};

}  // namespace tandem
