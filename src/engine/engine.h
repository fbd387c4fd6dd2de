// Engine: the public, thread-safe API of one engine instance. One engine thread runs the step loop
// (schedule -> build batch -> forward -> sample -> emit); callers on any thread add requests and read
// each request's outputs from its own channel. Two engines can live in one process.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/channel.h"
#include "common/status.h"
#include "engine/engine_config.h"
#include "engine/kv_connector.h"  // complete type for the unique_ptr default argument
#include "engine/request_output.h"
#include "engine/sampling_params.h"

namespace tandem {

class Tokenizer;
class KvConnector;  // engine/kv_connector.h; implemented in disagg/

struct EngineRequest {
  std::string request_id;  // unique among live requests
  std::vector<int32_t> prompt_token_ids;
  SamplingParams sampling;
  // Disaggregation: the parsed kv_transfer_params of the HTTP request, as JSON text; interpreted by the
  // engine's KvConnector (absent: none).
  std::optional<std::string> kv_transfer_params_json;
};

using OutputChannel = Channel<RequestOutput>;

struct EngineMetrics {
  int num_running = 0;
  int num_waiting = 0;             // includes requests waiting for remote KV
  int num_waiting_for_remote_kv = 0;
  double kv_usage = 0.0;           // fraction of KV blocks in use (0..1)
  int64_t num_total_blocks = 0;
  int64_t num_free_blocks = 0;     // free or evictable cached
  int64_t num_used_blocks = 0;     // referenced by a request or pinned by a lease
  uint64_t prefix_cache_queries = 0;  // tokens looked up
  uint64_t prefix_cache_hits = 0;     // tokens found
  uint64_t num_preemptions = 0;
  uint64_t prompt_tokens = 0;         // computed (prefilled) prompt tokens, cumulative
  uint64_t generation_tokens = 0;     // sampled tokens, cumulative
  uint64_t num_steps = 0;
  bool dead = false;                  // the step loop stopped on an internal fault
};

class Engine {
 public:
  // Loads the model (or random weights for load_format "dummy"), plans memory, starts the engine thread.
  // `connector` (optional) makes the engine a disaggregation producer and/or consumer.
  static Result<std::unique_ptr<Engine>> create(const EngineConfig& config,
                                                std::unique_ptr<KvConnector> connector = nullptr);
  ~Engine();  // stops the loop; outstanding requests finish with kAbort

  // Validates and enqueues. Errors: kInvalidArgument (bad params, empty prompt), kOutOfRange (prompt +
  // max_tokens beyond max_model_len), kAlreadyExists (duplicate id), kResourceExhausted (waiting queue
  // full), kUnavailable (engine dead or shutting down). The returned channel gets the outputs and is
  // closed after the final one.
  Result<std::shared_ptr<OutputChannel>> add_request(EngineRequest request);

  // Aborts a request in any state; its final output has kAbort. Unknown ids are ignored. Effective
  // within one step.
  void abort_request(const std::string& request_id);

  EngineMetrics metrics() const;
  const EngineConfig& config() const;
  const ModelConfig& model_config() const;
  // The tokenizer loaded from the model directory, if any (null for token-id-only use).
  std::shared_ptr<const Tokenizer> tokenizer() const;
  // Stops accepting; waits up to `deadline` for running requests, then aborts the rest and stops.
  void shutdown(std::chrono::milliseconds deadline);

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
