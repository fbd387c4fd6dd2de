// HttpSession: per-connection read -> handle -> write loop (see http_session.h).
#include "net/http_session.h"

#include <fmt/format.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "common/logging.h"
#include "net/sse.h"

namespace tandem {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

// A ResponseWriter bound to one request of one session.
class SessionResponseWriter final : public ResponseWriter {
 public:
  SessionResponseWriter(std::shared_ptr<HttpSession> s, uint64_t seq) : s_(std::move(s)), seq_(seq) {}
  ~SessionResponseWriter() override { s_->abandon(seq_); }
  void send(HttpResponse response) override { s_->send(seq_, std::move(response)); }
  void start_stream(int status, std::string content_type, HttpHeaders headers) override {
    s_->start_stream(seq_, status, std::move(content_type), std::move(headers));
  }
  void write(std::string data) override { s_->write(seq_, std::move(data)); }
  void finish() override { s_->finish(seq_); }
  bool is_closed() const override { return s_->is_closed(); }
  void on_close(std::function<void()> fn) override { s_->on_close(seq_, std::move(fn)); }
  void post(std::function<void()> fn) override { s_->post(std::move(fn)); }

 private:
  std::shared_ptr<HttpSession> s_;
  uint64_t seq_;
};

HttpResponse default_error(const HttpServerShared& shared, int status, std::string_view message) {
  if (shared.options.error_response) return shared.options.error_response(status, message);
  return HttpResponse::text(status, std::string(message) + "\n");
}

}  // namespace

HttpSession::HttpSession(Socket socket, std::shared_ptr<HttpServerShared> shared, uint64_t id)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      write_timer_(socket_.get_executor()),
      shared_(std::move(shared)),
      id_(id) {
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
  shared_->connections_open.fetch_add(1);
  shared_->connections_total.fetch_add(1);
}

HttpSession::~HttpSession() {
  if (in_flight_) shared_->requests_in_flight.fetch_sub(1);
  if (phase_ != Phase::kClosed) shared_->connections_open.fetch_sub(1);
  std::lock_guard lock(shared_->mu);
  shared_->sessions.erase(id_);
}

void HttpSession::start() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

void HttpSession::close_async() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

// ---------------------------------------------------------------------------------------------- reading

void HttpSession::do_read() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kReading;
  response_ = ResponseState::kNone;
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(shared_->options.max_header_bytes));
  parser_->body_limit(shared_->options.max_body_bytes);
  arm_timer(shared_->options.read_timeout);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
}

void HttpSession::on_header(error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return on_read(ec);
  auto& req = parser_->get();
  auto expect = req[http::field::expect];
  if (!parser_->is_done() && iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
    auto line = std::make_shared<std::string>(fmt::format("HTTP/1.{} 100 Continue\r\n\r\n", req.version() % 10));
    asio::async_write(socket_, asio::buffer(*line), [self = shared_from_this(), line](error_code ec2, size_t) {
      if (ec2) return self->close_now();
      self->read_body();
    });
    return;
  }
  read_body();
}

void HttpSession::read_body() {
  if (phase_ == Phase::kClosed) return;
  if (parser_->is_done()) return on_read({});
  http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
}

void HttpSession::on_read(error_code ec) {
  if (phase_ == Phase::kClosed) return;
  disarm_timer();
  if (ec == http::error::body_limit) return send_error_and_close(413, "Request body too large");
  if (ec == http::error::header_limit) return send_error_and_close(413, "Request header too large");
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::operation_aborted) {
    return close_now();
  }
  if (ec) return send_error_and_close(400, fmt::format("Malformed HTTP request: {}", ec.message()));
  dispatch_request();
}

void HttpSession::dispatch_request() {
  auto msg = parser_->release();
  parser_.reset();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  req.version = static_cast<int>(msg.version());
  req.keep_alive = msg.keep_alive();
  req.remote_address = remote_;
  req.headers.reserve(8);
  for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  req.body = std::move(msg.body());

  version_ = req.version;
  keep_alive_ = req.keep_alive && !shared_->stopped.load();
  chunked_ = version_ >= 11;
  ++seq_;
  phase_ = Phase::kHandling;
  response_ = ResponseState::kNone;
  in_flight_ = true;
  shared_->requests_in_flight.fetch_add(1);
  shared_->requests_total.fetch_add(1);

  {
    auto writer = std::make_shared<SessionResponseWriter>(shared_from_this(), seq_);
    try {
      shared_->handler(req, writer);
    } catch (const std::exception& e) {
      TLOG_ERROR("http handler for {} {} threw: {}", req.method, req.path, e.what());
      if (response_ == ResponseState::kNone) send(seq_, default_error(*shared_, 500, "Internal server error"));
    } catch (...) {
      TLOG_ERROR("http handler for {} {} threw", req.method, req.path);
      if (response_ == ResponseState::kNone) send(seq_, default_error(*shared_, 500, "Internal server error"));
    }
  }
  if (phase_ == Phase::kHandling && response_ != ResponseState::kComplete) start_monitor();
}

void HttpSession::send_error_and_close(int status, std::string_view message) {
  ++seq_;
  phase_ = Phase::kHandling;
  keep_alive_ = false;
  version_ = 11;
  HttpResponse r = default_error(*shared_, status, message);
  queue_response_head(r.status, r.content_type, r.headers, r.body.size());
  enqueue(std::move(r.body));
  response_complete();
}

// ---------------------------------------------------------------------------------------------- writing

void HttpSession::send(uint64_t seq, HttpResponse response) {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this(), seq, r = std::move(response)]() mutable {
    if (seq != self->seq_ || self->phase_ != Phase::kHandling || self->response_ != ResponseState::kNone) return;
    self->queue_response_head(r.status, r.content_type, r.headers, r.body.size());
    self->enqueue(std::move(r.body));
    self->response_complete();
  });
}

void HttpSession::start_stream(uint64_t seq, int status, std::string content_type, HttpHeaders headers) {
  asio::dispatch(socket_.get_executor(),
                 [self = shared_from_this(), seq, status, ct = std::move(content_type), h = std::move(headers)]() mutable {
                   if (seq != self->seq_ || self->phase_ != Phase::kHandling ||
                       self->response_ != ResponseState::kNone) {
                     return;
                   }
                   if (ct.starts_with("text/event-stream")) h.emplace_back("Cache-Control", "no-cache");
                   if (!self->chunked_) self->keep_alive_ = false;
                   // The head waits for the end of this turn of the event loop, so that a first chunk
                   // written by the same handler leaves in the same write (one send instead of two).
                   self->cork_ = true;
                   self->queue_response_head(status, ct, h, std::nullopt);
                   self->response_ = ResponseState::kStreaming;
                   asio::post(self->socket_.get_executor(), [self] {
                     self->cork_ = false;
                     if (!self->write_pending_) self->start_write();
                   });
                 });
}

void HttpSession::write(uint64_t seq, std::string data) {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this(), seq, d = std::move(data)]() mutable {
    if (seq != self->seq_ || self->phase_ != Phase::kHandling || self->response_ != ResponseState::kStreaming) return;
    if (d.empty()) return;
    if (self->out_bytes_ + d.size() > self->shared_->options.max_buffered_output_bytes) {
      TLOG_WARN("http: closing {}: client is not reading ({} bytes buffered)", self->remote_, self->out_bytes_);
      return self->close_now();
    }
    if (self->chunked_) {
      self->enqueue_chunk(std::move(d));
    } else {
      self->enqueue(std::move(d));
    }
  });
}

void HttpSession::finish(uint64_t seq) {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this(), seq] {
    if (seq != self->seq_ || self->phase_ != Phase::kHandling || self->response_ != ResponseState::kStreaming) return;
    if (self->chunked_) self->enqueue(std::string(kLastChunk));
    self->response_complete();
  });
}

void HttpSession::abandon(uint64_t seq) {
  if (shared_->stopped.load()) return;
  asio::post(socket_.get_executor(), [self = shared_from_this(), seq] {
    if (seq != self->seq_ || self->phase_ != Phase::kHandling) return;
    if (self->response_ == ResponseState::kNone) {
      TLOG_ERROR("http: handler dropped request {} without answering", self->seq_);
      HttpResponse r = default_error(*self->shared_, 500, "Internal server error: no response");
      self->queue_response_head(r.status, r.content_type, r.headers, r.body.size());
      self->enqueue(std::move(r.body));
      self->response_complete();
    } else if (self->response_ == ResponseState::kStreaming) {
      // An unfinished stream cannot be completed meaningfully: cut the connection.
      self->close_now();
    }
  });
}

void HttpSession::on_close(uint64_t seq, std::function<void()> fn) {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this(), seq, fn = std::move(fn)]() mutable {
    if (self->phase_ == Phase::kClosed) {
      if (seq == self->seq_ && self->response_ != ResponseState::kComplete) fn();
      return;
    }
    if (seq != self->seq_) return;
    self->on_close_.push_back(std::move(fn));
  });
}

void HttpSession::post(std::function<void()> fn) {
  // Runs also after the connection closed, so that owners can finish their bookkeeping.
  asio::post(socket_.get_executor(), [self = shared_from_this(), fn = std::move(fn)] { fn(); });
}

void HttpSession::queue_response_head(int status, std::string_view content_type, const HttpHeaders& headers,
                                      std::optional<size_t> content_length) {
  std::string head;
  head.reserve(256);
  head += fmt::format("HTTP/1.{} {} {}\r\n", version_ >= 11 ? 1 : 0, status, http_reason_phrase(status));
  if (!shared_->options.server_header.empty()) head += fmt::format("Server: {}\r\n", shared_->options.server_header);
  if (!content_type.empty()) head += fmt::format("Content-Type: {}\r\n", content_type);
  if (content_length) {
    head += fmt::format("Content-Length: {}\r\n", *content_length);
  } else if (chunked_) {
    head += "Transfer-Encoding: chunked\r\n";
  }
  if (!keep_alive_) {
    head += "Connection: close\r\n";
  } else if (version_ < 11) {
    head += "Connection: keep-alive\r\n";
  }
  for (const auto& [k, v] : headers) {
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  head += "\r\n";
  enqueue(std::move(head));
}

void HttpSession::enqueue(std::string data) {
  if (phase_ == Phase::kClosed || data.empty()) return;
  out_bytes_ += data.size();
  out_.push_back(std::move(data));
  if (!write_pending_ && !cork_) start_write();
}

void HttpSession::enqueue_chunk(std::string data) {
  if (phase_ == Phase::kClosed || data.empty()) return;
  std::string head = http_chunk_size_line(data.size());
  out_bytes_ += head.size() + data.size() + kChunkEnd.size();
  out_.push_back(std::move(head));
  out_.push_back(std::move(data));
  out_.emplace_back(kChunkEnd);
  if (!write_pending_ && !cork_) start_write();
}

void HttpSession::start_write() {
  if (out_.empty() || phase_ == Phase::kClosed) return;
  writing_.clear();
  for (auto& s : out_) writing_.push_back(std::move(s));
  out_.clear();
  // After the moves: the buffers point into writing_'s strings, whose storage no longer moves. The write
  // operation keeps its own copy of this buffer list.
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(writing_.size());
  for (const auto& s : writing_) buffers.push_back(asio::buffer(s));
  write_pending_ = true;
  write_deadline_ = std::chrono::steady_clock::now() + shared_->options.write_timeout;
  if (!write_watch_pending_) watch_write();
  asio::async_write(socket_, buffers, [self = shared_from_this()](error_code ec, size_t n) { self->on_write(ec, n); });
}

void HttpSession::on_write(error_code ec, size_t bytes) {
  write_pending_ = false;
  if (phase_ == Phase::kClosed) return;
  if (ec) return close_now();
  out_bytes_ -= std::min(out_bytes_, bytes);
  writing_.clear();
  if (writing_.capacity() > 4096) std::vector<std::string>().swap(writing_);  // a burst: do not keep its array
  if (!out_.empty()) return start_write();
  if (response_ == ResponseState::kComplete) after_flush();
}

void HttpSession::response_complete() {
  response_ = ResponseState::kComplete;
  on_close_.clear();
  if (!write_pending_ && out_.empty()) after_flush();
}

void HttpSession::after_flush() {
  if (in_flight_) {
    in_flight_ = false;
    shared_->requests_in_flight.fetch_sub(1);
  }
  if (!keep_alive_ || shared_->stopped.load()) {
    error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
    return close_now();
  }
  if (monitor_pending_) {
    read_after_monitor_ = true;
    error_code ignored;
    socket_.cancel(ignored);
    return;
  }
  do_read();
}

// --------------------------------------------------------------------------- disconnect detection

void HttpSession::start_monitor() {
  if (monitor_pending_ || phase_ != Phase::kHandling) return;
  // Pipelined requests are kept in buffer_ for the parser; stop watching when too much piles up.
  if (buffer_.size() > shared_->options.max_header_bytes + 4096) return;
  monitor_pending_ = true;
  socket_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](error_code ec, size_t n) { self->on_monitor(ec, n); });
}

void HttpSession::on_monitor(error_code ec, size_t n) {
  monitor_pending_ = false;
  if (phase_ == Phase::kClosed) return;
  buffer_.commit(n);
  if (ec && ec != asio::error::operation_aborted) return close_now();  // the client went away
  if (read_after_monitor_) {
    read_after_monitor_ = false;
    return do_read();
  }
  if (phase_ == Phase::kHandling && response_ != ResponseState::kComplete) start_monitor();
}

// --------------------------------------------------------------------------------- timers, closing

void HttpSession::arm_timer(std::chrono::milliseconds d) {
  uint64_t gen = ++timer_gen_;
  timer_.expires_after(d);
  timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (ec || gen != self->timer_gen_ || self->phase_ == Phase::kClosed) return;
    TLOG_DEBUG("http: closing {} on timeout", self->remote_);
    self->close_now();
  });
}

void HttpSession::disarm_timer() {
  ++timer_gen_;
  timer_.cancel();
}

void HttpSession::watch_write() {
  write_watch_pending_ = true;
  write_timer_.expires_at(write_deadline_);
  write_timer_.async_wait([self = shared_from_this()](error_code ec) {
    self->write_watch_pending_ = false;
    if (ec || self->phase_ == Phase::kClosed || !self->write_pending_) return;
    if (std::chrono::steady_clock::now() < self->write_deadline_) return self->watch_write();  // writes went on
    TLOG_DEBUG("http: closing {}: a write timed out", self->remote_);
    self->close_now();
  });
}

void HttpSession::close_now() {
  if (phase_ == Phase::kClosed) return;
  bool was_incomplete = phase_ == Phase::kHandling && response_ != ResponseState::kComplete;
  phase_ = Phase::kClosed;
  shared_->connections_open.fetch_sub(1);
  closed_.store(true);
  disarm_timer();
  write_timer_.cancel();
  error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  out_.clear();
  out_bytes_ = 0;
  if (in_flight_) {
    in_flight_ = false;
    shared_->requests_in_flight.fetch_sub(1);
  }
  auto callbacks = std::move(on_close_);
  on_close_.clear();
  if (was_incomplete) {
    for (auto& fn : callbacks) fn();
  }
}

}  // namespace tandem
