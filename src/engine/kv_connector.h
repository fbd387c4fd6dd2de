// KvConnector: the engine's hooks for disaggregated prefill/decode. The engine knows only this
// interface; disagg/ implements it (producer, consumer or both) and the server passes one to
// Engine::create. All methods are called on the engine thread unless stated; implementations do their
// network and copy work on their own threads and report back through poll().
//
// Consumer flow: add_request -> classify() says kRemotePrefill -> the scheduler admits the request when
// blocks for its whole prompt are free, reuses its local prefix-cache hits, and calls start_load() for
// the blocks it lacks; the request waits (state kWaitingForRemoteKv) until poll() reports the load.
// Success: the prompt counts as computed and first_token_id becomes the request's first output token
// (not emitted again). Failure: policy recompute -> the request prefills locally (its first token is
// still forced to first_token_id); policy fail -> the request finishes with kError.
// Producer flow: a kRemoteDecode request finishes after its first token; on_prefill_finished() returns
// the kv_transfer_params for the response and the engine keeps the blocks referenced until poll() lists
// the request under leases_released (consumer notified, or lease expired).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/kv_cache_view.h"
#include "common/status.h"

namespace tandem {

struct EngineRequest;

struct KvConnectorContext {
  KvCacheView kv;                  // the engine's pool (register it with transports)
  std::string model_fingerprint;   // ModelConfig::fingerprint()
  std::string tokenizer_fingerprint;
  std::string engine_id;           // unique per engine instance
  int device_id = 0;              // CUDA device of the pool (kv.device == kCuda)
};

enum class KvRole { kNone, kRemoteDecode /*producer*/, kRemotePrefill /*consumer*/ };

struct RemotePrefillInfo {
  int32_t num_prompt_tokens = 0;  // must equal the request's prompt length
  int32_t first_token_id = -1;
};

struct KvConnectorEvents {
  std::vector<std::pair<std::string, Status>> loads_finished;  // consumer: request id, outcome
  std::vector<std::string> leases_released;                    // producer: free these requests' blocks
};

struct KvConnectorMetrics {
  uint64_t bytes_moved = 0;
  uint64_t transfers_ok = 0;
  uint64_t transfers_failed = 0;
  uint64_t recomputes = 0;
  uint64_t leases_expired = 0;
  uint64_t leases_active = 0;
  std::vector<double> transfer_seconds;  // recent transfer durations (for histograms), drained by readers
};

enum class KvLoadFailurePolicy { kRecompute, kFail };

class KvConnector {
 public:
  virtual ~KvConnector() = default;

  // Called once after the engine has its KV pool, before any request.
  virtual Status initialize(const KvConnectorContext& ctx) = 0;
  virtual KvLoadFailurePolicy failure_policy() const = 0;

  // Any thread (from Engine::add_request): what the request's kv_transfer_params ask for. Errors (bad
  // params) make add_request fail with that status.
  virtual Result<KvRole> classify(const EngineRequest& request, RemotePrefillInfo* info) = 0;

  // ---- consumer ----
  // Begin pulling the remote prompt's blocks [first_block, first_block + local_block_ids.size()) into
  // local_block_ids. Non-blocking; exactly one loads_finished event follows (within the transfer
  // timeout), also after cancel_load.
  virtual void start_load(const std::string& request_id, std::vector<int32_t> local_block_ids, int first_block) = 0;
  // The request was aborted; stop its transfer early. Its blocks stay owned by the transfer until the
  // loads_finished event arrives. Also called for a request aborted before start_load (still queued):
  // then no event follows, and the connector may tell the producer to free its lease.
  virtual void cancel_load(const std::string& request_id) = 0;

  // ---- producer ----
  // A kRemoteDecode request finished its prefill. The engine keeps `block_ids` referenced until the
  // request appears in leases_released. Returns the kv_transfer_params JSON object for the response.
  virtual std::string on_prefill_finished(const std::string& request_id, std::span<const int32_t> block_ids,
                                          int32_t num_prompt_tokens, int32_t first_token_id) = 0;
  // A kRemoteDecode request was aborted before finishing; forget it.
  virtual void on_request_aborted(const std::string& request_id) {}

  // ---- both ----
  virtual KvConnectorEvents poll() = 0;
  // Blocks up to `timeout` until an event may be ready (the engine is idle but transfers are in flight).
  virtual void wait_for_events(std::chrono::milliseconds timeout) = 0;
  virtual bool has_pending_work() const = 0;  // loads in flight or leases held
  virtual KvConnectorMetrics metrics() const = 0;
  virtual void shutdown() = 0;
};

}  // namespace tandem
