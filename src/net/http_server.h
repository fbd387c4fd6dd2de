// HttpServer: an asynchronous HTTP/1.1 server on Boost.Asio/Beast, shared by `tandem serve` and
// `tandem proxy`.
//
// API in brief:
//   Router router;
//   router.add("GET", "/health", [](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
//     w->send(HttpResponse::text(200, "ok"));
//   });
//   HttpServer server(HttpServerOptions{.host = "127.0.0.1", .port = 0}, router.as_handler());
//   TANDEM_RETURN_IF_ERROR(server.start());        // binds, listens, starts the I/O threads
//   int port = server.port();                       // the real port when options.port == 0
//   ...
//   server.stop_accepting();                        // graceful shutdown: no new connections,
//   server.wait_idle(std::chrono::seconds(30));     // let in-flight responses finish,
//   server.stop();                                  // then close everything and join the threads.
//
// Model: a small pool of I/O threads runs one io_context; each connection lives on its own strand, so
// a handler and all writer callbacks of one connection never run concurrently. With
// options.context_per_thread each I/O thread runs its own io_context instead and a connection stays on
// one of them (round-robin): code running on that thread (e.g. an HttpClient bound to the same
// io_context, see io_context()) then answers through the ResponseWriter without a thread switch. Handlers run on an I/O
// thread and must not block; long work (an engine request) answers later through the ResponseWriter,
// from any thread. Connections are keep-alive (HTTP/1.1 default) and pipelining-safe (one request at a
// time per connection). While a response is pending, the server keeps a read open on the socket so that
// a client disconnect is noticed at once (ResponseWriter::on_close).
// Limits: header and body sizes (413 beyond), a read timeout covering idle keep-alive time plus the time
// to receive a whole request (slow senders), a write timeout per write (slow readers) and a cap on
// output buffered for one connection; a connection that hits one is closed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/router.h"

namespace boost::asio {
class io_context;
}

namespace tandem {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port (see port())
  int num_io_threads = 2;
  bool context_per_thread = false;  // one io_context per I/O thread (see above) instead of one shared
  std::string thread_name = "http-io";  // I/O thread names (Linux: up to 15 characters, for top/perf)
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 32 * 1024 * 1024;
  std::chrono::milliseconds read_timeout{60000};   // waiting for / receiving one request
  std::chrono::milliseconds write_timeout{60000};  // one write to the socket
  size_t max_buffered_output_bytes = 16 * 1024 * 1024;  // per connection, then the connection is closed
  int max_connections = 20000;  // further connections are closed at once
  int listen_backlog = 4096;
  std::string server_header = "tandem";
  // Builds the responses the server itself sends (400 malformed HTTP, 413 too large, 500 handler
  // fault); default: text/plain. The OpenAI server sets one that answers in its JSON error shape.
  std::function<HttpResponse(int status, std::string_view message)> error_response;
};

struct HttpServerStats {
  int64_t connections_open = 0;
  int64_t connections_total = 0;
  int64_t requests_total = 0;
  int64_t requests_in_flight = 0;  // handler called, response not yet complete
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens on host:port and starts the I/O threads. Errors: kInvalidArgument (bad host),
  // kUnavailable (address in use / cannot bind).
  Status start();
  int port() const;
  std::string host() const;

  void stop_accepting();
  // Waits until no response is in flight, at most `timeout`. Returns true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Closes every connection and joins the I/O threads. Idempotent.
  void stop();

  HttpServerStats stats() const;

  // The io_contexts the I/O threads run (one shared one, or one per thread with
  // options.context_per_thread); they live as long as the server and are run between start() and
  // stop(). Others may bind their own I/O objects to them; such objects must be destroyed before the
  // server (after stop() that is safe from any one thread: nothing runs the io_contexts any more).
  size_t num_io_contexts() const;
  boost::asio::io_context& io_context(size_t index);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
