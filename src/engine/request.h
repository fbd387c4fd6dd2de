// Request: the engine's per-request state as the scheduler and model runner see it (the output side,
// detokenizer and stop strings, lives in engine.cpp's LiveRequest and TextStream). Owned by the engine; the scheduler queues
// hold pointers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/kv_connector.h"
#include "engine/sampling_params.h"
#include "kv/block_manager.h"

namespace tandem {

enum class RequestState { kWaiting, kWaitingForRemoteKv, kRunning, kFinished };

struct Request {
  std::string id;
  // Prompt then generated tokens known on the host. KV exists for tokens [0, num_computed_tokens).
  std::vector<int32_t> tokens;
  // Overlapped loop: tokens sampled by launched steps whose ids are still on their way back from the
  // device (at most two: one step's read-back overlaps the next step's launch). Each entry is the token's
  // row in its step's sampled ids. They follow `tokens` and count in num_tokens(), the scheduler's view.
  std::vector<int32_t> pending_rows;
  bool stop_after_pending = false;  // the last pending token ends the request (length, producer): no decode
  uint64_t last_launched_step = 0;  // the engine's id of the last step that computed this request
  int32_t num_prompt_tokens = 0;
  int64_t num_computed_tokens = 0;
  BlockTable blocks;
  RequestState state = RequestState::kWaiting;

  SamplingParams sampling;
  uint64_t seed = 0;  // the request's seed, or one drawn from the engine's generator

  // Disaggregation.
  KvRole kv_role = KvRole::kNone;
  bool remote_load_failed = false;           // fell back to a local prefill
  std::optional<int32_t> forced_first_token;  // the producer's first token, used instead of sampling

  // Accounting.
  int32_t num_cached_tokens = -1;  // prompt tokens from the local prefix cache, set when first scheduled
  int32_t num_remote_tokens = 0;   // prompt tokens whose KV came from the remote prefill
  TimePoint arrival_time{};
  std::optional<TimePoint> first_scheduled_time;
  std::optional<TimePoint> first_token_time;
  std::optional<TimePoint> remote_load_start, remote_load_end;  // the remote KV load, when there is one
  uint64_t scheduled_step = 0;  // last step that scheduled it (scheduler bookkeeping)

  // Known + pending tokens (what the scheduler plans with).
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size() + pending_rows.size()); }
  int32_t num_output_tokens() const { return static_cast<int32_t>(num_tokens()) - num_prompt_tokens; }
  // Output tokens known on the host (what the client has been or is being sent).
  int32_t num_known_output_tokens() const { return static_cast<int32_t>(tokens.size()) - num_prompt_tokens; }
  std::span<const int32_t> prompt() const { return {tokens.data(), static_cast<size_t>(num_prompt_tokens)}; }
  std::span<const int32_t> output() const {
    return {tokens.data() + num_prompt_tokens, tokens.size() - static_cast<size_t>(num_prompt_tokens)};
  }
  bool is_finished() const { return state == RequestState::kFinished; }
};

}  // namespace tandem
