// Error JSON, response/chunk bodies and Prometheus rendering.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/openai_response.h"
#include "server/prometheus.h"
#include "server/server_metrics.h"

namespace tandem {
namespace {

using nlohmann::json;

TEST(ApiError, OpenAiShape) {
  auto e = ApiError::bad_request("bad 'max_tokens'", "max_tokens");
  json j = json::parse(e.to_json());
  EXPECT_EQ(j["error"]["message"], "bad 'max_tokens'");
  EXPECT_EQ(j["error"]["type"], "BadRequestError");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_EQ(e.to_response().status, 400);
  EXPECT_EQ(e.to_response().content_type, "application/json");
}

TEST(ApiError, StatusMapping) {
  EXPECT_EQ(ApiError::from_status(InvalidArgumentError("x")).http_status, 400);
  EXPECT_EQ(ApiError::from_status(OutOfRangeError("x")).http_status, 400);
  EXPECT_EQ(ApiError::from_status(NotFoundError("x")).http_status, 404);
  EXPECT_EQ(ApiError::from_status(ResourceExhaustedError("queue full")).http_status, 503);
  EXPECT_EQ(ApiError::from_status(UnavailableError("dead")).http_status, 503);
  EXPECT_EQ(ApiError::from_status(InternalError("bug")).http_status, 500);
  EXPECT_EQ(ApiError::unauthorized("k").type, "AuthenticationError");
  EXPECT_EQ(ApiError::not_found("m").type, "NotFoundError");
  // Invalid UTF-8 in a message never breaks the JSON.
  EXPECT_NO_THROW(json::parse(ApiError::bad_request("bad \xff byte").to_json()));
}

TEST(ResponseBuilder, CompletionFullResponse) {
  OpenAiResponseBuilder b(ApiEndpoint::kCompletions, "cmpl-1", 1700000000, "tiny", nullptr, false);
  UsageInfo u{5, 3, 2};
  json j = json::parse(b.full_response("abc", {}, FinishReason::kLength, std::nullopt, u, R"({"k": 1})"));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  EXPECT_EQ(j["kv_transfer_params"]["k"], 1);
}

TEST(ResponseBuilder, ChatChunksAndUsage) {
  OpenAiResponseBuilder b(ApiEndpoint::kChatCompletions, "chatcmpl-1", 1, "tiny", nullptr, false, {7});
  json role = json::parse(b.role_chunk());
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  json mid = json::parse(b.delta_chunk("hi", {}, std::nullopt, std::nullopt));
  EXPECT_EQ(mid["choices"][0]["delta"]["content"], "hi");
  EXPECT_TRUE(mid["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(mid.contains("usage"));
  json last = json::parse(b.delta_chunk("", {}, FinishReason::kStop, std::string("7")));
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(last["choices"][0]["stop_reason"], 7);  // a stop token id is reported as an integer
  json u = json::parse(b.usage_chunk(UsageInfo{3, 4, std::nullopt}));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 7);
  json full = json::parse(b.full_response("hello", {}, FinishReason::kStop, std::string("END"), {1, 1, std::nullopt},
                                          std::nullopt));
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(full["choices"][0]["stop_reason"], "END");
  EXPECT_TRUE(full["kv_transfer_params"].is_null());
}

TEST(ResponseBuilder, Logprobs) {
  std::vector<TokenLogprob> lps(2);
  lps[0] = {5, -0.5f, {{5, -0.5f}, {6, -1.5f}}};
  lps[1] = {6, -0.25f, {{6, -0.25f}}};
  OpenAiResponseBuilder c(ApiEndpoint::kCompletions, "cmpl-1", 1, "m", nullptr, true);
  json j = json::parse(c.delta_chunk("ab", lps, std::nullopt, std::nullopt));
  auto lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"][0], "token_id:5");
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -0.25f);
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_EQ(lp["text_offset"][1], 10);  // "token_id:5" is 10 characters
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  OpenAiResponseBuilder chat(ApiEndpoint::kChatCompletions, "chatcmpl-1", 1, "m", nullptr, true);
  json k = json::parse(chat.delta_chunk("ab", lps, std::nullopt, std::nullopt));
  auto content = k["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "token_id:5");
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_TRUE(content[0]["bytes"].is_array());
}

TEST(Prometheus, HistogramBucketsAreCumulative) {
  PrometheusHistogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.1);  // le="0.1" includes the bound
  h.observe(0.5);
  h.observe(5.0);
  PrometheusWriter w;
  w.header("x_seconds", "histogram", "help");
  w.histogram("x_seconds", "a=\"b\"", h.snapshot());
  const std::string& t = w.text();
  EXPECT_NE(t.find("# TYPE x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(t.find("x_seconds_bucket{a=\"b\",le=\"0.1\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{a=\"b\",le=\"1.0\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_count{a=\"b\"} 4.0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_sum{a=\"b\"} 5.65\n"), std::string::npos) << t;
}

TEST(Prometheus, ServerMetricsNames) {
  ServerMetrics m("tiny \"model\"");
  m.observe_time_to_first_token(0.02);
  m.observe_inter_token_latency(0.01);
  m.observe_finished({FinishReason::kLength, 10, 5, 0.5, 0.01, true});
  EngineMetrics e;
  e.num_running = 2;
  e.num_used_blocks = 7;
  e.num_free_blocks = 93;
  KvConnectorMetrics c;
  c.bytes_moved = 1024;
  c.transfer_seconds = {0.002};
  std::string t = m.render(e, c, 3);
  for (const char* name :
       {"tandem:num_requests_running{", "tandem:num_requests_waiting{", "tandem:kv_cache_usage_perc{",
        "tandem:prefix_cache_queries_total{", "tandem:prefix_cache_hits_total{", "tandem:num_preemptions_total{",
        "tandem:prompt_tokens_total{", "tandem:generation_tokens_total{", "tandem:request_success_total{",
        "tandem:time_to_first_token_seconds_bucket{", "tandem:inter_token_latency_seconds_bucket{",
        "tandem:e2e_request_latency_seconds_bucket{", "tandem:request_queue_time_seconds_bucket{",
        "tandem:kv_cache_used_blocks{", "tandem:kv_cache_free_blocks{", "tandem:kv_transfer_bytes_total{",
        "tandem:kv_transfer_time_seconds_bucket{", "tandem:kv_transfer_failures_total{",
        "tandem:kv_transfer_recomputes_total{"}) {
    EXPECT_NE(t.find(name), std::string::npos) << name;
  }
  EXPECT_NE(t.find("model_name=\"tiny \\\"model\\\"\""), std::string::npos);
  EXPECT_NE(t.find("tandem:num_requests_running{model_name=\"tiny \\\"model\\\"\"} 2.0\n"), std::string::npos);
  EXPECT_NE(t.find("tandem:kv_cache_used_blocks{model_name=\"tiny \\\"model\\\"\"} 7.0\n"), std::string::npos);
  EXPECT_NE(t.find("finished_reason=\"length\"} 1.0"), std::string::npos);
  EXPECT_NE(t.find("tandem:prompt_tokens_total{model_name=\"tiny \\\"model\\\"\"} 10.0"), std::string::npos);
  // Without a connector there are no transfer metrics.
  EXPECT_EQ(m.render(e, std::nullopt, 0).find("kv_transfer"), std::string::npos);
}

}  // namespace
}  // namespace tandem
