// Fa3PrefillPlan: the host side of the FA3 prefill path (prefill_attention_fa3.h). Once per step
// (prepare_attention(), outside graph capture) it turns the prefill sequences of a batch into the sm90
// kernel's work list: one item per (request, q head, 128-token q tile), spread over one persistent CTA
// per SM by longest-processing-time first (items sorted by causal KV tiles, each given to the least
// loaded CTA, so every CTA runs its heaviest items first), and uploads it to device buffers at fixed
// addresses.
//
// Graphs: the grid is always the SM count (or 0 without prefill sequences) and the kernel reads the
// number of items from work_indptr, but the Q and O TMA descriptors hold the step's token count: a
// captured launch replays correctly for a later plan with the same token count (and a prefill present
// at capture: a grid of 0 records nothing) as long as the buffers keep their addresses. The model runner
// captures decode-only steps only. A batch that outgrows them gets new, larger ones (the old ones
// stay alive until destruction; graphs captured before that must be recaptured, as with the FA2 plan).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/prefill_attention_fa3.h"
#include "backend/cuda/staged_plan_buffer.h"
#include "common/status.h"

namespace tandem::cuda {

class Fa3PrefillPlan {
 public:
  Fa3PrefillPlan() = default;
  Fa3PrefillPlan(const Fa3PrefillPlan&) = delete;
  Fa3PrefillPlan& operator=(const Fa3PrefillPlan&) = delete;

  // Creates the upload event and buffers for a first guess of the batch size; `num_ctas` is the device's
  // SM count (the persistent grid).
  Status init(int num_ctas);

  // Plans sequences [first_seq, md.num_seqs) of md (host mirrors) and enqueues the upload on `stream`.
  Status build(const AttentionMetadata& md, int first_seq, int num_q_heads, int num_kv_heads, int block_size,
               cudaStream_t stream);

  const Fa3PrefillWork& work() const { return work_; }

 private:
  struct Capacity {
    int64_t works = 0, pages = 0;
  };
  // Element offsets (int32) of each array inside the one device buffer / pinned host mirror.
  struct Offsets {
    int64_t work_indptr, qo_tile, head, qo_indptr, kv_indptr, qo_len, kv_len, batch, kv_indices, total;
  };
  Offsets offsets_for(const Capacity& c) const;
  Status ensure_capacity(const Capacity& need);

  int num_ctas_ = 0;
  Capacity cap_;
  Offsets off_{};
  StagedPlanBuffer buf_;  // the arrays at off_, on the device and in the pinned mirror
  Fa3PrefillWork work_;
  // Scratch, reused across steps.
  struct Item {
    int32_t cost, request, head, tile;
  };
  std::vector<Item> items_;
  std::vector<int32_t> request_kv_offset_;
  std::vector<std::vector<int32_t>> cta_items_;  // per CTA: indices into items_
  std::vector<std::pair<int64_t, int32_t>> heap_;  // (load, cta), min-heap
};

}  // namespace tandem::cuda
