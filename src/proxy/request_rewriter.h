// Request rewriting for the two legs of a disaggregated request: inspecting the client's body (what the
// proxy needs to route it), the prefill leg (max_tokens 1, stream false, do_remote_decode) and the
// decode leg (original body + the producer's kv_transfer_params, always with usage in the stream).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tandem::proxy {

using nlohmann::json;

enum class ApiKind { kCompletions, kChat };
std::string_view api_kind_path(ApiKind kind);  // "/v1/completions" or "/v1/chat/completions"

// What the proxy learns from a client's request body.
struct RequestInfo {
  ApiKind kind = ApiKind::kCompletions;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool continuous_usage = false;  // stream_options.continuous_usage_stats
  std::string model;
  int64_t prompt_tokens_estimate = 1;  // cheap: bytes/4 for text, length for token ids
  std::optional<int64_t> max_tokens;   // max_completion_tokens (chat) or max_tokens
  // False when the request cannot be split (n > 1, best_of, echo, several prompts): it then goes to
  // one decode instance that prefills it itself. `direct_reason` says why.
  bool disaggregatable = true;
  std::string direct_reason;
};

// Checks the little the proxy relies on (a JSON object, a prompt or messages) and fills RequestInfo.
// Everything else is validated by the engine instances, whose 4xx answers are relayed.
Result<RequestInfo> inspect_request(const json& body, ApiKind kind);

// Cheap prompt-size estimate used to balance prefill instances.
int64_t estimate_prompt_tokens(const json& body, ApiKind kind);

// The prefill leg: max_tokens 1 (and max_completion_tokens 1 for chat), stream false, no
// stream_options, min_tokens capped at 1, kv_transfer_params {"do_remote_decode": true}.
json make_prefill_body(const json& body, ApiKind kind);

// The decode leg: the original body plus `kv_transfer_params` (none: the instance prefills itself).
// Streaming legs always carry stream_options.include_usage so the proxy can merge usage.
json make_decode_body(const json& body, const json* kv_transfer_params, bool stream);

// make_decode_body() as text, edited from the client's body text `raw` (whose parse is `body`) without
// copying and re-serializing the JSON: the fields to add are appended before the closing brace. Only for
// the common shapes (no kv_transfer_params or stream_options in the body, or stream_options with
// include_usage already true; "stream" absent or a boolean equal to `stream`); nullopt otherwise, and
// the caller uses make_decode_body(). The result parses to the same object as make_decode_body().
std::optional<std::string> rewrite_decode_body_text(std::string_view raw, const json& body,
                                                    const json* kv_transfer_params, bool stream);

// True when the prefill response already finishes the request: the client asked for one token, or
// the first token stopped it (EOS or a stop string: finish_reason "stop").
bool first_token_ends_request(const RequestInfo& info, const json& prefill_response);

// The kv_transfer_params of a prefill response, or an error naming what is missing.
Result<json> extract_kv_transfer_params(const json& prefill_response);

}  // namespace tandem::proxy
