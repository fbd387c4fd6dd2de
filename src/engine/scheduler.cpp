// Scheduler: see scheduler.h.
#include "engine/scheduler.h"

#include <algorithm>

#include "common/check.h"
#include "engine/kv_connector.h"

namespace tandem {

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& blocks, KvConnector* connector)
    : config_(config), bm_(blocks), connector_(connector) {
  TANDEM_CHECK(config.max_num_seqs > 0 && config.max_num_batched_tokens > 0);
}

void Scheduler::add(Request* req) {
  req->state = RequestState::kWaiting;
  waiting_.push_back(req);
}

void Scheduler::schedule_chunk(Request* r, int32_t n, SchedulerOutput& out) {
  r->scheduled_step = step_;
  bool samples = r->num_computed_tokens + n == r->num_tokens();
  out.seqs.push_back({r, n, samples});
  out.num_tokens += n;
  budget_ -= n;
  if (!r->first_scheduled_time) r->first_scheduled_time = Clock::now();
}

void Scheduler::preempt(Request* victim, SchedulerOutput& out) {
  auto it = std::find(running_.begin(), running_.end(), victim);
  TANDEM_CHECK(it != running_.end());
  running_.erase(it);
  bm_.free(victim->blocks);
  victim->num_computed_tokens = 0;
  victim->state = RequestState::kWaiting;
  waiting_.push_front(victim);
  out.preempted.push_back(victim);
  ++num_preemptions_;
}

bool Scheduler::allocate_or_preempt(Request* r, int64_t num_tokens, SchedulerOutput& out) {
  while (!bm_.allocate_slots(r->blocks, num_tokens)) {
    Request* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      if (*it != r && (*it)->scheduled_step != step_) {
        victim = *it;
        break;
      }
    }
    if (!victim) {
      preempt(r, out);
      return false;
    }
    preempt(victim, out);
  }
  return true;
}

SchedulerOutput Scheduler::schedule() {
  ++step_;
  budget_ = config_.max_num_batched_tokens;
  SchedulerOutput out;
  int num_seqs = 0;

  // 1. Decodes, oldest first. Iterate over a snapshot: preemption edits running_.
  std::vector<Request*> snapshot = running_;
  for (Request* r : snapshot) {
    if (budget_ <= 0 || num_seqs >= config_.max_num_seqs) break;
    if (r->state != RequestState::kRunning || !is_decode(r) || r->stop_after_pending) continue;
    if (!allocate_or_preempt(r, r->num_computed_tokens + 1, out)) continue;
    schedule_chunk(r, 1, out);
    ++num_seqs;
  }
  out.num_decodes = static_cast<int>(out.seqs.size());

  // 2. Running prefills (prompt chunks, or recomputation after a failed remote load).
  snapshot = running_;
  for (Request* r : snapshot) {
    if (budget_ <= 0 || num_seqs >= config_.max_num_seqs) break;
    if (r->state != RequestState::kRunning || r->scheduled_step == step_ || is_decode(r)) continue;
    int32_t n = static_cast<int32_t>(std::min<int64_t>(r->num_tokens() - r->num_computed_tokens, budget_));
    if (n <= 0) continue;
    if (!allocate_or_preempt(r, r->num_computed_tokens + n, out)) continue;
    schedule_chunk(r, n, out);
    ++num_seqs;
  }

  // 3. Waiting requests, first come first served; none in a step that had to preempt.
  while (out.preempted.empty() && !waiting_.empty() && budget_ > 0 &&
         static_cast<int>(running_.size() + remote_waiting_.size()) < config_.max_num_seqs &&
         num_seqs < config_.max_num_seqs) {
    Request* r = waiting_.front();
    // A preempted request whose last token is still on the device waits until it is known (next step).
    if (!r->pending_rows.empty()) break;
    // Only a fresh consumer request loads; after a load (or a failed one) preemption recomputes locally.
    if (r->kv_role == KvRole::kRemotePrefill && !r->remote_load_failed && r->num_output_tokens() == 0 && connector_) {
      if (!admit_remote(r, out)) break;
      waiting_.pop_front();
      continue;
    }
    // A full hit still recomputes the last token: its logits give the next token.
    int max_hit_blocks = static_cast<int>((r->num_tokens() - 1) / bm_.block_size());
    int hit_blocks = bm_.acquire_cached_prefix(r->blocks, r->tokens, max_hit_blocks);
    int64_t computed = static_cast<int64_t>(hit_blocks) * bm_.block_size();
    int32_t n = static_cast<int32_t>(std::min<int64_t>(r->num_tokens() - computed, budget_));
    if (!bm_.allocate_slots(r->blocks, computed + n)) {
      bm_.free(r->blocks);
      break;  // wait for blocks to free up
    }
    waiting_.pop_front();
    prefix_queries_ += r->num_tokens();
    prefix_hits_ += computed;
    if (r->num_cached_tokens < 0) r->num_cached_tokens = static_cast<int32_t>(std::min<int64_t>(computed, r->num_prompt_tokens));
    r->num_computed_tokens = computed;
    r->state = RequestState::kRunning;
    running_.push_back(r);
    schedule_chunk(r, n, out);
    ++num_seqs;
  }
  return out;
}

bool Scheduler::admit_remote(Request* r, SchedulerOutput& out) {
  const int64_t prompt_len = r->num_prompt_tokens;
  int max_hit_blocks = static_cast<int>(prompt_len / bm_.block_size());
  int hit_blocks = bm_.acquire_cached_prefix(r->blocks, r->prompt(), max_hit_blocks);
  if (!bm_.allocate_slots(r->blocks, prompt_len)) {
    bm_.free(r->blocks);
    return false;
  }
  int64_t cached = static_cast<int64_t>(hit_blocks) * bm_.block_size();
  prefix_queries_ += prompt_len;
  prefix_hits_ += cached;
  r->num_cached_tokens = static_cast<int32_t>(cached);
  r->num_remote_tokens = static_cast<int32_t>(prompt_len - cached);
  r->num_computed_tokens = cached;
  r->first_scheduled_time = Clock::now();
  r->state = RequestState::kWaitingForRemoteKv;
  remote_waiting_[r->id] = r;
  // An empty list (everything hit locally) still goes through the connector, which reports at once.
  out.remote_loads.push_back(
      {r, std::vector<int32_t>(r->blocks.blocks.begin() + hit_blocks, r->blocks.blocks.end()), hit_blocks});
  return true;
}

Request* Scheduler::on_load_finished(const std::string& request_id, bool ok) {
  if (auto o = orphan_loads_.find(request_id); o != orphan_loads_.end()) {
    bm_.free(o->second);
    orphan_loads_.erase(o);
    return nullptr;
  }
  auto it = remote_waiting_.find(request_id);
  if (it == remote_waiting_.end()) return nullptr;
  Request* r = it->second;
  remote_waiting_.erase(it);
  r->state = RequestState::kRunning;
  if (ok) {
    r->num_computed_tokens = r->num_prompt_tokens;
    bm_.commit_full_blocks(r->blocks, r->tokens, r->num_computed_tokens);
    if (r->num_output_tokens() == 0 && r->forced_first_token) r->tokens.push_back(*r->forced_first_token);
  } else {
    // Keep the locally cached prefix; recompute the rest of the prompt here.
    r->remote_load_failed = true;
    r->num_remote_tokens = 0;
  }
  running_.push_back(r);
  return r;
}

void Scheduler::on_step_computed(const SchedulerOutput& out) {
  for (const ScheduledSeq& s : out.seqs) {
    Request* r = s.req;
    if (r->is_finished()) continue;  // finished (or aborted) while this step was on the device
    r->num_computed_tokens += s.num_new_tokens;
    TANDEM_CHECK_LE(r->num_computed_tokens, static_cast<int64_t>(r->tokens.size()));
    bm_.commit_full_blocks(r->blocks, r->tokens, r->num_computed_tokens);
  }
}

void Scheduler::remove(Request* req) {
  switch (req->state) {
    case RequestState::kWaiting: {
      auto it = std::find(waiting_.begin(), waiting_.end(), req);
      if (it != waiting_.end()) waiting_.erase(it);
      bm_.free(req->blocks);
      // A consumer request aborted before its load started: the connector frees the producer's lease.
      if (connector_ && req->kv_role == KvRole::kRemotePrefill) connector_->cancel_load(req->id);
      break;
    }
    case RequestState::kRunning: {
      auto it = std::find(running_.begin(), running_.end(), req);
      if (it != running_.end()) running_.erase(it);
      bm_.free(req->blocks);
      break;
    }
    case RequestState::kWaitingForRemoteKv: {
      remote_waiting_.erase(req->id);
      // The transfer may still write into these blocks: hold them until it reports back.
      orphan_loads_[req->id] = std::move(req->blocks);
      req->blocks = BlockTable{};
      if (connector_) connector_->cancel_load(req->id);
      break;
    }
    case RequestState::kFinished:
      break;
  }
  req->state = RequestState::kFinished;
}

std::vector<int32_t> Scheduler::remove_and_lease(Request* req) {
  TANDEM_CHECK(req->state == RequestState::kRunning, "lease of a request that is not running");
  auto it = std::find(running_.begin(), running_.end(), req);
  if (it != running_.end()) running_.erase(it);
  std::vector<int32_t> ids = req->blocks.blocks;
  BlockTable& lease = leases_[req->id];
  if (!lease.empty()) bm_.free(lease);  // a stale lease under a reused id
  lease = std::move(req->blocks);
  req->blocks = BlockTable{};
  req->state = RequestState::kFinished;
  return ids;
}

void Scheduler::release_lease(const std::string& request_id) {
  auto it = leases_.find(request_id);
  if (it == leases_.end()) return;
  bm_.free(it->second);
  leases_.erase(it);
}

void Scheduler::release_all() {
  for (auto& [id, t] : leases_) bm_.free(t);
  leases_.clear();
  for (auto& [id, t] : orphan_loads_) bm_.free(t);
  orphan_loads_.clear();
}

}  // namespace tandem
