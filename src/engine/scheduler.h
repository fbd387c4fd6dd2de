// Scheduler: continuous batching over the requests of one engine (nano-vllm's scheduler, token-count
// based as in vLLM v1). Each step gets a token budget (max_num_batched_tokens) and a sequence limit
// (max_num_seqs):
//   1. running decodes, oldest first (one token each);
//   2. running prefills that are mid-prompt (chunked: as many tokens as the budget leaves);
//   3. waiting requests, first come first served, reusing prefix-cache hits, chunked likewise; a
//      remote-prefill request (disaggregation consumer) is admitted when blocks for its whole prompt
//      are free and starts its KV load instead of computing.
// When blocks run out, the newest running request not yet scheduled this step is preempted by
// recompute (its blocks are freed and it goes back to the front of the waiting queue); no new request
// is admitted in a step that preempted. Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/request.h"
#include "kv/block_manager.h"

namespace tandem {

class KvConnector;

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
};

struct ScheduledSeq {
  Request* req = nullptr;
  int32_t num_new_tokens = 0;  // tokens [num_computed_tokens, +num_new_tokens) are computed this step
  bool samples = false;        // the chunk reaches the end of the known tokens: a new token follows
};

// A remote-prefill request admitted this step: its KV load (KvConnector::start_load) is for the engine
// to start, once no device work still writes into blocks this schedule freed.
struct RemoteLoad {
  Request* req = nullptr;
  std::vector<int32_t> block_ids;  // the blocks to fill (after the local prefix hits)
  int first_block = 0;             // index of block_ids[0] in the request's block table
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> seqs;  // seqs [0, num_decodes) have one new token each
  int num_decodes = 0;
  int num_tokens = 0;
  std::vector<Request*> preempted;
  std::vector<RemoteLoad> remote_loads;
  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  // `connector` may be null (no disaggregation).
  Scheduler(const SchedulerConfig& config, BlockManager& blocks, KvConnector* connector);

  // Queues a new request (state kWaiting).
  void add(Request* req);
  SchedulerOutput schedule();
  // After the forward of `out`: advances num_computed_tokens and registers newly full blocks in the
  // prefix cache (requests finished meanwhile are skipped). Every token below the new num_computed_tokens
  // must be known on the host by then. Call before appending the tokens this step sampled.
  void on_step_computed(const SchedulerOutput& out);

  // Removes a request from whichever queue holds it and frees its blocks (finish or abort). A request
  // waiting for remote KV has its load cancelled; its blocks are freed when the load reports back.
  void remove(Request* req);
  // Producer: removes a finished request but keeps its blocks referenced under a lease until
  // release_lease(id). Returns the leased block ids.
  std::vector<int32_t> remove_and_lease(Request* req);
  void release_lease(const std::string& request_id);
  // Consumer: the KV load of `request_id` finished. Returns the request when it is live (it is then
  // running: on success its prompt is computed and forced_first_token is its first token, which this
  // call appends; on failure remote_load_failed is set and it will prefill locally), or null when it
  // was aborted meanwhile (its blocks are freed now).
  Request* on_load_finished(const std::string& request_id, bool ok);

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  size_t num_waiting_for_remote_kv() const { return remote_waiting_.size(); }
  size_t num_leases() const { return leases_.size(); }
  bool has_unfinished() const { return !waiting_.empty() || !running_.empty() || !remote_waiting_.empty(); }
  uint64_t num_preemptions() const { return num_preemptions_; }
  uint64_t prefix_queries() const { return prefix_queries_; }
  uint64_t prefix_hits() const { return prefix_hits_; }

  // Frees every lease and orphaned load (engine shutdown, after all requests were removed).
  void release_all();

 private:
  bool is_decode(const Request* r) const { return r->num_tokens() - r->num_computed_tokens == 1; }
  // Grows r's blocks to `num_tokens`, preempting newer unscheduled requests (or r itself) as needed.
  // Returns false when r itself was preempted.
  bool allocate_or_preempt(Request* r, int64_t num_tokens, SchedulerOutput& out);
  void preempt(Request* victim, SchedulerOutput& out);
  void schedule_chunk(Request* r, int32_t n, SchedulerOutput& out);
  // Returns false when the queue head must wait (stop admitting).
  bool admit_remote(Request* r, SchedulerOutput& out);

  SchedulerConfig config_;
  BlockManager& bm_;
  KvConnector* connector_;
  uint64_t step_ = 0;
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;
  std::unordered_map<std::string, Request*> remote_waiting_;
  std::unordered_map<std::string, BlockTable> orphan_loads_;  // aborted while loading
  std::unordered_map<std::string, BlockTable> leases_;
  int budget_ = 0;
  uint64_t num_preemptions_ = 0;
  uint64_t prefix_queries_ = 0;
  uint64_t prefix_hits_ = 0;
};

}  // namespace tandem
