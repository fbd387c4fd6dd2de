// OpenAiResponseBuilder: renders the JSON bodies of one request's answer in the OpenAI / vLLM shapes:
// the full response (text_completion / chat.completion), stream chunks (text_completion /
// chat.completion.chunk), the final usage chunk, and logprobs in each endpoint's format.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "engine/request_output.h"
#include "server/openai_request.h"

namespace tandem {

class Tokenizer;

struct UsageInfo {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  std::optional<int32_t> cached_tokens;  // prompt_tokens_details.cached_tokens when known
};

class OpenAiResponseBuilder {
 public:
  // `tokenizer` (may be null) renders logprob tokens; `stop_token_ids` lets a numeric stop_reason be
  // reported as an integer as vLLM does.
  OpenAiResponseBuilder(ApiEndpoint endpoint, std::string id, int64_t created, std::string model,
                        const Tokenizer* tokenizer, bool with_logprobs, std::vector<int32_t> stop_token_ids = {});

  // Stream chunks (the JSON payload of one SSE event).
  std::string role_chunk() const;  // chat: the first chunk, delta {"role": "assistant", "content": ""}
  std::string delta_chunk(std::string_view text, std::span<const TokenLogprob> logprobs,
                          std::optional<FinishReason> finish, const std::optional<std::string>& stop_reason,
                          const std::optional<UsageInfo>& usage = std::nullopt);
  std::string usage_chunk(const UsageInfo& usage) const;  // choices [] + usage

  // Non-streaming body. `kv_transfer_params_json` (a JSON object text) becomes "kv_transfer_params".
  std::string full_response(std::string_view text, std::span<const TokenLogprob> logprobs, FinishReason finish,
                            const std::optional<std::string>& stop_reason, const UsageInfo& usage,
                            const std::optional<std::string>& kv_transfer_params_json);

 private:
  std::string token_string(int32_t id) const;
  // `{"id":...,"object":"<object>","created":...,"model":...,` : the fields every body starts with,
  // rendered as dump() renders them; a body is this prefix + the rest of the object without its '{'.
  std::string header_json_prefix(std::string_view object) const;
  // The prefix + the members of `rest` (an object): the same bytes as dumping one object with the
  // header fields first.
  static std::string with_prefix(const std::string& prefix, const nlohmann::ordered_json& rest);
  // The choice's "logprobs" value in this endpoint's format (null when not requested or none);
  // completions advance text_offset_.
  nlohmann::ordered_json logprobs_json(std::span<const TokenLogprob> logprobs);

  ApiEndpoint endpoint_;
  std::string id_;
  int64_t created_;
  std::string model_;
  const Tokenizer* tokenizer_;
  bool with_logprobs_;
  std::vector<int32_t> stop_token_ids_;
  std::string chunk_prefix_;  // header_json_prefix of the stream chunks' object
  int64_t text_offset_ = 0;  // completions logprobs: characters emitted so far
};

}  // namespace tandem
