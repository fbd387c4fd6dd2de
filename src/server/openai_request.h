// OpenAiRequest: a /v1/completions or /v1/chat/completions body, parsed and type-checked (the fields
// vLLM accepts that tandem's engine supports). Tokenization happens later (OpenAiServer), so this layer
// needs no tokenizer and no engine. Unknown fields are ignored, as vLLM does; wrong types and bad
// values are kInvalidArgument errors whose message names the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/sampling_params.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

enum class ApiEndpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  ApiEndpoint endpoint = ApiEndpoint::kCompletions;
  std::string model;  // empty: the served model

  // Completions: exactly one of prompt_text / prompt_token_ids is set.
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_token_ids;
  // Chat.
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;

  SamplingParams sampling;            // max_tokens left at its default when not given (see below)
  std::optional<int32_t> max_tokens;  // max_tokens / max_completion_tokens as sent
  bool add_special_tokens = true;     // completions: true; chat: false (the template has BOS)

  bool stream = false;
  bool include_usage = false;             // stream_options.include_usage
  bool continuous_usage_stats = false;    // stream_options.continuous_usage_stats
  bool echo = false;                      // completions: prepend the prompt to the text
  // Completions: logprobs = N (top N alternatives). Chat: logprobs = true, top_logprobs = N.
  std::optional<int32_t> logprobs;
  std::string user;
  std::optional<std::string> kv_transfer_params_json;  // the object, re-serialised
};

Result<OpenAiRequest> parse_completion_request(std::string_view body);
Result<OpenAiRequest> parse_chat_request(std::string_view body);

// max_tokens when the client did not send one: 16 for completions (OpenAI's default), the rest of the
// context for chat (vLLM's behaviour).
int32_t default_max_tokens(const OpenAiRequest& request, int32_t prompt_tokens, int32_t max_model_len);

}  // namespace tandem
