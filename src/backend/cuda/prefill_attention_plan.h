// PrefillAttentionPlan: the host side of the FlashInfer prefill path (prefill_attention_fi.h). Once per
// step (prepare_attention(), outside graph capture) it turns the prefill sequences of a batch into
// FlashInfer's work list (page lists, per-CTA (request, q tile) pairs, heaviest tiles first so the
// causal tail finishes early) and uploads it to device buffers at fixed addresses.
//
// Graphs: the grid size depends only on (prefill tokens, prefill sequences), padding CTAs are masked
// off, and the buffers keep their addresses unless a batch outgrows them (then new, larger ones are
// allocated and the old ones stay alive until destruction; graphs captured before that must be
// recaptured, as with any other growth of per-step buffers).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/prefill_attention_fi.h"
#include "backend/cuda/staged_plan_buffer.h"
#include "common/status.h"

namespace tandem::cuda {

// Checks prefill sequence s of md (host mirrors) for a plan: query tokens within its context, context
// within the block table. `plan` names the caller in the error.
Status check_prefill_sequence(const AttentionMetadata& md, int s, int block_size, const char* plan);

class PrefillAttentionPlan {
 public:
  PrefillAttentionPlan() = default;
  PrefillAttentionPlan(const PrefillAttentionPlan&) = delete;
  PrefillAttentionPlan& operator=(const PrefillAttentionPlan&) = delete;

  // Creates the upload event and buffers for a first guess of the batch size (current device).
  Status init();

  // Plans sequences [first_seq, md.num_seqs) of md (host mirrors) and enqueues the upload on `stream`.
  Status build(const AttentionMetadata& md, int first_seq, int num_q_heads, int num_kv_heads, int block_size,
               cudaStream_t stream);

  const FlashInferPrefillWork& work() const { return work_; }

  // Grid bound from the batch shape alone (prefill tokens and sequences).
  static int64_t cta_bound(int64_t prefill_tokens, int64_t prefill_seqs, int group_size);

 private:
  struct Capacity {
    int64_t requests = 0, pages = 0, ctas = 0;
  };
  // Element offsets (int32) of each array inside the one device buffer / pinned host mirror.
  struct Offsets {
    int64_t q_indptr, kv_indptr, last_page_len, kv_indices, request, qo_tile, kv_tile, chunk, mask, total;
  };
  static Offsets offsets_for(const Capacity& c);
  Status ensure_capacity(const Capacity& need);

  Capacity cap_;
  Offsets off_{};
  StagedPlanBuffer buf_;  // the arrays at off_, on the device and in the pinned mirror
  FlashInferPrefillWork work_;
  std::vector<int64_t> tile_order_;  // scratch: (kv_end << 40 | request << 20 | tile) sort keys
};

}  // namespace tandem::cuda
