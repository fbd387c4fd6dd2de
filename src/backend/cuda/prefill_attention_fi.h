// Prefill attention through FlashInfer's FA2 paged prefill kernel (prefill_attention_fi.cu), for the one
// shape that matters for speed: bf16 Q/KV/O, head_dim 128, causal, fp32 softmax, no soft cap / alibi /
// sliding window. Other head dims keep the WMMA kernel of attention_kernels.cu.
//
// FlashInfer reads the block-major pool (backend/kv_cache_view.h) directly: for layer l, K pages start at
// pool + l * elems_per_layer_block, V pages elems_per_page further, both with page stride elems_per_block
// and NHD rows (token stride Hk*D, head stride D). The work list (one CTA per (request, 128 packed
// q rows) tile per kv head) is built on the host by PrefillAttentionPlan (prefill_attention_plan.h) into
// device buffers at fixed addresses; this header has plain pointers only so nvcc needs no project headers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {

// Packed (token, q head) rows per CTA; the only CTA_TILE_Q instantiated.
constexpr int kFlashInferPrefillTileQ = 128;
constexpr int kFlashInferPrefillHeadDim = 128;

// Device pointers of one step's FlashInfer work list (all int32 unless stated). Requests are the prefill
// sequences of the batch, in batch order; their token offsets are absolute rows of q/out.
struct FlashInferPrefillWork {
  int32_t* q_indptr = nullptr;         // [num_requests + 1] first token row of each request
  int32_t* kv_indptr = nullptr;        // [num_requests + 1] into kv_indices
  int32_t* kv_indices = nullptr;       // pool block ids of each request's context, in order
  int32_t* last_page_len = nullptr;    // [num_requests] tokens in the request's last block (1..block_size)
  int32_t* request_indices = nullptr;  // [num_ctas]
  int32_t* qo_tile_indices = nullptr;  // [num_ctas]
  int32_t* kv_tile_indices = nullptr;  // [num_ctas] always 0 (no KV split)
  int32_t* kv_chunk_size = nullptr;    // [1] unused without a KV split, still read
  bool* block_valid_mask = nullptr;    // [num_ctas] false for padding CTAs
  int num_requests = 0;
  int num_ctas = 0;                    // grid size (padded to a bound fixed by the batch shape)
};

// True when the FlashInfer path handles this shape (bf16 pool assumed by the caller).
bool flashinfer_prefill_supported(int head_dim, int num_q_heads, int num_kv_heads);

// Runs the prefill part of `a` (q, out, kv, num_q_heads, scale; the block tables and lengths come from
// `work`). Returns the first CUDA error (launch configuration included).
cudaError_t launch_flashinfer_prefill(const PagedAttentionArgs& a, const FlashInferPrefillWork& work,
                                      cudaStream_t stream);

}  // namespace tandem::cuda
