// HttpServer: acceptor + I/O thread pool; connections are HttpSession (http_session.h).
#include "net/http_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <future>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "net/http_session.h"

namespace tandem {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler handler) : shared_(std::make_shared<HttpServerShared>()) {
    shared_->options = std::move(options);
    shared_->handler = std::move(handler);
    if (shared_->options.num_io_threads < 1) shared_->options.num_io_threads = 1;
  }

  ~Impl() { stop(); }

  Status start() {
    error_code ec;
    auto addr = asio::ip::make_address(shared_->options.host, ec);
    if (ec) {
      // Accept host names such as "localhost" through the resolver.
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(shared_->options.host, "", ec);
      if (ec || results.empty()) {
        return InvalidArgumentError("--host '{}' is not an address or resolvable name", shared_->options.host);
      }
      addr = results.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, static_cast<unsigned short>(shared_->options.port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(shared_->options.listen_backlog, ec);
    if (ec) {
      return UnavailableError("cannot listen on {}:{}: {}", shared_->options.host, shared_->options.port,
                              ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    do_accept();
    for (int i = 0; i < shared_->options.num_io_threads; ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    started_ = true;
    return Status::Ok();
  }

  void do_accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (shared_->connections_open.load() >= shared_->options.max_connections || shared_->stopped.load()) {
          socket.close(ignored);
        } else {
          std::shared_ptr<HttpSession> session;
          {
            std::lock_guard lock(shared_->mu);
            uint64_t id = shared_->next_session_id++;
            session = std::make_shared<HttpSession>(std::move(socket), shared_, id);
            shared_->sessions.emplace(id, session);
          }
          session->start();
        }
      } else {
        TLOG_WARN("http: accept failed: {}", ec.message());
        if (ec == asio::error::no_descriptors) {
          // Out of file descriptors: back off briefly instead of spinning.
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      do_accept();
    });
  }

  void stop_accepting() {
    if (!started_) return;
    std::promise<void> done;
    auto fut = done.get_future();
    asio::post(ioc_, [this, &done] {
      error_code ignored;
      acceptor_.close(ignored);
      done.set_value();
    });
    fut.wait_for(std::chrono::seconds(5));
  }

  bool wait_idle(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (shared_->requests_in_flight.load() > 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  void stop() {
    if (!started_) return;
    started_ = false;
    stop_accepting();
    shared_->stopped.store(true);
    std::vector<std::shared_ptr<HttpSession>> sessions;
    {
      std::lock_guard lock(shared_->mu);
      for (auto& [id, weak] : shared_->sessions) {
        if (auto s = weak.lock()) sessions.push_back(std::move(s));
      }
    }
    for (auto& s : sessions) s->close_async();
    sessions.clear();
    // Give the strands a moment to run the closes (on_close callbacks abort requests), then stop.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (shared_->connections_open.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::shared_ptr<HttpServerShared> shared_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::vector<std::thread> threads_;
  int port_ = 0;
  bool started_ = false;
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}
HttpServer::~HttpServer() = default;
Status HttpServer::start() { return impl_->start(); }
int HttpServer::port() const { return impl_->port_; }
std::string HttpServer::host() const { return impl_->shared_->options.host; }
void HttpServer::stop_accepting() { impl_->stop_accepting(); }
bool HttpServer::wait_idle(std::chrono::milliseconds timeout) { return impl_->wait_idle(timeout); }
void HttpServer::stop() { impl_->stop(); }

HttpServerStats HttpServer::stats() const {
  HttpServerStats s;
  s.connections_open = impl_->shared_->connections_open.load();
  s.connections_total = impl_->shared_->connections_total.load();
  s.requests_total = impl_->shared_->requests_total.load();
  s.requests_in_flight = impl_->shared_->requests_in_flight.load();
  return s;
}

}  // namespace tandem
