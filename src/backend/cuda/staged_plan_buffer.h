// StagedPlanBuffer: the storage behind a per-step attention work list (prefill_attention_plan.h,
// prefill_attention_fa3_plan.h). One int32 device buffer that kernels, and CUDA graphs captured with
// its address, read; a pinned host mirror the plan is written into and uploaded from.
//
// Growing replaces both with larger ones; the outgrown ones stay alive until destruction, because a graph
// captured before may still read the old device buffer (such graphs must be recaptured to see new plans,
// which is the owner's business). The host mirror is rewritten only after the previous upload has left
// it: begin_write() waits for the event end_upload() recorded.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/status.h"

namespace tandem::cuda {

class StagedPlanBuffer {
 public:
  StagedPlanBuffer() = default;
  StagedPlanBuffer(const StagedPlanBuffer&) = delete;
  StagedPlanBuffer& operator=(const StagedPlanBuffer&) = delete;
  ~StagedPlanBuffer();

  // Creates the upload event (on the current device). `what` names the owner in error messages.
  Status init(const char* what);
  // Replaces the buffers with ones of `elems` int32s (contents not kept). dev() and host() change.
  Status reallocate(int64_t elems);
  // Waits until the last upload has left the host mirror, so it may be rewritten.
  Status begin_write();
  // Enqueues the copy of host()[offset, offset + elems) to dev() on `stream` (nothing for elems <= 0).
  Status upload(int64_t offset, int64_t elems, cudaStream_t stream);
  // Marks the end of this step's uploads on `stream` (what the next begin_write() waits for).
  Status end_upload(cudaStream_t stream);

  // Layout helpers for the plans' arrays: an array's size rounded so the next one starts 16-byte aligned,
  // and a capacity that covers `need` by at least doubling `cap` (few reallocations as batches grow).
  static int64_t aligned_elems(int64_t n) { return (n + 3) / 4 * 4; }
  static int64_t grown(int64_t need, int64_t cap) { return need > cap ? std::max(need, 2 * cap) : cap; }

  bool allocated() const { return dev_ != nullptr; }
  int32_t* dev() const { return dev_; }
  int32_t* host() const { return host_; }

 private:
  const char* what_ = "plan";
  cudaEvent_t upload_done_ = nullptr;
  int32_t* dev_ = nullptr;
  int32_t* host_ = nullptr;
  std::vector<void*> old_dev_;   // outgrown device buffers (a captured graph may still read them)
  std::vector<void*> old_host_;  // outgrown pinned mirrors
};

}  // namespace tandem::cuda
