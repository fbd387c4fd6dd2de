// HttpClient: an asynchronous HTTP/1.1 client (Boost.Asio / Beast) that streams response bodies piece
// by piece, with per-request timeouts and keep-alive connection reuse. Used by `tandem bench serve` and
// by the disaggregation proxy.
//
// Usage (all on an io_context the caller owns and runs; the client is NOT thread-safe: create it, call
// request() and destroy it on the thread that runs the io_context, or from handlers on it):
//
//   boost::asio::io_context io;
//   net::HttpClient client(io, "127.0.0.1", 8000);
//   net::HttpClientRequest req;
//   req.method = "POST"; req.target = "/v1/completions"; req.body = R"({"prompt": "hi", "stream": true})";
//   req.headers.push_back({"Content-Type", "application/json"});
//   auto call = client.request(std::move(req), {
//       .on_head = [](const net::HttpResponseHead& h) { /* status, reason, headers */ },
//       .on_body = [](std::string_view piece) { /* each decoded body piece (chunked framing removed) */ },
//       .on_complete = [](const Status& st) { /* exactly once: Ok, or why it failed */ }});
//   io.run();
//
// Semantics:
// - on_head is called once when the status line and headers are in; on_body for every piece of the body
//   as soon as it is read from the socket (no buffering to a size threshold); on_complete exactly once,
//   last. A non-2xx status is NOT an error: on_complete gets Ok once that body is read in full.
// - Errors: kUnavailable (resolve/connect/peer closed the connection early), kDeadlineExceeded
//   (connect_timeout, idle_timeout between received bytes, or total_timeout), kAborted (cancel() or the
//   client was destroyed), kInvalidArgument (malformed response).
// - Keep-alive: a connection whose response was read in full and allowed keep-alive goes back to an
//   idle pool and is reused by the next request. If a reused connection turns out closed by the peer
//   before any response byte arrives, the request is retried once on a fresh connection.
// - Callbacks run on the io_context thread; a callback may destroy the client or cancel any call.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem::net {

struct HttpHeader {
  std::string name;
  std::string value;
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";            // path and query, e.g. "/v1/completions"
  std::vector<HttpHeader> headers;     // Host, Content-Length and User-Agent are added when absent
  std::string body;
  std::chrono::milliseconds connect_timeout{10'000};         // resolve + TCP connect
  std::chrono::milliseconds idle_timeout{10 * 60 * 1000};    // longest gap while writing or reading
  std::chrono::milliseconds total_timeout{6 * 3600 * 1000};  // whole request, as aiohttp's default
};

struct HttpResponseHead {
  int status = 0;
  std::string reason;
  std::vector<HttpHeader> headers;
  // First header with this name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

struct HttpResponseCallbacks {
  std::function<void(const HttpResponseHead&)> on_head;
  std::function<void(std::string_view piece)> on_body;
  std::function<void(const Status&)> on_complete;
};

// Handle to an in-flight request. Dropping it does not cancel the request.
class HttpCall {
 public:
  virtual ~HttpCall() = default;
  // Aborts the request (on_complete gets kAborted unless it already completed). Safe to call anytime
  // from the io_context thread, repeatedly.
  virtual void cancel() = 0;
};

struct HttpClientOptions {
  bool keep_alive = true;              // reuse connections (otherwise Connection: close)
  size_t max_idle_connections = 4096;  // idle pool cap; extra connections are closed
  std::string user_agent = "tandem-http-client";
};

// A client for one origin (host:port). Any number of requests may be in flight at once; each uses its
// own connection (HTTP/1.1, no pipelining).
class HttpClient {
 public:
  HttpClient(boost::asio::io_context& io, std::string host, uint16_t port, HttpClientOptions options = {});
  ~HttpClient();  // cancels in-flight requests (their on_complete gets kAborted) and closes idle sockets
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  std::shared_ptr<HttpCall> request(HttpClientRequest request, HttpResponseCallbacks callbacks);

  const std::string& host() const;
  uint16_t port() const;
  size_t idle_connections() const;
  size_t connections_opened() const;  // TCP connections established so far (for reuse checks)

  struct State;  // shared with in-flight calls; defined in http_client.cpp

 private:
  std::shared_ptr<State> state_;
};

// A parsed "http://host[:port][/path]" URL (https is rejected: no TLS in this client).
struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  static Result<HttpUrl> parse(std::string_view url);
};

struct HttpFetchResult {
  HttpResponseHead head;
  std::string body;
};

// Runs one request to completion on a private io_context (for one-off calls such as GET /v1/models).
Result<HttpFetchResult> http_fetch(const std::string& host, uint16_t port, HttpClientRequest request);

}  // namespace tandem::net
