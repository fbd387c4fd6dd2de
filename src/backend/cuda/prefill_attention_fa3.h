// Prefill attention through FlashInfer's Hopper (FA3: wgmma + TMA for Q, cp.async gather for K/V) paged
// batch prefill (prefill_attention_fa3.cu), for one shape: bf16 Q/KV/O, head_dim 128, causal, fp32
// softmax, no soft cap / sliding window. Compiled in only when CMake found the CUTLASS/CuTe headers
// (TANDEM_HAVE_FA3); runs only on sm_90 devices (wgmma exists on sm_90a only).
//
// Pool addressing is the FA2 path's (prefill_attention_fi.h): for layer l, K pages start at
// pool + l * elems_per_layer_block, V pages elems_per_page further, both with page stride elems_per_block
// and NHD rows. FlashInfer's sm90 paged mainloop (hopper/sparse_mainloop.cuh) gathers K/V token by token
// (page = kv_idx / page_size through kv_indices, offset page * page_stride + entry * token_stride), so any
// block size works and K and V share one page stride, which our layout satisfies.
//
// Unlike FA2, the sm90 kernel does not pack GQA heads into q rows: a work item is (request, q head,
// 128-token q tile). The grid is persistent (one CTA per SM), each CTA walks its slice
// [work_indptr[cta], work_indptr[cta + 1]) of the work list built on the host by Fa3PrefillPlan
// (prefill_attention_fa3_plan.h) into device buffers at fixed addresses.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {

// Q tokens per work item (one q head) and KV tokens per pipeline stage of the instantiated kernel.
constexpr int kFa3PrefillTileQ = 128;
constexpr int kFa3PrefillTileKv = 96;
constexpr int kFa3PrefillHeadDim = 128;

// Device pointers of one step's FA3 work list (int32). Per-work arrays have num_works entries;
// work_indptr has num_ctas + 1.
struct Fa3PrefillWork {
  int32_t* work_indptr = nullptr;      // [num_ctas + 1] slice of the work list of each persistent CTA
  int32_t* qo_tile_indices = nullptr;  // q tile (of kFa3PrefillTileQ tokens) within its request
  int32_t* head_indices = nullptr;     // q head
  int32_t* qo_indptr = nullptr;        // first q/out row of the request
  int32_t* kv_indptr = nullptr;        // first entry of the request's page list in kv_indices
  int32_t* qo_lens = nullptr;          // query tokens of the request
  int32_t* kv_lens = nullptr;          // context tokens of the request (query tokens are its tail)
  int32_t* batch_indices = nullptr;    // request index (unused by the causal variant, still loaded)
  int32_t* kv_indices = nullptr;       // pool block ids of each request's context, in order
  int num_ctas = 0;                    // persistent grid: the device's SM count (0: nothing to run)
  int64_t num_q_rows = 0;              // rows of q/out the TMA descriptor covers (the batch's tokens)
};

// True when this build has the FA3 kernel (CUTLASS headers were found).
bool fa3_prefill_compiled();

// cudaSuccess when FA3 can run on `device`: compiled in, compute capability 9.0, and the kernel loads
// (its shared-memory attribute is set here, once per device, before any launch or graph capture).
// cudaErrorNotSupported when not compiled in or not sm_90; otherwise the CUDA error of the load.
cudaError_t fa3_prefill_available(int device);

// Runs the prefill part of `a` (q, out, kv, num_q_heads, scale; block tables and lengths come from `work`).
// Returns the first CUDA error (cudaErrorNotSupported when FA3 is not compiled in).
cudaError_t launch_fa3_prefill(const PagedAttentionArgs& a, const Fa3PrefillWork& work, cudaStream_t stream);

}  // namespace tandem::cuda
