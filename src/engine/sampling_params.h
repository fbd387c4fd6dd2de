// SamplingParams: how one request samples and when it stops (vLLM's SamplingParams, the supported part).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;  // <= 0: disabled (vLLM's -1)
  float min_p = 0.0f;
  std::optional<uint64_t> seed;  // unset: the engine draws one from its own seeded generator
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;

  int32_t max_tokens = 16;  // new tokens, including the first
  int32_t min_tokens = 0;   // EOS and stop strings/ids are ignored before this many tokens
  bool ignore_eos = false;
  std::vector<std::string> stop;        // stop strings; the text is cut before the match
  std::vector<int32_t> stop_token_ids;  // finish with reason "stop" after emitting one of these
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;

  std::optional<int32_t> logprobs;  // number of top logprobs per generated token (0 = only the chosen one)

  // Checks ranges (temperature >= 0, 0 < top_p <= 1, ...); the message names the field.
  Status validate() const;
  bool is_greedy() const { return temperature <= 0.0f || top_k == 1; }
  bool needs_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
};

}  // namespace tandem
