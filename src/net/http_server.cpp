// HttpServer: acceptor + I/O thread pool; connections are HttpSession (http_session.h).
#include "net/http_server.h"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <future>
#include <optional>
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
    const int threads = shared_->options.num_io_threads;
    const int contexts = shared_->options.context_per_thread ? threads : 1;
    for (int i = 0; i < contexts; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(contexts == 1 ? threads : 1));
    }
    acceptor_.emplace(*contexts_[0]);
  }

  ~Impl() { stop(); }

  Status start() {
    error_code ec;
    auto addr = asio::ip::make_address(shared_->options.host, ec);
    if (ec) {
      // Accept host names such as "localhost" through the resolver.
      tcp::resolver resolver(*contexts_[0]);
      auto results = resolver.resolve(shared_->options.host, "", ec);
      if (ec || results.empty()) {
        return InvalidArgumentError("--host '{}' is not an address or resolvable name", shared_->options.host);
      }
      addr = results.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, static_cast<unsigned short>(shared_->options.port));
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(shared_->options.listen_backlog, ec);
    if (ec) {
      return UnavailableError("cannot listen on {}:{}: {}", shared_->options.host, shared_->options.port,
                              ec.message());
    }
    port_ = acceptor_->local_endpoint().port();
    do_accept();
    // The work guards keep idle io_contexts running (with one per thread, most have no accept pending).
    for (auto& ctx : contexts_) work_.emplace_back(ctx->get_executor());
    for (int i = 0; i < shared_->options.num_io_threads; ++i) {
      asio::io_context* ctx = contexts_[static_cast<size_t>(i) % contexts_.size()].get();
      std::string name = shared_->options.thread_name.substr(0, 15);
      threads_.emplace_back([ctx, name] {
        if (!name.empty()) pthread_setname_np(pthread_self(), name.c_str());
        ctx->run();
      });
    }
    started_ = true;
    return Status::Ok();
  }

  // The executor of the next connection: its own strand on the shared io_context, or the next
  // io_context (round-robin) when each thread has its own.
  asio::any_io_executor next_connection_executor() {
    if (!shared_->options.context_per_thread) return asio::make_strand(*contexts_[0]);
    return contexts_[next_context_++ % contexts_.size()]->get_executor();
  }

  void do_accept() {
    acceptor_->async_accept(next_connection_executor(), [this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
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
    asio::post(*contexts_[0], [this, &done] {
      error_code ignored;
      acceptor_->close(ignored);
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
    work_.clear();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::shared_ptr<HttpServerShared> shared_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::optional<tcp::acceptor> acceptor_;
  size_t next_context_ = 0;  // only on the accepting thread
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

size_t HttpServer::num_io_contexts() const { return impl_->contexts_.size(); }
asio::io_context& HttpServer::io_context(size_t index) { return *impl_->contexts_.at(index); }

HttpServerStats HttpServer::stats() const {
  HttpServerStats s;
  s.connections_open = impl_->shared_->connections_open.load();
  s.connections_total = impl_->shared_->connections_total.load();
  s.requests_total = impl_->shared_->requests_total.load();
  s.requests_in_flight = impl_->shared_->requests_in_flight.load();
  return s;
}

}  // namespace tandem
