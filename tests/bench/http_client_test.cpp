// net::HttpClient (owned by BENCH, used by the proxy): streaming pieces, keep-alive reuse, timeouts,
// cancel, destruction with requests in flight, URL parsing.
#include <gtest/gtest.h>

#include "bench/mock_sse_server.h"
#include "net/http_client.h"

namespace tandem::net {
namespace {

using bench::testing::MockScript;
using bench::testing::MockSseServer;

MockSseServer::ScriptFn pieces(std::vector<std::string> bodies, double gap_ms) {
  return [=](const std::string&) {
    MockScript s;
    for (const auto& b : bodies) s.pieces.push_back({gap_ms, b});
    return s;
  };
}

struct Collected {
  HttpResponseHead head;
  std::vector<std::string> pieces;
  std::optional<Status> status;
};

HttpResponseCallbacks collect(Collected& c) {
  return {.on_head = [&c](const HttpResponseHead& h) { c.head = h; },
          .on_body = [&c](std::string_view p) { c.pieces.emplace_back(p); },
          .on_complete = [&c](const Status& st) { c.status = st; }};
}

HttpClientRequest post(std::string body = "{}") {
  HttpClientRequest r;
  r.method = "POST";
  r.target = "/v1/completions";
  r.body = std::move(body);
  return r;
}

TEST(HttpClient, StreamsPiecesAsTheyArriveAndReusesConnections) {
  MockSseServer server(pieces({"one", "two", "three"}, 15));
  boost::asio::io_context io;
  HttpClient client(io, "127.0.0.1", server.port());
  Collected a, b;
  client.request(post(), collect(a));
  io.run();
  ASSERT_TRUE(a.status && a.status->ok()) << a.status->to_string();
  EXPECT_EQ(a.head.status, 200);
  EXPECT_EQ(a.head.header("content-type").value_or(""), "text/event-stream");
  EXPECT_EQ(a.pieces, (std::vector<std::string>{"one", "two", "three"}));  // 15 ms apart: one read each
  EXPECT_EQ(client.idle_connections(), 1u);
  io.restart();
  client.request(post(), collect(b));
  io.run();
  ASSERT_TRUE(b.status && b.status->ok());
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, NonOkStatusIsDeliveredNotAnError) {
  MockSseServer server([](const std::string&) {
    MockScript s;
    s.status = 404;
    s.reason = "Not Found";
    s.error_body = "{\"error\":\"nope\"}";
    return s;
  });
  boost::asio::io_context io;
  HttpClient client(io, "127.0.0.1", server.port());
  Collected c;
  client.request(post(), collect(c));
  io.run();
  ASSERT_TRUE(c.status && c.status->ok());
  EXPECT_EQ(c.head.status, 404);
  EXPECT_EQ(c.head.reason, "Not Found");
  std::string body;
  for (auto& p : c.pieces) body += p;
  EXPECT_EQ(body, "{\"error\":\"nope\"}");
}

TEST(HttpClient, IdleTimeoutAndCancelAndDestroy) {
  MockSseServer server(pieces({"late"}, 400));
  boost::asio::io_context io;
  Collected timed, cancelled, destroyed;
  {
    HttpClient client(io, "127.0.0.1", server.port());
    auto r = post();
    r.idle_timeout = std::chrono::milliseconds(50);
    client.request(r, collect(timed));
    auto call = client.request(post(), collect(cancelled));
    boost::asio::steady_timer t(io, std::chrono::milliseconds(20));
    t.async_wait([&](auto) { call->cancel(); });
    boost::asio::steady_timer t2(io, std::chrono::milliseconds(100));
    std::unique_ptr<HttpClient> second = std::make_unique<HttpClient>(io, "127.0.0.1", server.port());
    second->request(post(), collect(destroyed));
    t2.async_wait([&](auto) { second.reset(); });
    auto start = Clock::now();
    io.run();
    EXPECT_LT(seconds_between(start, Clock::now()), 0.35);  // nothing waited for the 400 ms piece
  }
  ASSERT_TRUE(timed.status);
  EXPECT_EQ(timed.status->code(), StatusCode::kDeadlineExceeded) << timed.status->to_string();
  ASSERT_TRUE(cancelled.status);
  EXPECT_EQ(cancelled.status->code(), StatusCode::kAborted);
  ASSERT_TRUE(destroyed.status);
  EXPECT_EQ(destroyed.status->code(), StatusCode::kAborted);
}

TEST(HttpClient, ConnectRefused) {
  uint16_t port;
  { MockSseServer s(pieces({}, 0)); port = s.port(); }
  auto r = http_fetch("127.0.0.1", port, post());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(HttpUrl, Parse) {
  auto u = HttpUrl::parse("http://localhost:8100/v1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 8100);
  EXPECT_EQ(u->target, "/v1");
  auto v = HttpUrl::parse("http://[::1]/");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "::1");
  EXPECT_EQ(v->port, 80);
  EXPECT_FALSE(HttpUrl::parse("https://x").ok());
  EXPECT_FALSE(HttpUrl::parse("ftp://x").ok());
  EXPECT_FALSE(HttpUrl::parse("http://x:99999").ok());
  EXPECT_FALSE(HttpUrl::parse("http://:80").ok());
}

}  // namespace
}  // namespace tandem::net
