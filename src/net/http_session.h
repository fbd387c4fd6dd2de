// HttpSession (internal to net/): one accepted connection of HttpServer. Reads requests with Beast's
// parser, calls the handler, writes the response (full or chunked) from a queue, and watches the socket
// for a disconnect while a response is pending. Everything runs on the connection's strand.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/http_server.h"

namespace tandem {

class HttpSession;

// State shared by the server and its sessions (outlives the sessions).
struct HttpServerShared {
  HttpServerOptions options;
  HttpHandler handler;
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> connections_total{0};
  std::atomic<int64_t> requests_total{0};
  std::atomic<int64_t> requests_in_flight{0};
  std::atomic<bool> stopped{false};

  std::mutex mu;
  uint64_t next_session_id = 0;
  std::unordered_map<uint64_t, std::weak_ptr<HttpSession>> sessions;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  HttpSession(Socket socket, std::shared_ptr<HttpServerShared> shared, uint64_t id);
  ~HttpSession();

  void start();
  void close_async();  // from any thread

  // ResponseWriter operations for request number `seq` (stale seqs are ignored); any thread.
  void send(uint64_t seq, HttpResponse response);
  void start_stream(uint64_t seq, int status, std::string content_type, HttpHeaders headers);
  void write(uint64_t seq, std::string data);
  void finish(uint64_t seq);
  void abandon(uint64_t seq);  // the writer was dropped: answer 500 / cut the stream if unanswered
  // True once the connection closed (any thread).
  bool is_closed() const { return closed_.load(); }
  void on_close(uint64_t seq, std::function<void()> fn);
  void post(std::function<void()> fn);

 private:
  enum class Phase { kReading, kHandling, kClosed };
  enum class ResponseState { kNone, kStreaming, kComplete };

  void do_read();
  void on_header(boost::system::error_code ec);
  void read_body();
  void on_read(boost::system::error_code ec);
  void dispatch_request();
  void send_error_and_close(int status, std::string_view message);

  void queue_response_head(int status, std::string_view content_type, const HttpHeaders& headers,
                           std::optional<size_t> content_length);
  void enqueue(std::string data);
  void enqueue_chunk(std::string data);  // one chunk of a chunked body: size line, data, CRLF
  void start_write();
  void on_write(boost::system::error_code ec, size_t bytes);
  void response_complete();  // the response is fully queued
  void after_flush();        // all queued bytes of a complete response are written

  void start_monitor();
  void on_monitor(boost::system::error_code ec, size_t n);

  void arm_timer(std::chrono::milliseconds d);
  void disarm_timer();
  void watch_write();  // (re)arms write_timer_ for write_deadline_
  void close_now();

  Socket socket_;
  boost::asio::steady_timer timer_;  // reading: idle keep-alive and request receive time
  uint64_t timer_gen_ = 0;
  // Writes: instead of arming and cancelling a timer for every write (every streamed chunk), each write
  // moves write_deadline_ and one watchdog wait checks it when it expires, re-arming while writes go on.
  boost::asio::steady_timer write_timer_;
  std::chrono::steady_clock::time_point write_deadline_;
  bool write_watch_pending_ = false;
  std::shared_ptr<HttpServerShared> shared_;
  uint64_t id_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::string remote_;

  Phase phase_ = Phase::kReading;
  uint64_t seq_ = 0;
  std::atomic<bool> closed_{false};  // set by close_now(); read from any thread
  ResponseState response_ = ResponseState::kNone;
  bool keep_alive_ = true;
  bool chunked_ = true;  // false for HTTP/1.0 streams (body delimited by close)
  int version_ = 11;
  bool in_flight_ = false;
  bool close_after_flush_ = false;

  // Output: pieces queued while a write is in flight (a chunk is three pieces: its size line, the data
  // moved in as is, and CRLF; no copy into a framed string), then all of them written at once as one
  // gathered write (writev) of writing_, whose strings stay untouched until it completes.
  std::deque<std::string> out_;
  size_t out_bytes_ = 0;  // queued + in flight
  std::vector<std::string> writing_;
  bool write_pending_ = false;
  bool cork_ = false;  // hold queued output until the posted flush of start_stream runs

  bool monitor_pending_ = false;
  bool read_after_monitor_ = false;
  std::vector<std::function<void()>> on_close_;
};

}  // namespace tandem
