// OpenAiServer over HTTP on loopback with a fake engine: endpoints, streaming, errors, auth,
// disconnect -> abort, queue full -> 503, metrics.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include <thread>

#include "net/sse.h"
#include "server/fakes.h"
#include "server/openai_server.h"

namespace tandem {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
  json j() const { return json::parse(body); }
};

class Client {
 public:
  explicit Client(int port) : sock_(ioc_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    timeval tv{10, 0};
    setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& extra_headers = "") {
    send(method, target, body, extra_headers);
    http::response_parser<http::string_body> p;
    p.body_limit(64 << 20);
    boost::system::error_code ec;
    http::read(sock_, buf_, p, ec);
    Reply r;
    if (ec) return r;
    auto m = p.release();
    r.status = m.result_int();
    r.body = m.body();
    r.content_type = std::string(m[http::field::content_type]);
    return r;
  }
  void send(const std::string& method, const std::string& target, const std::string& body,
            const std::string& extra_headers = "") {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                      extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(sock_, asio::buffer(req));
  }
  tcp::socket& socket() { return sock_; }

 private:
  asio::io_context ioc_;
  tcp::socket sock_;
  boost::beast::flat_buffer buf_;
};

struct ServerFixture {
  testing::FakeEngine engine;
  OpenAiServer server;
  explicit ServerFixture(std::string api_key = "", int max_live = 100000)
      : engine(std::chrono::microseconds(1000), max_live), server(engine, make_options(std::move(api_key))) {
    Status st = server.start();
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
  static OpenAiServerOptions make_options(std::string key) {
    OpenAiServerOptions o;
    o.served_model_names = {"tiny"};
    o.api_key = std::move(key);
    return o;
  }
  bool wait_idle() {
    for (int i = 0; i < 500; ++i) {
      if (engine.live() == 0 && server.num_active_requests() == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

std::vector<json> sse_json_events(const std::string& body, bool* saw_done) {
  SseParser p;
  std::vector<json> out;
  *saw_done = false;
  for (auto& e : p.feed(body)) {
    if (e.data == "[DONE]") {
      *saw_done = true;
      continue;
    }
    out.push_back(json::parse(e.data));
  }
  return out;
}

TEST(OpenAiServer, CompletionNonStreaming) {
  ServerFixture f;
  Client c(f.server.port());
  Reply r = c.call("POST", "/v1/completions", R"({"model": "tiny", "prompt": "hello", "max_tokens": 5})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.j();
  EXPECT_TRUE(j["id"].get<std::string>().starts_with("cmpl-"));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["text"], "abcde");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 6);  // BOS + 5 bytes
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 11);
  EngineRequest er = f.engine.last_request();
  EXPECT_EQ(er.sampling.max_tokens, 5);
  EXPECT_EQ(er.prompt_token_ids.size(), 6u);
}

TEST(OpenAiServer, RequestIdHeaderAndKvTransferParams) {
  ServerFixture f;
  Client c(f.server.port());
  Reply r = c.call("POST", "/v1/completions",
                   R"({"prompt": [5, 6, 7], "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": true}})",
                   "X-Request-Id: abc123\r\n");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["id"], "cmpl-abc123");
  EXPECT_EQ(r.j()["kv_transfer_params"]["echo"], true);
  EXPECT_EQ(*f.engine.last_request().kv_transfer_params_json, R"({"do_remote_decode":true})");
  EXPECT_EQ(f.engine.last_request().request_id, "cmpl-abc123");
}

TEST(OpenAiServer, CompletionStreamingWithUsage) {
  ServerFixture f;
  Client c(f.server.port());
  Reply r = c.call("POST", "/v1/completions",
                   R"({"prompt": "hi", "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true},
                       "echo": true})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/event-stream");
  bool done = false;
  auto events = sse_json_events(r.body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) text += events[i]["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, "hiabcd");  // echo + generated
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  const json& usage = events.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 4);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 3);
}

TEST(OpenAiServer, ChatStreamingAndNot) {
  ServerFixture f;
  Client c(f.server.port());
  Reply r = c.call("POST", "/v1/chat/completions",
                   R"({"messages": [{"role": "user", "content": "yo"}], "max_tokens": 3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["object"], "chat.completion");
  EXPECT_EQ(r.j()["choices"][0]["message"]["content"], "abc");
  EXPECT_TRUE(r.j()["id"].get<std::string>().starts_with("chatcmpl-"));
  // No BOS added on top of the template's own.
  EXPECT_EQ(f.engine.last_request().prompt_token_ids.size(), std::string("<s>[user]yo\n[assistant]").size());

  Reply s = c.call("POST", "/v1/chat/completions",
                   R"({"messages": [{"role": "user", "content": "yo"}], "max_tokens": 3, "stream": true,
                       "logprobs": true, "top_logprobs": 1})");
  bool done = false;
  auto events = sse_json_events(s.body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (auto& e : events) {
    if (e["choices"][0]["delta"].contains("content")) text += e["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(events[1]["choices"][0]["logprobs"]["content"][0]["token"], "a");
}

TEST(OpenAiServer, ValidationErrors) {
  ServerFixture f;
  Client c(f.server.port());
  struct Case {
    const char* path;
    const char* body;
    int status;
  };
  const Case cases[] = {
      {"/v1/completions", "{not json", 400},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "many"})", 400},
      {"/v1/completions", R"({"prompt": "x", "model": "other"})", 404},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 300})", 400},  // beyond max_model_len 256
      {"/v1/completions", R"({"prompt": [999]})", 400},                   // out of vocabulary
      {"/v1/chat/completions", R"({"messages": 3})", 400},
      {"/v1/nothing", "{}", 404},
  };
  for (const auto& k : cases) {
    Reply r = c.call("POST", k.path, k.body);
    EXPECT_EQ(r.status, k.status) << k.body << " -> " << r.body;
    json j = r.j();
    EXPECT_TRUE(j["error"]["message"].is_string()) << r.body;
    EXPECT_EQ(j["error"]["code"], k.status);
  }
  std::string long_prompt(300, 'x');
  Reply r = c.call("POST", "/v1/completions", json{{"prompt", long_prompt}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("maximum context length is 256"), std::string::npos) << r.body;
  EXPECT_EQ(f.engine.live(), 0u);
}

TEST(OpenAiServer, ApiKey) {
  ServerFixture f("sekret");
  Client c(f.server.port());
  EXPECT_EQ(c.call("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1})").status, 401);
  EXPECT_EQ(c.call("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1})", "Authorization: Bearer nope\r\n")
                .status,
            401);
  EXPECT_EQ(c.call("GET", "/v1/models", "", "Authorization: Bearer sekret\r\n").status, 200);
  EXPECT_EQ(c.call("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1})",
                   "Authorization: Bearer sekret\r\n")
                .status,
            200);
  EXPECT_EQ(c.call("GET", "/health").status, 200);  // only /v1/* needs the key
  Reply r = c.call("GET", "/v1/models");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.j()["error"]["type"], "AuthenticationError");
}

TEST(OpenAiServer, DisconnectMidStreamAbortsRequest) {
  ServerFixture f;
  {
    Client c(f.server.port());
    c.send("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 200, "ignore_eos": true, "stream": true})");
    char buf[256];
    c.socket().read_some(asio::buffer(buf));  // streaming has begun
    EXPECT_EQ(f.engine.live(), 1u);
  }
  EXPECT_TRUE(f.wait_idle());
  EXPECT_GE(f.engine.aborts(), 1);
  Client c(f.server.port());
  Reply m = c.call("GET", "/metrics");
  EXPECT_NE(m.body.find("tandem:kv_cache_used_blocks{model_name=\"tiny\"} 0.0"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("finished_reason=\"abort\"} 1.0"), std::string::npos);
}

TEST(OpenAiServer, QueueFullIs503) {
  ServerFixture f("", /*max_live=*/1);
  Client a(f.server.port());
  a.send("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 200, "stream": true})");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Client b(f.server.port());
  Reply r = b.call("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.j()["error"]["type"], "ServiceUnavailableError");
  EXPECT_TRUE(f.wait_idle());  // the first request still completes
  EXPECT_EQ(b.call("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1})").status, 200);
}

TEST(OpenAiServer, SmallEndpoints) {
  ServerFixture f;
  Client c(f.server.port());
  Reply models = c.call("GET", "/v1/models");
  EXPECT_EQ(models.j()["data"][0]["id"], "tiny");
  EXPECT_EQ(models.j()["data"][0]["max_model_len"], 256);
  Reply tok = c.call("POST", "/tokenize", R"({"prompt": "ab"})");
  EXPECT_EQ(tok.j()["count"], 3);
  EXPECT_EQ(tok.j()["tokens"], json::array({0, 'a' + 1, 'b' + 1}));
  Reply tok2 = c.call("POST", "/tokenize", R"({"prompt": "ab", "add_special_tokens": false})");
  EXPECT_EQ(tok2.j()["count"], 2);
  Reply detok = c.call("POST", "/detokenize", R"({"tokens": [98, 99]})");
  EXPECT_EQ(detok.j()["prompt"], "ab");
  EXPECT_EQ(c.call("POST", "/detokenize", R"({"tokens": [-1]})").status, 400);
  EXPECT_EQ(c.call("GET", "/health").status, 200);
  EXPECT_EQ(c.call("GET", "/ping").status, 200);
  EXPECT_TRUE(c.call("GET", "/version").j()["version"].is_string());
  EXPECT_EQ(c.call("DELETE", "/health").status, 405);
}

TEST(OpenAiServer, ShutdownAbortsLongRequestsAndHealthGoesDown) {
  ServerFixture f;
  Client c(f.server.port());
  c.send("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 250, "stream": true})");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t0 = std::chrono::steady_clock::now();
  f.server.shutdown(std::chrono::milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(f.wait_idle());
}

TEST(OpenAiServer, ManyConcurrentStreams) {
  ServerFixture f;
  constexpr int kClients = 300;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(f.server.port()));
    clients.back()->send("POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 8, "stream": true})");
  }
  int complete = 0;
  for (auto& c : clients) {
    http::response_parser<http::string_body> p;
    boost::beast::flat_buffer buf;
    boost::system::error_code ec;
    http::read(c->socket(), buf, p, ec);
    complete += !ec && p.get().body().find("data: [DONE]") != std::string::npos;
  }
  EXPECT_EQ(complete, kClients);
  EXPECT_TRUE(f.wait_idle());
}

}  // namespace
}  // namespace tandem
