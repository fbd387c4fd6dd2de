// Request parsing and validation: JSON bodies -> OpenAiRequest (fields, defaults, type and range errors).
#include <gtest/gtest.h>

#include "server/openai_request.h"

namespace tandem {
namespace {

TEST(ParseCompletion, FullRequest) {
  auto r = parse_completion_request(R"({
    "model": "m", "prompt": "hello", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
    "min_p": 0.1, "seed": 42, "stop": ["a", "b"], "stop_token_ids": [1, 2], "ignore_eos": true,
    "min_tokens": 2, "n": 1, "logprobs": 3, "echo": true, "repetition_penalty": 1.1,
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "stream": true,
    "stream_options": {"include_usage": true}, "user": "u", "kv_transfer_params": {"do_remote_decode": true},
    "unknown_field": {"ignored": 1}})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(*r->prompt_text, "hello");
  EXPECT_EQ(*r->max_tokens, 7);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.1f);
  EXPECT_EQ(*r->sampling.seed, 42u);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->sampling.stop_token_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_TRUE(r->sampling.ignore_eos);
  EXPECT_EQ(r->sampling.min_tokens, 2);
  EXPECT_EQ(*r->logprobs, 3);
  EXPECT_TRUE(r->echo);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, -0.5f);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->user, "u");
  EXPECT_EQ(*r->kv_transfer_params_json, R"({"do_remote_decode":true})");
  EXPECT_TRUE(r->add_special_tokens);
}

TEST(ParseCompletion, PromptForms) {
  auto a = parse_completion_request(R"({"prompt": [1, 2, 3]})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a->prompt_token_ids, (std::vector<int32_t>{1, 2, 3}));
  auto b = parse_completion_request(R"({"prompt": ["text"]})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b->prompt_text, "text");
  auto c = parse_completion_request(R"({"prompt": [[4, 5]]})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c->prompt_token_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_FALSE(parse_completion_request(R"({"prompt": ["a", "b"]})").ok());
  EXPECT_FALSE(parse_completion_request(R"({"prompt": []})").ok());
  EXPECT_FALSE(parse_completion_request(R"({"prompt": [-1]})").ok());
  EXPECT_FALSE(parse_completion_request(R"({"prompt": 5})").ok());
  EXPECT_FALSE(parse_completion_request(R"({"max_tokens": 5})").ok());
}

TEST(ParseCompletion, Defaults) {
  auto r = parse_completion_request(R"({"prompt": "x", "temperature": null, "stop": null})");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_FALSE(r->stream);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_TRUE(r->sampling.stop.empty());
  EXPECT_EQ(default_max_tokens(*r, 10, 100), 16);
  EXPECT_EQ(default_max_tokens(*r, 95, 100), 5);
}

TEST(ParseCompletion, ErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  };
  const Case cases[] = {
      {R"({"prompt": "x", "max_tokens": "ten"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "temperature": -1})", "temperature"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "n": 2})", "n"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "stop": 3})", "stop"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "kv_transfer_params": "no"})", "kv_transfer_params"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"({"prompt": "x", "seed": 1.5})", "seed"},
  };
  for (const auto& c : cases) {
    auto r = parse_completion_request(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
}

TEST(ParseCompletion, MalformedJson) {
  for (const char* body : {"", "{", "{\"prompt\": }", "[1,2]", "null", "\"str\"", "{\"prompt\": \"\\ud800\"}x"}) {
    auto r = parse_completion_request(body);
    EXPECT_FALSE(r.ok()) << body;
  }
}

TEST(ParseChat, MessagesAndLogprobs) {
  auto r = parse_chat_request(R"({"model": "m", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}],
      "max_completion_tokens": 5, "logprobs": true, "top_logprobs": 2})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "hi\nthere");
  EXPECT_EQ(*r->max_tokens, 5);
  EXPECT_EQ(*r->logprobs, 2);
  EXPECT_FALSE(r->add_special_tokens);
  EXPECT_EQ(default_max_tokens(*r, 10, 100), 90);
}

TEST(ParseChat, Errors) {
  EXPECT_FALSE(parse_chat_request(R"({"messages": []})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"messages": "hi"})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"messages": [{"content": "x"}]})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"messages": [{"role": "wizard", "content": "x"}]})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"messages": [{"role": "user", "content": 5}]})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})").ok());
  EXPECT_FALSE(parse_chat_request(R"({"prompt": "x"})").ok());
}

}  // namespace
}  // namespace tandem
