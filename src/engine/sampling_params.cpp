// SamplingParams::validate and finish_reason_name.
#include "engine/sampling_params.h"

#include <cmath>

#include "engine/request_output.h"

namespace tandem {

Status SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) return InvalidArgumentError("temperature must be >= 0, got {}", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return InvalidArgumentError("top_p must be in (0, 1], got {}", top_p);
  if (top_k < -1) return InvalidArgumentError("top_k must be -1 (disabled) or >= 0, got {}", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return InvalidArgumentError("min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0.0f && std::isfinite(repetition_penalty)))
    return InvalidArgumentError("repetition_penalty must be > 0, got {}", repetition_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return InvalidArgumentError("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return InvalidArgumentError("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
  if (max_tokens < 1) return InvalidArgumentError("max_tokens must be at least 1, got {}", max_tokens);
  if (min_tokens < 0) return InvalidArgumentError("min_tokens must be >= 0, got {}", min_tokens);
  if (min_tokens > max_tokens)
    return InvalidArgumentError("min_tokens ({}) must be <= max_tokens ({})", min_tokens, max_tokens);
  for (const std::string& s : stop)
    if (s.empty()) return InvalidArgumentError("stop strings must not be empty");
  for (int32_t t : stop_token_ids)
    if (t < 0) return InvalidArgumentError("stop_token_ids must be >= 0, got {}", t);
  if (logprobs && (*logprobs < 0 || *logprobs > 20)) return InvalidArgumentError("logprobs must be in [0, 20], got {}", *logprobs);
  return Status::Ok();
}

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "error";
}

}  // namespace tandem
