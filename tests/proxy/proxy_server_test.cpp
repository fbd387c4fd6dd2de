// ProxyServer end to end on loopback against fake prefill/decode instances (tandem's own HttpServer):
// the first token streamed from the prefill answer, the decode stream merged under one id with one usage
// chunk, non-streaming merging, prefill retry and fallback, decode retry, disconnect propagation, health,
// metrics and API keys. Every wait is bounded.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/router.h"
#include "net/sse.h"
#include "proxy/proxy_server.h"

namespace tandem::proxy {
namespace {

using namespace std::chrono_literals;

// A fake engine instance. The "model" answers every prompt with the tokens kTokens. As a producer it
// returns the first token and kv_transfer_params; as a consumer given kv_transfer_params it continues
// after the first token; without them it produces every token itself (so outputs must match).
class FakeInstance {
 public:
  static inline const std::vector<std::string> kTokens = {"A", " B", " C", " D"};

  explicit FakeInstance(bool prefill) : prefill_(prefill) {
    router_.add("GET", "/health", [this](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->send(HttpResponse::text(health_status.load(), ""));
    });
    router_.add("GET", "/v1/models", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->send(HttpResponse::json(200, R"({"object":"list","data":[{"id":"fake"}]})"));
    });
    router_.add("POST", "/v1/completions", [this](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      handle(r, std::move(w), false);
    });
    router_.add("POST", "/v1/chat/completions", [this](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      handle(r, std::move(w), true);
    });
    server_ = std::make_unique<HttpServer>(HttpServerOptions{.host = "127.0.0.1", .port = 0}, router_.as_handler());
    EXPECT_TRUE(server_->start().ok());
  }
  ~FakeInstance() {
    stop();
    for (auto& t : threads_) t.join();
  }
  void stop() { server_->stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::vector<json> bodies() {
    std::lock_guard l(mu_);
    return bodies_;
  }

  std::atomic<int> fail_with{0};
  std::atomic<int> health_status{200};
  std::atomic<int> chunk_delay_ms{0};
  std::atomic<int> num_tokens{4};
  std::atomic<int> disconnects{0};
  std::atomic<int> auth_seen{0};
  std::atomic<bool> hang{false};

 private:
  json chunk(bool chat, const std::string& text, json finish) {
    json c = {{"id", prefill_ ? "cmpl-P" : "cmpl-D"}, {"created", 7}, {"model", "fake"}};
    c["object"] = chat ? "chat.completion.chunk" : "text_completion";
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
    if (chat) {
      choice["delta"] = {{"content", text}};
    } else {
      choice["text"] = text;
    }
    c["choices"] = json::array({choice});
    return c;
  }

  void handle(const HttpRequest& r, std::shared_ptr<ResponseWriter> w, bool chat) {
    json body = json::parse(r.body);
    {
      std::lock_guard l(mu_);
      bodies_.push_back(body);
    }
    if (r.header("Authorization") == "Bearer sekret") auth_seen++;
    if (hang.load()) {  // accept and never answer, like a stuck process
      std::lock_guard l(mu_);
      hung_.push_back(std::move(w));
      return;
    }
    if (int f = fail_with.load()) return w->send(HttpResponse::json(f, R"({"error":{"message":"injected"}})"));
    const int n = num_tokens.load();
    const bool has_kv = body.contains("kv_transfer_params") && body["kv_transfer_params"].value("do_remote_prefill", false);
    if (prefill_) {
      EXPECT_EQ(body["max_tokens"], 1);
      EXPECT_EQ(body["stream"], false);
      json resp = {{"id", "cmpl-P"}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", 7}, {"model", "fake"},
                   {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 1}, {"total_tokens", 4}}},
                   {"kv_transfer_params", {{"do_remote_prefill", true}, {"remote_request_id", "r1"}}}};
      json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", n == 1 ? "stop" : "length"}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", kTokens[0]}};
      } else {
        choice["text"] = kTokens[0];
      }
      resp["choices"] = json::array({choice});
      return w->send(HttpResponse::json(200, resp.dump()));
    }
    std::vector<std::string> out;
    for (int i = has_kv ? 1 : 0; i < n; ++i) out.push_back(kTokens[i % kTokens.size()]);
    json usage = {{"prompt_tokens", 3}, {"completion_tokens", n}, {"total_tokens", 3 + n}};
    if (!body.value("stream", false)) {
      std::string text;
      for (auto& t : out) text += t;
      json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", "length"}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      } else {
        choice["text"] = text;
      }
      json resp = {{"id", "cmpl-D"}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", 7},
                   {"model", "fake"}, {"choices", json::array({choice})}, {"usage", usage}};
      return w->send(HttpResponse::json(200, resp.dump()));
    }
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    w->start_stream(200, "text/event-stream");
    auto events = std::make_shared<std::vector<std::string>>();
    if (chat) {
      json role = chunk(true, "", nullptr);
      role["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
      events->push_back(sse_data(role.dump()));
    }
    for (size_t i = 0; i < out.size(); ++i) {
      events->push_back(sse_data(chunk(chat, out[i], i + 1 == out.size() ? json("length") : json(nullptr)).dump()));
    }
    json u = {{"id", "cmpl-D"}, {"object", "text_completion"}, {"created", 7}, {"model", "fake"},
              {"choices", json::array()}, {"usage", usage}};
    events->push_back(sse_data(u.dump()));
    events->push_back(std::string(kSseDone));
    if (chunk_delay_ms.load() == 0) {
      for (auto& e : *events) w->write(e);
      return w->finish();
    }
    w->on_close([this] { disconnects++; });
    std::lock_guard l(mu_);
    threads_.emplace_back([this, w, events] {
      for (auto& e : *events) {
        std::this_thread::sleep_for(std::chrono::milliseconds(chunk_delay_ms.load()));
        if (w->is_closed()) return;
        w->write(e);
      }
      w->finish();
    });
  }

  bool prefill_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::vector<json> bodies_;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<ResponseWriter>> hung_;
};

struct Fetched {
  int status = 0;
  std::string body;
  std::string content_type;
};

Fetched call(int port, const std::string& method, const std::string& target, const std::string& body = "",
             std::vector<net::HttpHeader> headers = {}) {
  net::HttpClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.headers = std::move(headers);
  req.total_timeout = 20s;
  auto r = net::http_fetch("127.0.0.1", static_cast<uint16_t>(port), std::move(req));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  return {r->head.status, r->body, r->head.header("Content-Type").value_or("")};
}

std::vector<json> sse_events(const std::string& body) {
  SseParser p;
  std::vector<json> out;
  for (auto& e : p.feed(body)) out.push_back(e.data == "[DONE]" ? json("[DONE]") : json::parse(e.data));
  return out;
}

std::string joined_text(const std::vector<json>& events, bool chat = false) {
  std::string s;
  for (const auto& e : events) {
    if (!e.is_object() || !e.contains("choices")) continue;
    for (const auto& c : e["choices"]) {
      if (chat) {
        if (c["delta"].contains("content")) s += c["delta"]["content"].get<std::string>();
      } else {
        s += c["text"].get<std::string>();
      }
    }
  }
  return s;
}

class ProxyServerTest : public ::testing::Test {
 protected:
  void start_proxy(std::vector<FakeInstance*> prefills, std::vector<FakeInstance*> decodes, ProxyConfig cfg = {}) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.health_interval = 100ms;
    cfg.health_timeout = 500ms;
    cfg.connect_timeout = 1s;
    for (auto* p : prefills) cfg.prefill_urls.push_back(p->url());
    for (auto* d : decodes) cfg.decode_urls.push_back(d->url());
    auto p = ProxyServer::create(cfg);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    proxy_ = std::move(*p);
    ASSERT_TRUE(proxy_->start().ok());
    port_ = proxy_->port();
  }
  void TearDown() override {
    if (proxy_) proxy_->stop();
  }
  std::unique_ptr<ProxyServer> proxy_;
  int port_ = 0;
};

const std::string kStreamBody =
    R"({"model":"fake","prompt":"hello","max_tokens":4,"stream":true,"stream_options":{"include_usage":true}})";

TEST_F(ProxyServerTest, StreamsFirstTokenThenDecodeUnderOneId) {
  FakeInstance p(true), d(false);
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.content_type.find("text/event-stream"), std::string::npos);
  auto ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(joined_text(ev), "A B C D");
  int usage_chunks = 0;
  for (const auto& e : ev) {
    if (!e.is_object()) continue;
    EXPECT_EQ(e["id"], "cmpl-P");
    if (e.contains("usage") && e["usage"].is_object()) {
      ++usage_chunks;
      EXPECT_EQ(e["usage"]["completion_tokens"], 4);
      EXPECT_EQ(e["usage"]["prompt_tokens"], 3);
    }
  }
  EXPECT_EQ(usage_chunks, 1);
  EXPECT_EQ(ev.back(), "[DONE]");
  ASSERT_EQ(d.bodies().size(), 1u);
  EXPECT_EQ(d.bodies()[0]["kv_transfer_params"]["remote_request_id"], "r1");
  EXPECT_EQ(p.bodies()[0]["kv_transfer_params"]["do_remote_decode"], true);
}

TEST_F(ProxyServerTest, NonStreamingIsMerged) {
  FakeInstance p(true), d(false);
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/completions", R"({"prompt":"hello","max_tokens":4})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["text"], "A B C D");
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["id"], "cmpl-P");
  EXPECT_FALSE(j.contains("kv_transfer_params"));
}

TEST_F(ProxyServerTest, ChatStreamAndNonStream) {
  FakeInstance p(true), d(false);
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/chat/completions",
                R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true})");
  ASSERT_EQ(r.status, 200);
  auto ev = sse_events(r.body);
  EXPECT_EQ(joined_text(ev, true), "A B C D");
  int roles = 0;
  for (const auto& e : ev) {
    if (e.is_object() && e["choices"].size() && e["choices"][0]["delta"].contains("role")) ++roles;
  }
  EXPECT_EQ(roles, 1);
  auto n = call(port_, "POST", "/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":4})");
  ASSERT_EQ(n.status, 200);
  EXPECT_EQ(json::parse(n.body)["choices"][0]["message"]["content"], "A B C D");
}

TEST_F(ProxyServerTest, FirstTokenEndsRequestWithoutDecodeLeg) {
  FakeInstance p(true), d(false);
  p.num_tokens = 1;  // the fake producer answers finish_reason "stop"
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  auto ev = sse_events(r.body);
  EXPECT_EQ(joined_text(ev), "A");
  EXPECT_EQ(d.bodies().size(), 0u);
  auto one = call(port_, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":1})");
  EXPECT_EQ(json::parse(one.body)["choices"][0]["text"], "A");
  EXPECT_EQ(d.bodies().size(), 0u);
}

TEST_F(ProxyServerTest, PrefillFailureRetriesThenDecodePrefillsItself) {
  FakeInstance p1(true), p2(true), d(false);
  p1.fail_with = 500;
  p2.fail_with = 500;
  start_proxy({&p1, &p2}, {&d});
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(joined_text(sse_events(r.body)), "A B C D");  // same output, all from the decode instance
  EXPECT_EQ(p1.bodies().size() + p2.bodies().size(), 2u);  // tried once each
  ASSERT_EQ(d.bodies().size(), 1u);
  EXPECT_FALSE(d.bodies()[0].contains("kv_transfer_params"));
  EXPECT_EQ(proxy_->metrics().prefill_retries.load(), 1);
  EXPECT_EQ(proxy_->metrics().prefill_fallbacks.load(), 1);
}

TEST_F(ProxyServerTest, DeadPrefillInstanceIsRetriedElsewhereAndEjected) {
  auto p1 = std::make_unique<FakeInstance>(true);
  FakeInstance p2(true), d(false);
  start_proxy({p1.get(), &p2}, {&d});
  p1.reset();  // gone: its sockets are closed, as when the process dies
  for (int i = 0; i < 4; ++i) {
    auto r = call(port_, "POST", "/v1/completions", R"({"prompt":"hello","max_tokens":4})");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["choices"][0]["text"], "A B C D");
  }
  EXPECT_EQ(p2.bodies().size(), 4u);
  EXPECT_EQ(proxy_->metrics().prefill_fallbacks.load(), 0);
  EXPECT_FALSE(proxy_->registry().snapshot()[0].healthy);
}

TEST_F(ProxyServerTest, HungPrefillInstanceFailsOverWhenItsHealthCheckFails) {
  FakeInstance p(true), d(false);
  p.hang = true;
  start_proxy({&p}, {&d});
  auto fut = std::async(std::launch::async, [&] {
    return call(port_, "POST", "/v1/completions", R"({"prompt":"hello","max_tokens":4})");
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(fut.wait_for(0ms), std::future_status::timeout);  // stuck on the hung instance
  p.health_status = 503;
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  auto r = fut.get();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["choices"][0]["text"], "A B C D");
  EXPECT_EQ(proxy_->metrics().prefill_fallbacks.load(), 1);
  EXPECT_EQ(call(port_, "GET", "/health").status, 503);
}

TEST_F(ProxyServerTest, DecodeFailureBeforeFirstByteIsRetried) {
  FakeInstance p(true), d1(false), d2(false);
  d1.fail_with = 503;
  start_proxy({&p}, {&d1, &d2});
  for (int i = 0; i < 2; ++i) {
    auto r = call(port_, "POST", "/v1/completions", kStreamBody);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(joined_text(sse_events(r.body)), "A B C D");
  }
  EXPECT_EQ(d2.bodies().size(), 2u);
  EXPECT_GE(proxy_->metrics().decode_retries.load(), 1);
}

TEST_F(ProxyServerTest, AllDecodesFailingEndsStreamWithErrorEvent) {
  FakeInstance p(true), d(false);
  d.fail_with = 500;
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  ASSERT_EQ(r.status, 200);  // the first token was already streamed
  auto ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev[0]["choices"][0]["text"], "A");
  EXPECT_TRUE(ev[ev.size() - 2].contains("error"));
  EXPECT_EQ(ev.back(), "[DONE]");
  auto n = call(port_, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":4})");
  EXPECT_EQ(n.status, 502);  // the decode instance answered 500 (and is not ejected for it)
  EXPECT_TRUE(json::parse(n.body).contains("error"));
}

TEST_F(ProxyServerTest, ClientErrorsAreRelayed) {
  FakeInstance p(true), d(false);
  p.fail_with = 400;
  start_proxy({&p}, {&d});
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(d.bodies().size(), 0u);
  EXPECT_EQ(call(port_, "POST", "/v1/completions", "{not json").status, 400);
  EXPECT_EQ(call(port_, "POST", "/v1/completions", R"({"model":"x"})").status, 400);
  EXPECT_EQ(call(port_, "GET", "/nope").status, 404);
}

TEST_F(ProxyServerTest, ClientDisconnectCancelsTheDecodeLeg) {
  FakeInstance p(true), d(false);
  d.num_tokens = 200;
  d.chunk_delay_ms = 20;
  start_proxy({&p}, {&d});
  boost::asio::io_context io;
  net::HttpClient client(io, "127.0.0.1", static_cast<uint16_t>(port_));
  net::HttpClientRequest req;
  req.method = "POST";
  req.target = "/v1/completions";
  req.body = kStreamBody;
  std::shared_ptr<net::HttpCall> handle;
  std::string got;
  Status final_status;
  handle = client.request(std::move(req), {.on_head = nullptr,
                                           .on_body =
                                               [&](std::string_view piece) {
                                                 got.append(piece);
                                                 if (got.find(" B") != std::string::npos) handle->cancel();
                                               },
                                           .on_complete = [&](const Status& st) { final_status = st; }});
  io.run_for(10s);
  EXPECT_EQ(final_status.code(), StatusCode::kAborted);
  for (int i = 0; i < 200 && d.disconnects.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(d.disconnects.load(), 1);
  for (int i = 0; i < 200 && proxy_->metrics().client_disconnects.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(proxy_->metrics().client_disconnects.load(), 1);
  for (const auto& s : proxy_->registry().snapshot()) EXPECT_EQ(s.active_requests, 0);
}

TEST_F(ProxyServerTest, HealthFollowsInstances) {
  FakeInstance p(true), d(false);
  start_proxy({&p}, {&d});
  EXPECT_EQ(call(port_, "GET", "/health").status, 200);
  d.health_status = 503;
  int status = 200;
  for (int i = 0; i < 100 && status == 200; ++i) {
    std::this_thread::sleep_for(20ms);
    status = call(port_, "GET", "/health").status;
  }
  EXPECT_EQ(status, 503);
  d.health_status = 200;
  for (int i = 0; i < 100 && status != 200; ++i) {
    std::this_thread::sleep_for(20ms);
    status = call(port_, "GET", "/health").status;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(ProxyServerTest, ModelsMetricsAndApiKey) {
  FakeInstance p(true), d(false);
  ProxyConfig cfg;
  cfg.api_key = "sekret";
  start_proxy({&p}, {&d}, cfg);
  EXPECT_EQ(call(port_, "POST", "/v1/completions", kStreamBody).status, 401);
  EXPECT_EQ(call(port_, "GET", "/v1/models").status, 401);
  std::vector<net::HttpHeader> auth = {{"Authorization", "Bearer sekret"}};
  auto m = call(port_, "GET", "/v1/models", "", auth);
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(json::parse(m.body)["data"][0]["id"], "fake");
  auto r = call(port_, "POST", "/v1/completions", kStreamBody, auth);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(p.auth_seen.load(), 1);  // the client's header went to both legs
  EXPECT_EQ(d.auth_seen.load(), 1);
  auto metrics = call(port_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("tandem_proxy_requests_total{endpoint=\"completions\"} 2"), std::string::npos);
  EXPECT_NE(metrics.body.find("tandem_proxy_prefill_seconds_count 1"), std::string::npos);
  EXPECT_NE(metrics.body.find("tandem_proxy_handoff_seconds_count 1"), std::string::npos);
  EXPECT_NE(metrics.body.find("tandem_proxy_instance_healthy{role=\"decode\""), std::string::npos);
}

// The legacy threading (upstream connections on threads of their own) relays, merges and cancels too.
TEST_F(ProxyServerTest, SeparateUpstreamThreadsRelayAndCancel) {
  FakeInstance p(true), d(false);
  ProxyConfig cfg;
  cfg.upstream_threads = 2;
  start_proxy({&p}, {&d}, cfg);
  auto r = call(port_, "POST", "/v1/completions", kStreamBody);
  EXPECT_EQ(r.status, 200);
  auto ev = sse_events(r.body);
  EXPECT_EQ(joined_text(ev), "A B C D");
  EXPECT_EQ(ev.back(), "[DONE]");
  auto n = call(port_, "POST", "/v1/completions", R"({"model":"fake","prompt":"hello","max_tokens":4})");
  EXPECT_EQ(n.status, 200);
  EXPECT_EQ(json::parse(n.body)["choices"][0]["text"], "A B C D");
  EXPECT_EQ(call(port_, "GET", "/v1/models").status, 200);
}

// Concurrent streams land on different proxy threads; each request's upstream calls run on its own
// connection's thread, and every stream comes out whole.
TEST_F(ProxyServerTest, ConcurrentStreamsOverSeveralThreads) {
  FakeInstance p(true), d(false);
  d.chunk_delay_ms = 5;
  ProxyConfig cfg;
  cfg.server_threads = 3;
  start_proxy({&p}, {&d}, cfg);
  constexpr int kStreams = 12;
  boost::asio::io_context io;
  net::HttpClient client(io, "127.0.0.1", static_cast<uint16_t>(port_));
  std::vector<std::string> bodies(kStreams);
  std::vector<Status> statuses(kStreams, InternalError("not completed"));
  for (int i = 0; i < kStreams; ++i) {
    net::HttpClientRequest req;
    req.method = "POST";
    req.target = "/v1/completions";
    req.body = kStreamBody;
    req.total_timeout = 20s;
    client.request(std::move(req), {.on_head = nullptr,
                                    .on_body = [&bodies, i](std::string_view piece) { bodies[i].append(piece); },
                                    .on_complete = [&statuses, i](const Status& st) { statuses[i] = st; }});
  }
  io.run_for(20s);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << statuses[i].to_string();
    auto ev = sse_events(bodies[i]);
    EXPECT_EQ(joined_text(ev), "A B C D") << bodies[i];
    int usage_chunks = 0;
    for (const auto& e : ev) usage_chunks += e.is_object() && e.contains("usage") && e["usage"].is_object();
    EXPECT_EQ(usage_chunks, 1);
  }
  EXPECT_EQ(d.bodies().size(), static_cast<size_t>(kStreams));
  for (const auto& s : proxy_->registry().snapshot()) EXPECT_EQ(s.active_requests, 0);
}

TEST(ProxyConfigTest, Validates) {
  ProxyConfig c;
  EXPECT_FALSE(c.validate().ok());  // no instances
  c.prefill_urls = {"http://a:1"};
  EXPECT_FALSE(c.validate().ok());  // no decode
  c.decode_urls = {"http://b:2"};
  EXPECT_TRUE(c.validate().ok());
  c.colocated_urls = {"http://c:3"};
  EXPECT_FALSE(c.validate().ok());  // both kinds of fleet
  c.prefill_urls.clear();
  c.decode_urls.clear();
  EXPECT_TRUE(c.validate().ok());
  c.colocated_urls = {"https://c:3"};
  EXPECT_FALSE(c.validate().ok());
  c.colocated_urls = {"http://c:3"};
  c.upstream_threads = 0;  // the default: the client-facing threads drive the upstream connections
  EXPECT_TRUE(c.validate().ok());
  c.upstream_threads = -1;
  EXPECT_FALSE(c.validate().ok());
  c.upstream_threads = 2;
  c.server_threads = 0;
  EXPECT_FALSE(c.validate().ok());
}

}  // namespace
}  // namespace tandem::proxy
