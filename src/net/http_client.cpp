// HttpClient implementation: one CallImpl per request drives resolve -> connect (or reuse an idle
// connection) -> write -> read header -> read body pieces (Beast response_parser<buffer_body> with
// async_read_some, so each socket read is handed to on_body at once) -> return the connection to the
// pool. Every step runs under a deadline: min(now + step timeout, request start + total_timeout).
#include "net/http_client.h"

#include <ostream>  // Beast 1.74 headers need the complete std::ostream

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <limits>
#include <ostream>
#include <array>
#include <deque>
#include <unordered_set>

namespace tandem::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

std::optional<std::string> HttpResponseHead::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (beast::iequals(h.name, beast::string_view(name.data(), name.size()))) return h.value;
  }
  return std::nullopt;
}

class CallImpl;

struct HttpClient::State {
  asio::io_context& io;
  std::string host;
  uint16_t port;
  HttpClientOptions options;
  std::deque<beast::tcp_stream> idle;            // keep-alive connections ready for reuse
  std::unordered_set<CallImpl*> active;          // in-flight calls (cancelled on client destruction)
  size_t connections_opened = 0;
  bool closed = false;

  State(asio::io_context& io_, std::string host_, uint16_t port_, HttpClientOptions options_)
      : io(io_), host(std::move(host_)), port(port_), options(std::move(options_)) {}
};

namespace {

Status status_from_error(const beast::error_code& ec, std::string_view step) {
  if (ec == beast::error::timeout) return DeadlineExceededError("HTTP {}: timed out", step);
  if (ec == asio::error::operation_aborted) return AbortedError("HTTP {}: cancelled", step);
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == http::error::partial_message || ec == asio::error::broken_pipe) {
    return UnavailableError("HTTP {}: connection closed by peer ({})", step, ec.message());
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return InvalidArgumentError("HTTP {}: malformed response ({})", step, ec.message());
  }
  return UnavailableError("HTTP {}: {}", step, ec.message());
}

}  // namespace

class CallImpl : public HttpCall, public std::enable_shared_from_this<CallImpl> {
 public:
  CallImpl(std::shared_ptr<HttpClient::State> state, HttpClientRequest request, HttpResponseCallbacks cb)
      : state_(std::move(state)),
        req_spec_(std::move(request)),
        cb_(std::move(cb)),
        resolver_(state_->io),
        resolve_timer_(state_->io),
        body_timer_(state_->io) {
    deadline_ = SteadyClock::now() + req_spec_.total_timeout;
  }

  void start() {
    state_->active.insert(this);
    build_request();
    if (!state_->idle.empty()) {
      stream_.emplace(std::move(state_->idle.front()));
      state_->idle.pop_front();
      reused_ = true;
      write();
    } else {
      open_connection();
    }
  }

  void cancel() override {
    if (done_) return;
    // Completion handlers of pending operations run later with operation_aborted; finish now.
    finish(AbortedError("HTTP request cancelled"));
  }

 private:
  void build_request() {
    http::verb verb = http::string_to_verb(req_spec_.method);
    if (verb == http::verb::unknown) verb = http::verb::get;
    req_.method(verb);
    req_.target(req_spec_.target);
    req_.version(11);
    bool has_host = false, has_agent = false, has_type = false;
    for (const auto& h : req_spec_.headers) {
      req_.set(h.name, h.value);
      has_host |= beast::iequals(h.name, "Host");
      has_agent |= beast::iequals(h.name, "User-Agent");
      has_type |= beast::iequals(h.name, "Content-Type");
    }
    if (!has_host) req_.set(http::field::host, fmt::format("{}:{}", state_->host, state_->port));
    if (!has_agent) req_.set(http::field::user_agent, state_->options.user_agent);
    if (!has_type && !req_spec_.body.empty()) req_.set(http::field::content_type, "application/json");
    req_.keep_alive(state_->options.keep_alive);
    req_.body() = std::move(req_spec_.body);  // req_ is what is sent, also on a retry
    req_.prepare_payload();
  }

  void arm(std::chrono::milliseconds step_timeout) {
    auto t = std::min(SteadyClock::now() + step_timeout, deadline_);
    stream_->expires_at(t);
  }

  void open_connection() {
    reused_ = false;
    stream_.emplace(state_->io);
    beast::error_code ec;
    auto addr = asio::ip::make_address(state_->host, ec);
    if (!ec) {
      std::array<tcp::endpoint, 1> eps{tcp::endpoint(addr, state_->port)};
      connect(eps);
      return;
    }
    resolve_timer_.expires_at(std::min(SteadyClock::now() + req_spec_.connect_timeout, deadline_));
    auto self = shared_from_this();
    resolve_timer_.async_wait([self](const beast::error_code& e) {
      if (!e) self->resolver_.cancel();
    });
    resolver_.async_resolve(state_->host, std::to_string(state_->port),
                            [self](const beast::error_code& e, tcp::resolver::results_type results) {
                              self->resolve_timer_.cancel();
                              if (self->done_) return;
                              if (e) {
                                self->finish(e == asio::error::operation_aborted
                                                 ? DeadlineExceededError("HTTP resolve {}: timed out",
                                                                         self->state_->host)
                                                 : UnavailableError("HTTP resolve {}: {}", self->state_->host,
                                                                    e.message()));
                                return;
                              }
                              self->connect(results);
                            });
  }

  template <typename Endpoints>
  void connect(const Endpoints& eps) {
    arm(req_spec_.connect_timeout);
    auto self = shared_from_this();
    stream_->async_connect(eps, [self](const beast::error_code& ec, const auto&) {
      if (self->done_) return;
      if (ec) {
        Status st = status_from_error(ec, "connect");
        self->finish(Status(st.code(), fmt::format("{} to {}:{}", st.message(), self->state_->host,
                                                   self->state_->port)));
        return;
      }
      self->state_->connections_opened++;
      beast::error_code ignored;
      self->stream_->socket().set_option(tcp::no_delay(true), ignored);
      self->write();
    });
  }

  void write() {
    arm(req_spec_.idle_timeout);
    auto self = shared_from_this();
    http::async_write(*stream_, req_, [self](const beast::error_code& ec, size_t) {
      if (self->done_) return;
      if (ec) return self->fail_or_retry(ec, "write");
      self->read_header();
    });
  }

  void read_header() {
    parser_.emplace();
    // Not boost::none: Beast 1.74 compares `len > body_limit_` with an empty optional as always true.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (req_.method() == http::verb::head) parser_->skip(true);
    arm(req_spec_.idle_timeout);
    auto self = shared_from_this();
    http::async_read_header(*stream_, buffer_, *parser_, [self](const beast::error_code& ec, size_t) {
      if (self->done_) return;
      if (ec) return self->fail_or_retry(ec, "read header");
      self->got_response_bytes_ = true;
      const auto& msg = self->parser_->get();
      HttpResponseHead head;
      head.status = static_cast<int>(msg.result_int());
      head.reason = std::string(msg.reason());
      for (const auto& f : msg) head.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      if (self->cb_.on_head) self->cb_.on_head(head);
      if (self->done_) return;  // the callback cancelled
      self->read_body();
    });
  }

  // Body pieces (one per streamed chunk) are read without a per-read socket timer: each read moves
  // last_read_, and one watchdog wait (body_timer_) checks the idle and total limits when it expires.
  void read_body() {
    if (parser_->is_done()) return complete_ok();
    parser_->get().body().data = body_buf_.data();
    parser_->get().body().size = body_buf_.size();
    if (!body_watch_pending_) {
      stream_->expires_never();
      last_read_ = SteadyClock::now();
      watch_body();
    }
    auto self = shared_from_this();
    http::async_read_some(*stream_, buffer_, *parser_, [self](beast::error_code ec, size_t) {
      if (self->done_) return;
      if (self->body_timed_out_) {
        return self->finish(self->deadline_ <= SteadyClock::now()
                                ? DeadlineExceededError("HTTP read body: total timeout exceeded")
                                : status_from_error(beast::error::timeout, "read body"));
      }
      self->last_read_ = SteadyClock::now();
      if (ec == http::error::need_buffer) ec = {};
      size_t got = self->body_buf_.size() - self->parser_->get().body().size;
      if (got > 0 && self->cb_.on_body) {
        self->cb_.on_body(std::string_view(self->body_buf_.data(), got));
        if (self->done_) return;
      }
      if (ec == http::error::end_of_stream && self->parser_->is_done()) ec = {};
      if (ec) return self->finish(status_from_error(ec, "read body"));
      self->read_body();
    });
  }

  void watch_body() {
    body_watch_pending_ = true;
    body_timer_.expires_at(std::min(last_read_ + req_spec_.idle_timeout, deadline_));
    auto self = shared_from_this();
    body_timer_.async_wait([self](const beast::error_code& ec) {
      self->body_watch_pending_ = false;
      if (ec || self->done_) return;
      const auto now = SteadyClock::now();
      if (now < std::min(self->last_read_ + self->req_spec_.idle_timeout, self->deadline_)) {
        return self->watch_body();  // bytes arrived meanwhile
      }
      self->body_timed_out_ = true;
      self->stream_->cancel();  // the pending read completes with operation_aborted: reported as a timeout
    });
  }

  void fail_or_retry(const beast::error_code& ec, std::string_view step) {
    // A pooled connection the server closed while idle fails at once; retry on a fresh connection.
    if (reused_ && !got_response_bytes_ && !retried_ && ec != beast::error::timeout &&
        ec != asio::error::operation_aborted) {
      retried_ = true;
      beast::error_code ignored;
      stream_->socket().close(ignored);
      buffer_.consume(buffer_.size());
      open_connection();
      return;
    }
    finish(status_from_error(ec, step));
  }

  void complete_ok() {
    auto& st = *state_;
    if (parser_->keep_alive() && st.options.keep_alive && !st.closed &&
        st.idle.size() < st.options.max_idle_connections && buffer_.size() == 0) {
      stream_->expires_never();
      st.idle.push_back(std::move(*stream_));
      stream_.reset();
    }
    finish(Status::Ok());
  }

  void finish(Status status) {
    if (done_) return;
    done_ = true;
    state_->active.erase(this);
    resolve_timer_.cancel();
    body_timer_.cancel();
    resolver_.cancel();
    if (stream_) {
      beast::error_code ignored;
      stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_->socket().close(ignored);
    }
    auto on_complete = std::move(cb_.on_complete);
    cb_ = {};
    if (on_complete) on_complete(status);
  }

  friend class HttpClient;
  std::shared_ptr<HttpClient::State> state_;
  HttpClientRequest req_spec_;
  HttpResponseCallbacks cb_;
  tcp::resolver resolver_;
  asio::steady_timer resolve_timer_;
  asio::steady_timer body_timer_;  // the body-read watchdog (see read_body)
  SteadyClock::time_point last_read_;
  bool body_watch_pending_ = false;
  bool body_timed_out_ = false;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  // Body bytes of one read (not zeroed: every call used to memset 64 KB, and a proxy holds thousands).
  std::array<char, 16 * 1024> body_buf_;
  SteadyClock::time_point deadline_;
  bool reused_ = false;
  bool retried_ = false;
  bool got_response_bytes_ = false;
  bool done_ = false;
};

HttpClient::HttpClient(asio::io_context& io, std::string host, uint16_t port, HttpClientOptions options)
    : state_(std::make_shared<State>(io, std::move(host), port, std::move(options))) {}

HttpClient::~HttpClient() {
  state_->closed = true;
  // Cancel in-flight calls; finish() removes each from the set, so iterate over a copy.
  std::vector<CallImpl*> active(state_->active.begin(), state_->active.end());
  for (CallImpl* c : active) {
    auto keep = c->shared_from_this();
    keep->finish(AbortedError("HTTP client destroyed"));
  }
  for (auto& s : state_->idle) {
    beast::error_code ignored;
    s.socket().close(ignored);
  }
  state_->idle.clear();
}

std::shared_ptr<HttpCall> HttpClient::request(HttpClientRequest request, HttpResponseCallbacks callbacks) {
  auto call = std::make_shared<CallImpl>(state_, std::move(request), std::move(callbacks));
  call->start();
  return call;
}

const std::string& HttpClient::host() const { return state_->host; }
uint16_t HttpClient::port() const { return state_->port; }
size_t HttpClient::idle_connections() const { return state_->idle.size(); }
size_t HttpClient::connections_opened() const { return state_->connections_opened; }

Result<HttpUrl> HttpUrl::parse(std::string_view url) {
  HttpUrl out;
  constexpr std::string_view kHttp = "http://";
  if (url.substr(0, 8) == "https://") {
    return InvalidArgumentError("URL '{}': https is not supported (no TLS); use http://", url);
  }
  if (url.substr(0, kHttp.size()) != kHttp) {
    return InvalidArgumentError("URL '{}' must start with http://", url);
  }
  std::string_view rest = url.substr(kHttp.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) out.target = std::string(rest.substr(slash));
  if (authority.empty()) return InvalidArgumentError("URL '{}' has no host", url);
  std::string_view host = authority;
  std::string_view port;
  if (authority.front() == '[') {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("URL '{}': bad IPv6 host", url);
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return InvalidArgumentError("URL '{}': bad host:port", url);
      port = authority.substr(close + 2);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  out.host = std::string(host);
  if (out.host.empty()) return InvalidArgumentError("URL '{}' has no host", url);
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) return InvalidArgumentError("URL '{}': bad port", url);
      p = p * 10 + (c - '0');
    }
    if (p <= 0 || p > 65535) return InvalidArgumentError("URL '{}': bad port", url);
    out.port = static_cast<uint16_t>(p);
  }
  return out;
}

Result<HttpFetchResult> http_fetch(const std::string& host, uint16_t port, HttpClientRequest request) {
  asio::io_context io;
  HttpFetchResult result;
  Status status = InternalError("HTTP fetch did not complete");
  {
    HttpClient client(io, host, port, HttpClientOptions{.keep_alive = false});
    client.request(std::move(request),
                   {.on_head = [&](const HttpResponseHead& h) { result.head = h; },
                    .on_body = [&](std::string_view piece) { result.body.append(piece); },
                    .on_complete = [&](const Status& st) { status = st; }});
    io.run();  // every step is under a deadline, so this returns
  }
  if (!status.ok()) return status;
  return result;
}

}  // namespace tandem::net
