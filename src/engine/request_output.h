// What the engine streams back to a request's owner, one RequestOutput per step in which the request
// made progress (or finished).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

enum class FinishReason { kStop, kLength, kAbort, kError };
std::string_view finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // the top-N alternatives, best first
};

struct RequestOutput {
  std::vector<int32_t> new_token_ids;   // tokens generated since the previous output
  std::string new_text;                 // their detokenized text (stop strings removed); empty without a tokenizer
  std::vector<TokenLogprob> logprobs;   // one per new token when requested

  std::optional<FinishReason> finish_reason;  // set on the last output of a request
  std::optional<std::string> stop_reason;     // the stop string matched, or the stop token id as text
  Status error;                               // non-ok when finish_reason == kError

  // Counters (cumulative, valid on every output).
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // prompt tokens served from the local prefix cache
  int32_t remote_prompt_tokens = 0;  // prompt tokens whose KV came from a remote prefill engine

  // Timing of the request inside the engine (seconds since it was added), set when known.
  double queue_time_s = 0.0;          // added -> first scheduled
  double first_token_time_s = 0.0;    // added -> first token produced
  double remote_load_time_s = 0.0;    // the remote KV load (start -> done), 0 without one

  // Disaggregation: set on a producer's final output when the request asked for do_remote_decode;
  // a JSON object as described in docs/disaggregation.md.
  std::optional<std::string> kv_transfer_params_json;

  bool finished() const { return finish_reason.has_value(); }
};

}  // namespace tandem
