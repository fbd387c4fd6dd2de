// HttpServer on loopback: full and chunked responses, keep-alive, limits, errors, timeouts and
// disconnect detection. Clients are plain blocking sockets with receive timeouts, so no test can hang.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/message.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "net/http_server.h"
#include "net/sse.h"

namespace tandem {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

class Client {
 public:
  explicit Client(int port) : sock_(ioc_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    timeval tv{5, 0};
    setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void send_raw(const std::string& s) { asio::write(sock_, asio::buffer(s)); }
  http::response<http::string_body> read_response(boost::system::error_code* ec_out = nullptr) {
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    boost::system::error_code ec;
    http::read(sock_, buf_, p, ec);
    if (ec_out) *ec_out = ec;
    return p.release();
  }
  http::response<http::string_body> request(const std::string& method, const std::string& target,
                                            const std::string& body = "") {
    send_raw(method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n\r\n" + body);
    return read_response();
  }
  // True when the server closed the connection (read returns EOF/reset) within the receive timeout.
  bool closed_by_peer() {
    char c;
    boost::system::error_code ec;
    sock_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  tcp::socket& socket() { return sock_; }

 private:
  asio::io_context ioc_;
  tcp::socket sock_;
  boost::beast::flat_buffer buf_;
};

struct Fixture {
  Router router;
  std::unique_ptr<HttpServer> server;
  explicit Fixture(HttpServerOptions opts = {}) {
    router.add("GET", "/hello", [](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      HttpResponse resp = HttpResponse::text(200, "hello " + std::string(r.header("x-name")));
      resp.headers.emplace_back("X-Echo-Query", r.query);
      w->send(std::move(resp));
    });
    router.add("POST", "/echo", [](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      w->send(HttpResponse::json(200, r.body));
    });
    router.add("GET", "/stream", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->start_stream(200, "text/event-stream");
      // Answer from another thread, as an engine would.
      std::thread([w] {
        for (int i = 0; i < 5; ++i) w->write(sse_data(std::to_string(i)));
        w->write(std::string(kSseDone));
        w->finish();
      }).detach();
    });
    router.add("GET", "/dropped", [](const HttpRequest&, std::shared_ptr<ResponseWriter>) {});
    router.add("GET", "/throws", [](const HttpRequest&, std::shared_ptr<ResponseWriter>) {
      throw std::runtime_error("boom");
    });
    server = std::make_unique<HttpServer>(std::move(opts), router.as_handler());
    Status st = server->start();
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
};

TEST(HttpServer, FullResponseAndKeepAlive) {
  Fixture f;
  Client c(f.server->port());
  auto r1 = c.request("GET", "/hello?a=b");
  EXPECT_EQ(r1.result_int(), 200);
  EXPECT_EQ(r1.body(), "hello ");
  EXPECT_EQ(r1["X-Echo-Query"], "a=b");
  EXPECT_TRUE(r1.keep_alive());
  auto r2 = c.request("POST", "/echo", "{\"x\":1}");  // same connection
  EXPECT_EQ(r2.result_int(), 200);
  EXPECT_EQ(r2.body(), "{\"x\":1}");
  EXPECT_EQ(r2[http::field::content_type], "application/json");
  EXPECT_EQ(f.server->stats().connections_total, 1);
}

TEST(HttpServer, PipelinedRequestsAnsweredInOrder) {
  Fixture f;
  Client c(f.server->port());
  c.send_raw("POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nb");
  EXPECT_EQ(c.read_response().body(), "a");
  EXPECT_EQ(c.read_response().body(), "b");
}

TEST(HttpServer, ChunkedSseStream) {
  Fixture f;
  Client c(f.server->port());
  auto r = c.request("GET", "/stream");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_type], "text/event-stream");
  EXPECT_EQ(r[http::field::transfer_encoding], "chunked");
  SseParser p;
  auto events = p.feed(r.body());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].data, "0");
  EXPECT_EQ(events[5].data, "[DONE]");
  // The connection is still usable after a stream.
  EXPECT_EQ(c.request("GET", "/hello").result_int(), 200);
}

// Chunks go out as gathered writes (size line, data and CRLF as separate buffers, several chunks per
// write): the bytes on the wire must be exactly the chunked framing of every write, in order, also
// when the socket takes them in many partial writes (a client that reads only after the server's
// send buffer filled up).
TEST(HttpServer, GatheredChunkWritesAreByteExactAcrossPartialWrites) {
  Router router;
  std::vector<std::string> pieces;
  for (int i = 0; i < 40; ++i) {
    const size_t size = (i % 4 == 0) ? (size_t{1} << 20) + static_cast<size_t>(i) : static_cast<size_t>(1 + i * 37);
    std::string p(size, '\0');
    for (size_t k = 0; k < size; ++k) p[k] = static_cast<char>('a' + (k * 7 + static_cast<size_t>(i)) % 26);
    pieces.push_back(std::move(p));
  }
  std::string expected_body;
  for (const auto& p : pieces) expected_body += http_chunk(p);
  expected_body += kLastChunk;
  router.add("GET", "/big", [&pieces](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "application/octet-stream");
    w->write(pieces[0]);  // from the handler itself: corked with the head
    std::thread([w, &pieces] {
      for (size_t i = 1; i < pieces.size(); ++i) w->write(pieces[i]);
      w->finish();
    }).detach();
  });
  HttpServerOptions o;
  o.max_buffered_output_bytes = size_t{1} << 30;
  HttpServer server(o, router.as_handler());
  ASSERT_TRUE(server.start().ok());
  Client c(server.port());
  c.send_raw("GET /big HTTP/1.1\r\n\r\n");
  // Let the server's writes back up (10 MB is more than the loopback socket buffers take).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string got;
  std::vector<char> buf(8192);
  size_t body_start = std::string::npos;
  while (body_start == std::string::npos || got.size() < body_start + expected_body.size()) {
    boost::system::error_code ec;
    size_t n = c.socket().read_some(asio::buffer(buf), ec);
    ASSERT_FALSE(ec) << ec.message() << " after " << got.size() << " bytes";
    got.append(buf.data(), n);
    if (body_start == std::string::npos) {
      size_t e = got.find("\r\n\r\n");
      if (e != std::string::npos) body_start = e + 4;
    }
  }
  const std::string head = got.substr(0, body_start);
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  ASSERT_EQ(got.size(), body_start + expected_body.size());
  EXPECT_TRUE(got.compare(body_start, std::string::npos, expected_body) == 0);
  // The connection stays usable after the stream.
  EXPECT_EQ(c.request("GET", "/nope").result_int(), 404);
}

TEST(HttpServer, NotFoundAndMethodNotAllowed) {
  Fixture f;
  Client c(f.server->port());
  EXPECT_EQ(c.request("GET", "/nope").result_int(), 404);
  auto r = c.request("POST", "/hello");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(r[http::field::allow], "GET");
}

TEST(HttpServer, BodyTooLargeIs413) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  Fixture f(o);
  Client c(f.server->port());
  // Declared length beyond the limit: rejected before the body is sent.
  c.send_raw("POST /echo HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(HttpServer, HeaderTooLargeIs413) {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  Fixture f(o);
  Client c(f.server->port());
  c.send_raw("GET /hello HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(c.read_response().result_int(), 413);
}

TEST(HttpServer, MalformedRequestIs400) {
  Fixture f;
  Client c(f.server->port());
  c.send_raw("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(c.read_response().result_int(), 400);
}

TEST(HttpServer, CustomErrorResponse) {
  HttpServerOptions o;
  o.max_body_bytes = 10;
  o.error_response = [](int status, std::string_view msg) {
    return HttpResponse::json(status, "{\"error\":\"" + std::string(msg) + "\"}");
  };
  Fixture f(o);
  Client c(f.server->port());
  auto r = c.request("POST", "/echo", std::string(100, 'x'));
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_EQ(r.body(), "{\"error\":\"Request body too large\"}");
}

TEST(HttpServer, HandlerFaultsBecome500) {
  Fixture f;
  Client c(f.server->port());
  EXPECT_EQ(c.request("GET", "/dropped").result_int(), 500);
  EXPECT_EQ(c.request("GET", "/throws").result_int(), 500);
  EXPECT_EQ(c.request("GET", "/hello").result_int(), 200);
  // The session counts a request out after its write completes, which can be just after the client has
  // read the response: wait (bounded) for the count to settle.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (f.server->stats().requests_in_flight != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(f.server->stats().requests_in_flight, 0);
}

TEST(HttpServer, SlowSenderIsCutByReadTimeout) {
  HttpServerOptions o;
  o.read_timeout = std::chrono::milliseconds(200);
  Fixture f(o);
  Client c(f.server->port());
  c.send_raw("GET /hello HTTP/1.1\r\n");  // never finishes the header
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
}

TEST(HttpServer, DisconnectFiresOnCloseAndNoLateWrites) {
  Router router;
  std::promise<void> closed;
  std::shared_ptr<ResponseWriter> kept;
  std::mutex mu;
  router.add("GET", "/wait", [&](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "text/event-stream");
    w->write(sse_data("first"));
    w->on_close([&closed] { closed.set_value(); });
    std::lock_guard lock(mu);
    kept = w;  // never finished by the handler
  });
  HttpServer server({}, router.as_handler());
  ASSERT_TRUE(server.start().ok());
  {
    Client c(server.port());
    c.send_raw("GET /wait HTTP/1.1\r\n\r\n");
    char buf[64];
    c.socket().read_some(asio::buffer(buf));  // the head and first event arrived
  }  // client disconnects
  ASSERT_EQ(closed.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  std::lock_guard lock(mu);
  EXPECT_TRUE(kept->is_closed());
  kept->write("ignored");  // must be a no-op
  kept->finish();
  kept.reset();
  EXPECT_EQ(server.stats().requests_in_flight, 0);
}

TEST(HttpServer, GracefulStopWaitsForInFlight) {
  Router router;
  router.add("GET", "/slow", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    std::thread([w] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      w->send(HttpResponse::text(200, "done"));
    }).detach();
  });
  HttpServer server({}, router.as_handler());
  ASSERT_TRUE(server.start().ok());
  Client c(server.port());
  c.send_raw("GET /slow HTTP/1.1\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.stop_accepting();
  EXPECT_TRUE(server.wait_idle(std::chrono::seconds(5)));
  auto r = c.read_response();
  EXPECT_EQ(r.body(), "done");
  server.stop();
}

TEST(HttpServer, ManyConcurrentStreams) {
  Router router;
  router.add("GET", "/s", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "text/event-stream");
    w->post([w] {
      w->write(sse_data("x"));
      w->finish();
    });
  });
  HttpServerOptions o;
  o.num_io_threads = 2;
  HttpServer server(o, router.as_handler());
  ASSERT_TRUE(server.start().ok());
  constexpr int kClients = 200;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->send_raw("GET /s HTTP/1.1\r\n\r\n");
  }
  int ok = 0;
  for (auto& c : clients) ok += c->read_response().body() == sse_data("x");
  EXPECT_EQ(ok, kClients);
}

TEST(HttpServer, ContextPerThreadSpreadsConnectionsAndAnswersInline) {
  constexpr int kThreads = 3;
  Router router;
  HttpServer* server_ptr = nullptr;
  std::mutex mu;
  std::vector<int> served(kThreads, 0);
  // Which io_context runs the handler; the stream is then written from a handler posted to that same
  // io_context (as the proxy's upstream calls do), and from another thread.
  router.add("GET", "/s", [&](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    int mine = -1;
    for (int i = 0; i < kThreads; ++i) {
      if (server_ptr->io_context(static_cast<size_t>(i)).get_executor().running_in_this_thread()) mine = i;
    }
    {
      std::lock_guard lock(mu);
      if (mine >= 0) ++served[static_cast<size_t>(mine)];
    }
    w->start_stream(200, "text/event-stream");
    asio::post(server_ptr->io_context(static_cast<size_t>(std::max(mine, 0))), [w] { w->write(sse_data("a")); });
    std::thread([w] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      w->write(sse_data("b"));
      w->finish();
    }).detach();
  });
  HttpServerOptions o;
  o.num_io_threads = kThreads;
  o.context_per_thread = true;
  HttpServer server(o, router.as_handler());
  server_ptr = &server;
  EXPECT_EQ(server.num_io_contexts(), static_cast<size_t>(kThreads));
  ASSERT_TRUE(server.start().ok());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3 * kThreads; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->send_raw("GET /s HTTP/1.1\r\n\r\n");
  }
  int ok = 0;
  for (auto& c : clients) ok += c->read_response().body() == sse_data("a") + sse_data("b") + "";
  EXPECT_EQ(ok, 3 * kThreads);
  std::lock_guard lock(mu);
  for (int n : served) EXPECT_EQ(n, 3);  // round-robin over the io_contexts
  // A response counts as in flight until its write completes on the server, which may be just after the
  // client read it: wait (bounded) for the count to settle.
  for (int i = 0; i < 500 && server.stats().requests_in_flight != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(server.stats().requests_in_flight, 0);
}

TEST(HttpServer, StalledWriteIsCutByWriteTimeout) {
  Router router;
  std::promise<void> closed;
  std::promise<std::shared_ptr<ResponseWriter>> stream;
  router.add("GET", "/flood", [&](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "application/octet-stream");
    w->on_close([&closed] { closed.set_value(); });
    stream.set_value(w);
  });
  HttpServerOptions o;
  o.write_timeout = std::chrono::milliseconds(200);
  o.max_buffered_output_bytes = size_t{1} << 32;  // only the timeout may cut it
  HttpServer server(o, router.as_handler());
  ASSERT_TRUE(server.start().ok());
  Client c(server.port());
  c.send_raw("GET /flood HTTP/1.1\r\n\r\n");  // and never read
  auto fw = stream.get_future();
  ASSERT_EQ(fw.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  std::shared_ptr<ResponseWriter> w = fw.get();
  // Fill the socket buffers (a few MB on loopback) until the server gives up on the stalled write
  // (bounded: 256 MB over at least 2 s).
  const std::string block(64 * 1024, 'x');
  for (int i = 0; i < 4000 && !w->is_closed(); ++i) {
    w->write(block);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  EXPECT_TRUE(w->is_closed());
  EXPECT_EQ(closed.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

}  // namespace
}  // namespace tandem
