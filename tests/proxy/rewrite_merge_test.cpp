// Request rewriting (prefill/decode legs), SSE stream merging and non-streaming response merging.
#include <gtest/gtest.h>

#include "net/sse.h"
#include "proxy/request_rewriter.h"
#include "proxy/response_merger.h"
#include "proxy/stream_merger.h"

namespace tandem::proxy {
namespace {

// The JSON payloads of the "data: " events in an SSE byte string ("[DONE]" kept as a string).
std::vector<json> events(const std::string& sse) {
  SseParser p;
  std::vector<json> out;
  for (auto& e : p.feed(sse)) {
    out.push_back(e.data == "[DONE]" ? json("[DONE]") : json::parse(e.data));
  }
  return out;
}

TEST(RequestRewriter, InspectsAndEstimates) {
  json body = {{"model", "m"}, {"prompt", std::string(400, 'a')}, {"stream", true},
               {"stream_options", {{"include_usage", true}}}, {"max_tokens", 7}};
  auto info = inspect_request(body, ApiKind::kCompletions);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->stream);
  EXPECT_TRUE(info->include_usage);
  EXPECT_EQ(info->model, "m");
  EXPECT_EQ(info->prompt_tokens_estimate, 100);
  EXPECT_EQ(*info->max_tokens, 7);
  EXPECT_TRUE(info->disaggregatable);

  EXPECT_EQ(estimate_prompt_tokens({{"prompt", json::array({1, 2, 3, 4, 5})}}, ApiKind::kCompletions), 5);
  json chat = {{"messages", json::array({{{"role", "user"}, {"content", std::string(40, 'x')}}})},
               {"max_tokens", 9}, {"max_completion_tokens", 3}};
  auto ci = inspect_request(chat, ApiKind::kChat);
  ASSERT_TRUE(ci.ok());
  EXPECT_EQ(ci->prompt_tokens_estimate, 14);
  EXPECT_EQ(*ci->max_tokens, 3);  // max_completion_tokens wins
  EXPECT_FALSE(ci->stream);
}

TEST(RequestRewriter, RejectsWhatItCannotRoute) {
  EXPECT_FALSE(inspect_request(json::array(), ApiKind::kCompletions).ok());
  EXPECT_FALSE(inspect_request({{"model", "m"}}, ApiKind::kCompletions).ok());
  EXPECT_FALSE(inspect_request({{"prompt", 5}}, ApiKind::kCompletions).ok());
  EXPECT_FALSE(inspect_request({{"messages", json::array()}}, ApiKind::kChat).ok());
  EXPECT_FALSE(inspect_request({{"prompt", "x"}, {"stream", "yes"}}, ApiKind::kCompletions).ok());
}

TEST(RequestRewriter, NonSplittableRequestsGoDirect) {
  auto n2 = inspect_request({{"prompt", "x"}, {"n", 2}}, ApiKind::kCompletions);
  EXPECT_FALSE(n2->disaggregatable);
  auto echo = inspect_request({{"prompt", "x"}, {"echo", true}}, ApiKind::kCompletions);
  EXPECT_FALSE(echo->disaggregatable);
  auto multi = inspect_request({{"prompt", json::array({"a", "b"})}}, ApiKind::kCompletions);
  EXPECT_FALSE(multi->disaggregatable);
  auto one = inspect_request({{"prompt", json::array({"a"})}}, ApiKind::kCompletions);
  EXPECT_TRUE(one->disaggregatable);
}

TEST(RequestRewriter, PrefillLeg) {
  json body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
               {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"max_tokens", 50},
               {"min_tokens", 5}, {"temperature", 0}};
  json p = make_prefill_body(body, ApiKind::kChat);
  EXPECT_EQ(p["max_tokens"], 1);
  EXPECT_EQ(p["max_completion_tokens"], 1);
  EXPECT_EQ(p["stream"], false);
  EXPECT_FALSE(p.contains("stream_options"));
  EXPECT_EQ(p["min_tokens"], 1);
  EXPECT_EQ(p["kv_transfer_params"], json({{"do_remote_decode", true}}));
  EXPECT_EQ(p["temperature"], 0);
  EXPECT_EQ(p["messages"], body["messages"]);
  json c = make_prefill_body({{"prompt", "x"}, {"max_tokens", 5}}, ApiKind::kCompletions);
  EXPECT_FALSE(c.contains("max_completion_tokens"));
  EXPECT_FALSE(c.contains("min_tokens"));
}

TEST(RequestRewriter, DecodeLeg) {
  json body = {{"prompt", "x"}, {"max_tokens", 5}, {"stream", true}};
  json params = {{"do_remote_prefill", true}, {"remote_block_ids", json::array({1, 2})}};
  json d = make_decode_body(body, &params, true);
  EXPECT_EQ(d["kv_transfer_params"], params);
  EXPECT_EQ(d["stream_options"]["include_usage"], true);
  EXPECT_EQ(d["max_tokens"], 5);
  json self = make_decode_body(json{{"prompt", "x"}, {"kv_transfer_params", params}, {"stream_options", {{"continuous_usage_stats", true}}}},
                               nullptr, true);
  EXPECT_FALSE(self.contains("kv_transfer_params"));
  EXPECT_EQ(self["stream_options"]["continuous_usage_stats"], true);
  EXPECT_EQ(self["stream_options"]["include_usage"], true);
  json ns = make_decode_body(json{{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}, &params, false);
  EXPECT_EQ(ns["stream"], false);
  EXPECT_FALSE(ns.contains("stream_options"));
}

// The text edit of the decode body parses to exactly make_decode_body()'s object where it applies, and
// declines the shapes it does not handle.
TEST(RequestRewriter, DecodeBodyTextEditMatchesTheJsonRewrite) {
  const json params = {{"remote_block_ids", {1, 2}}, {"remote_engine_id", "e"}};
  struct Case {
    std::string raw;
    bool stream;
    bool with_params;
    bool edited;  // the text edit applies
  };
  const std::vector<Case> cases = {
      {R"({"model":"m","prompt":"hi","max_tokens":5,"stream":true})", true, false, true},
      {R"({"model":"m","prompt":"hi","stream":true}  )" "\n", true, true, true},
      {R"( { "prompt" : [1,2,3], "stream" : true, "stream_options": {"include_usage": true, "continuous_usage_stats": true} })",
       true, true, true},
      {R"({"prompt":"x"})", false, false, true},
      {R"({"prompt":"x","stream":false})", false, true, true},
      {R"({"messages":[{"role":"user","content":"}"}],"stream":true})", true, true, true},
      // Declined: the body has fields the edit would have to change.
      {R"({"prompt":"x","stream":true,"stream_options":{"continuous_usage_stats":true}})", true, false, false},
      {R"({"prompt":"x","stream":true,"stream_options":{"include_usage":false}})", true, false, false},
      {R"({"prompt":"x","stream_options":{"include_usage":true}})", false, false, false},
      {R"({"prompt":"x","stream":true,"kv_transfer_params":{"a":1}})", true, true, false},
      {R"({"prompt":"x","stream":null})", false, false, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.raw);
    const json body = json::parse(c.raw);
    const json* p = c.with_params ? &params : nullptr;
    auto text = rewrite_decode_body_text(c.raw, body, p, c.stream);
    ASSERT_EQ(text.has_value(), c.edited);
    if (text) EXPECT_EQ(json::parse(*text), make_decode_body(body, p, c.stream)) << *text;
  }
}

TEST(StreamMerger, ChunkKeyScan) {
  auto k = scan_chunk_keys(R"({"id":"x","choices":[{"index":0,"text":"a \"usage\" b","finish_reason":null}]})");
  EXPECT_FALSE(k.usage || k.error || k.empty_choices || k.role || k.tool_calls);
  k = scan_chunk_keys(R"({"id":"x","choices":[],"usage":{"prompt_tokens":1}})");
  EXPECT_TRUE(k.usage);
  EXPECT_TRUE(k.empty_choices);
  EXPECT_FALSE(k.error);
  k = scan_chunk_keys(R"({"choices":[{"delta":{"role":"assistant","tool_calls":[]}}]})");
  EXPECT_TRUE(k.role);
  EXPECT_TRUE(k.tool_calls);
  EXPECT_FALSE(k.usage);
  EXPECT_TRUE(scan_chunk_keys(R"({"error":{"message":"m"}})").error);
  EXPECT_FALSE(scan_chunk_keys(R"(")").usage);  // a quote at the very end
  EXPECT_FALSE(scan_chunk_keys("").usage);
}

TEST(RequestRewriter, FirstTokenEndsRequest) {
  RequestInfo info;
  json more = {{"choices", json::array({{{"text", "a"}, {"finish_reason", "length"}}})}};
  json stop = {{"choices", json::array({{{"text", ""}, {"finish_reason", "stop"}}})}};
  EXPECT_FALSE(first_token_ends_request(info, more));
  EXPECT_TRUE(first_token_ends_request(info, stop));
  info.max_tokens = 1;
  EXPECT_TRUE(first_token_ends_request(info, more));
  EXPECT_FALSE(extract_kv_transfer_params(more).ok());
  json with = more;
  with["kv_transfer_params"] = {{"remote_request_id", "r"}};
  EXPECT_EQ(extract_kv_transfer_params(with)->at("remote_request_id"), "r");
}

json prefill_completion() {
  return {{"id", "cmpl-P"}, {"object", "text_completion"}, {"created", 111}, {"model", "m"},
          {"choices", json::array({{{"index", 0}, {"text", " Hello"}, {"logprobs", nullptr}, {"finish_reason", "length"}}})},
          {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 1}, {"total_tokens", 11}}},
          {"kv_transfer_params", {{"do_remote_prefill", true}}}};
}

std::string decode_chunk(const std::string& id, const std::string& text, json finish = nullptr) {
  json j = {{"id", id}, {"object", "text_completion"}, {"created", 222}, {"model", "m"},
            {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}}})}};
  return j.dump();
}

TEST(StreamMerger, CompletionsFirstTokenThenDecodeWithOneIdAndMergedUsage) {
  RequestInfo info;
  info.stream = true;
  info.include_usage = true;
  StreamMerger m(info, /*decode_usage_counts_first_token=*/true);
  auto first = m.first_token_events(prefill_completion(), false);
  ASSERT_TRUE(first.ok());
  auto ev = events(*first);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["id"], "cmpl-P");
  EXPECT_EQ(ev[0]["object"], "text_completion");
  EXPECT_EQ(ev[0]["created"], 111);
  EXPECT_EQ(ev[0]["choices"][0]["text"], " Hello");
  EXPECT_TRUE(ev[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(ev[0].contains("kv_transfer_params"));

  std::string out = m.decode_event(decode_chunk("cmpl-D", " world"));
  out += m.decode_event(decode_chunk("cmpl-D", "!", "length"));
  json usage_chunk = {{"id", "cmpl-D"}, {"object", "text_completion"}, {"created", 222}, {"model", "m"},
                      {"choices", json::array()},
                      {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 3}, {"total_tokens", 13}}}};
  EXPECT_EQ(m.decode_event(usage_chunk.dump()), "");  // held back
  EXPECT_EQ(m.decode_event("[DONE]"), "");
  EXPECT_TRUE(m.decode_done());
  out += m.finish();
  EXPECT_EQ(m.finish(), "");  // once
  auto rest = events(out);
  ASSERT_EQ(rest.size(), 4u);
  EXPECT_EQ(rest[0]["id"], "cmpl-P");
  EXPECT_EQ(rest[0]["created"], 111);
  EXPECT_EQ(rest[0]["choices"][0]["text"], " world");
  EXPECT_EQ(rest[1]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(rest[2]["id"], "cmpl-P");
  EXPECT_TRUE(rest[2]["choices"].empty());
  EXPECT_EQ(rest[2]["usage"]["completion_tokens"], 3);
  EXPECT_EQ(rest[2]["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(rest[3], "[DONE]");
}

TEST(StreamMerger, AddsTheFirstTokenWhenDecodeUsageLeavesItOut) {
  RequestInfo info;
  info.stream = true;
  info.include_usage = true;
  StreamMerger m(info, /*decode_usage_counts_first_token=*/false);
  ASSERT_TRUE(m.first_token_events(prefill_completion(), false).ok());
  json usage_chunk = {{"id", "x"}, {"choices", json::array()},
                      {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 2}, {"total_tokens", 12}}}};
  m.decode_event(usage_chunk.dump());
  EXPECT_EQ(m.merged_usage()["completion_tokens"], 3);
  EXPECT_EQ(m.merged_usage()["total_tokens"], 13);
}

TEST(StreamMerger, NoUsageChunkUnlessAsked) {
  RequestInfo info;
  info.stream = true;
  StreamMerger m(info);
  ASSERT_TRUE(m.first_token_events(prefill_completion(), false).ok());
  json usage_chunk = {{"id", "x"}, {"choices", json::array()}, {"usage", {{"completion_tokens", 2}}}};
  EXPECT_EQ(m.decode_event(usage_chunk.dump()), "");
  auto ev = events(m.finish());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], "[DONE]");
}

TEST(StreamMerger, FinalFirstTokenEndsTheStream) {
  RequestInfo info;
  info.stream = true;
  info.include_usage = true;
  StreamMerger m(info);
  json p = prefill_completion();
  p["choices"][0]["finish_reason"] = "stop";
  auto ev = events(*m.first_token_events(p, true));
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ev[1]["usage"]["completion_tokens"], 1);
  EXPECT_EQ(ev[2], "[DONE]");
}

TEST(StreamMerger, ChatRoleSentOnceAndEmptyChunksDropped) {
  RequestInfo info;
  info.kind = ApiKind::kChat;
  info.stream = true;
  StreamMerger m(info);
  json p = {{"id", "chatcmpl-P"}, {"object", "chat.completion"}, {"created", 5}, {"model", "m"},
            {"choices", json::array({{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "Hi"}}},
                                      {"logprobs", nullptr}, {"finish_reason", "length"}}})}};
  auto ev = events(*m.first_token_events(p, false));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(ev[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(ev[1]["choices"][0]["delta"]["content"], "Hi");
  EXPECT_FALSE(ev[1]["choices"][0]["delta"].contains("role"));

  auto chunk = [](json delta, json finish = nullptr) {
    return json{{"id", "chatcmpl-D"}, {"object", "chat.completion.chunk"}, {"created", 6}, {"model", "m"},
                {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}})}}
        .dump();
  };
  EXPECT_EQ(m.decode_event(chunk({{"role", "assistant"}, {"content", ""}})), "");
  auto a = events(m.decode_event(chunk({{"role", "assistant"}, {"content", " there"}})));
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["id"], "chatcmpl-P");
  EXPECT_EQ(a[0]["choices"][0]["delta"], json({{"content", " there"}}));
  auto b = events(m.decode_event(chunk(json::object(), "stop")));
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]["choices"][0]["finish_reason"], "stop");
}

TEST(StreamMerger, PassThroughWithoutFirstToken) {
  RequestInfo info;
  info.stream = true;
  info.include_usage = false;
  StreamMerger m(info);
  std::string a = m.decode_event(decode_chunk("cmpl-D", "x"));
  auto ev = events(a);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["id"], "cmpl-D");
  json usage_chunk = {{"id", "cmpl-D"}, {"choices", json::array()}, {"usage", {{"completion_tokens", 4}}}};
  EXPECT_EQ(m.decode_event(usage_chunk.dump()), "");
  EXPECT_EQ(m.merged_usage()["completion_tokens"], 4);  // no first-token adjustment in pass-through
  EXPECT_EQ(events(m.finish()).size(), 1u);
  // Non-JSON and error payloads are relayed untouched.
  EXPECT_EQ(m.decode_event("not json"), sse_data("not json"));
  std::string err = R"({"error":{"message":"boom"}})";
  EXPECT_EQ(m.decode_event(err), sse_data(err));
}

TEST(StreamMerger, RewritesIdsWhateverTheKeyOrderAndSpacing) {
  RequestInfo info;
  info.stream = true;
  StreamMerger m(info);
  ASSERT_TRUE(m.first_token_events(prefill_completion(), false).ok());
  const std::string compact =
      R"({"id":"cmpl-D","object":"text_completion","created":222,"model":"m","choices":[{"index":0,"text":" x","logprobs":null,"finish_reason":null}]})";
  const std::string spaced =
      R"({"id": "cmpl-D", "object": "text_completion", "created": 222, "model": "m", "choices": [{"index": 0, "text": " y", "logprobs": null, "finish_reason": null}]})";
  const std::string tool =
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_1"}]}}],"created":222,"id":"cmpl-D","model":"m"})";
  for (const auto& in : {compact, spaced, tool}) {
    auto ev = events(m.decode_event(in));
    ASSERT_EQ(ev.size(), 1u) << in;
    EXPECT_EQ(ev[0]["id"], "cmpl-P") << in;
    EXPECT_EQ(ev[0]["created"], 111) << in;
  }
  EXPECT_EQ(events(m.decode_event(compact))[0]["choices"][0]["text"], " x");
  EXPECT_EQ(events(m.decode_event(tool))[0]["choices"][0]["delta"]["tool_calls"][0]["id"], "call_1");
}

TEST(StreamMerger, ErrorEventsEndTheStream) {
  RequestInfo info;
  StreamMerger m(info);
  auto ev = events(m.error_events("decode died", 502));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["error"]["message"], "decode died");
  EXPECT_EQ(ev[0]["error"]["code"], 502);
  EXPECT_EQ(ev[1], "[DONE]");
  EXPECT_EQ(m.finish(), "");
}

TEST(StreamMerger, RejectsPrefillAnswerWithoutChoices) {
  RequestInfo info;
  StreamMerger m(info);
  EXPECT_FALSE(m.first_token_events(json{{"id", "x"}}, false).ok());
  EXPECT_FALSE(m.first_token_events(json{{"choices", json::array()}}, false).ok());
}

TEST(ResponseMerger, CompletionsTextLogprobsUsage) {
  json p = prefill_completion();
  p["choices"][0]["logprobs"] = {{"tokens", {" Hello"}}, {"token_logprobs", {-0.5}}, {"top_logprobs", {nullptr}},
                                 {"text_offset", {0}}};
  json d = {{"id", "cmpl-D"}, {"object", "text_completion"}, {"created", 222}, {"model", "m"},
            {"choices", json::array({{{"index", 0}, {"text", " world"}, {"finish_reason", "length"},
                                      {"logprobs", {{"tokens", {" world"}}, {"token_logprobs", {-1.0}},
                                                    {"top_logprobs", {nullptr}}, {"text_offset", {0}}}}}})},
            {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 2}, {"total_tokens", 12}}},
            {"kv_transfer_params", nullptr}};
  auto m = merge_responses(ApiKind::kCompletions, p, d, true);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["id"], "cmpl-P");
  EXPECT_EQ((*m)["choices"][0]["text"], " Hello world");
  EXPECT_EQ((*m)["choices"][0]["finish_reason"], "length");
  EXPECT_EQ((*m)["choices"][0]["logprobs"]["tokens"], json({" Hello", " world"}));
  EXPECT_EQ((*m)["choices"][0]["logprobs"]["text_offset"], json({0, 6}));
  EXPECT_EQ((*m)["usage"]["completion_tokens"], 2);
  EXPECT_FALSE(m->contains("kv_transfer_params"));
  auto m2 = merge_responses(ApiKind::kCompletions, p, d, false);
  EXPECT_EQ((*m2)["usage"]["completion_tokens"], 3);
  EXPECT_EQ((*m2)["usage"]["total_tokens"], 13);
  EXPECT_FALSE(merge_responses(ApiKind::kCompletions, p, json{{"x", 1}}, true).ok());
}

TEST(ResponseMerger, ChatContent) {
  json p = {{"id", "chatcmpl-P"}, {"choices", json::array({{{"message", {{"role", "assistant"}, {"content", "Hi"}}}, {"finish_reason", "length"}}})}};
  json d = {{"id", "chatcmpl-D"}, {"choices", json::array({{{"message", {{"role", "assistant"}, {"content", " there"}}}, {"finish_reason", "stop"}}})}};
  auto m = merge_responses(ApiKind::kChat, p, d, true);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["choices"][0]["message"]["content"], "Hi there");
  EXPECT_EQ((*m)["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ((*m)["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ((*m)["id"], "chatcmpl-P");
  json only = finalize_prefill_only(prefill_completion());
  EXPECT_FALSE(only.contains("kv_transfer_params"));
  EXPECT_EQ(only["choices"][0]["text"], " Hello");
}

}  // namespace
}  // namespace tandem::proxy
