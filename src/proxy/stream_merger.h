// StreamMerger: builds the one consistent SSE stream a client of the proxy sees out of the two legs of a
// disaggregated request:
//   - the first token, synthesized at once from the prefill instance's (non-streaming) answer, in the
//     servers' chunk format (id, object, created, model, choices[{index, text | delta, logprobs,
//     finish_reason}]);
//   - the decode instance's chunks, rewritten to the same id and created time, with the chat role chunk
//     not repeated, and its usage chunk held back;
//   - one final usage chunk (when the client asked for it) covering the prompt and all completion
//     tokens, then "data: [DONE]".
// Without a first token from the prefill leg (colocated routing, a request the decode instance
// prefills itself) the decode stream passes through with only the usage handling applied.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http_message.h"
#include "proxy/request_rewriter.h"

namespace tandem::proxy {

// Usage accounting of a decode instance that continues from a producer's first token: true when its
// completion_tokens already count that first token (the protocol's rule), false when they count only
// the tokens it generated itself.
inline constexpr bool kDecodeUsageCountsFirstToken = true;

class StreamMerger {
 public:
  StreamMerger(const RequestInfo& info, bool decode_usage_counts_first_token = kDecodeUsageCountsFirstToken);

  // SSE bytes for the first token, from the prefill leg's JSON answer. When `final` (the first token
  // ends the request) it also holds the usage chunk (if asked for) and [DONE]. Errors: the answer has
  // no choices.
  Result<std::string> first_token_events(const json& prefill_response, bool final);

  // SSE bytes to relay for one decode event payload (the text after "data: "); may be empty (a held
  // usage chunk, a repeated role chunk, [DONE]).
  std::string decode_event(std::string_view data);

  // The end of a stream that completed normally: the merged usage chunk (if asked for) and [DONE].
  std::string finish();

  // An SSE error event ending the stream (the decode leg failed after bytes were relayed).
  std::string error_events(std::string_view message, int code);

  bool decode_done() const { return decode_done_; }       // the decode leg sent [DONE]

  // The merged usage object ({prompt_tokens, completion_tokens, total_tokens, ...}) or null.
  json merged_usage() const;

 private:
  json adjust_usage(const json& usage) const;

  RequestInfo info_;
  bool decode_usage_counts_first_token_;
  std::string id_;
  int64_t created_ = 0;
  std::string model_;
  bool first_token_sent_ = false;
  bool decode_done_ = false;
  bool finished_ = false;
  std::optional<json> prefill_usage_;
  std::optional<json> decode_usage_;
};

// Which of the keys that keep a decode chunk off StreamMerger's fast path occur in it (as a quoted key
// name; a false hit only costs the general path).
struct ChunkKeys {
  bool usage = false;          // "usage"
  bool error = false;          // "error"
  bool empty_choices = false;  // "choices":[]
  bool role = false;           // "role"
  bool tool_calls = false;     // "tool_calls"
};
ChunkKeys scan_chunk_keys(std::string_view data);

// Formats one OpenAI error body: {"error": {"message", "type", "param": null, "code"}}.
std::string error_body(std::string_view message, std::string_view type, int code);
// The OpenAI error type for an HTTP status ("BadRequestError", "ServiceUnavailableError", ...).
std::string_view error_type_for_status(int status);
// A JSON error response: error_body(message, error_type_for_status(status), status).
HttpResponse error_response(int status, std::string_view message);

}  // namespace tandem::proxy
