// FlashInfer's sm90 (FA3) paged batch prefill for bf16, head_dim 128, causal (see prefill_attention_fa3.h).
// One instantiation: persistent tile scheduler (BatchPrefillPersistentTileScheduler), StandardAttention
// variant, no sliding window, CTA 128 q x 96 kv, 2 stages (FlashInfer's choice for paged head_dim 128).
// The launch is ours (FlashInfer's BatchPrefillWithPagedKVCacheKernelTraitsDispatched, minus its SM-count
// query per call): the grid is the plan's CTA count, and every step reports its own error.
//
// Build guards: TANDEM_HAVE_FA3 (set by CMake when the CUTLASS/CuTe headers exist): without it this file
// only defines the functions that report FA3 as unavailable. The kernel uses wgmma, which exists on sm_90a
// only, so CMake compiles this file for sm_90a alone (no compute_90 PTX, see src/backend/cuda/CMakeLists.txt);
// the __CUDA_ARCH_FEAT_SM90_ALL guard below keeps any other device pass (a custom TANDEM_CUDA_GENCODE)
// from even parsing the FlashInfer/CUTLASS headers, and fa3_prefill_available() refuses devices other
// than compute capability 9.0 and checks that the kernel is loadable.
#include "backend/cuda/prefill_attention_fa3.h"

#include <cstdio>

#if defined(TANDEM_HAVE_FA3) && (!defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL))
#define TANDEM_FA3_BUILD_KERNEL 1
#include "backend/cuda/flashinfer_compat.cuh"
// FlashInfer's cutlass_utils.cuh (included by the hopper headers) pulls CUTLASS's host tools (command line,
// reference GEMMs, tensor I/O: tools/util, not in the headers we install) for dtype maps the sm90 prefill
// does not use. Its guard is defined here so it is skipped; the CUTLASS headers the kernel does use are
// included by the hopper headers themselves.
#define FLASHINFER_CUTLASS_UTILS_CUH_
#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/numeric_types.h>
// clang-format off
#include <flashinfer/attention/hopper/default_params.cuh>
#include <flashinfer/attention/hopper/prefill_sm90.cuh>
#include <flashinfer/attention/hopper/variants.cuh>
// clang-format on
#endif

namespace tandem::cuda {

#if defined(TANDEM_FA3_BUILD_KERNEL)
namespace {

using Bf16 = cutlass::bfloat16_t;
using Fa3Params = flashinfer::BatchPrefillPagedParams<Bf16, Bf16, Bf16, int32_t>;
using Traits = flashinfer::AttentionKernelTraits</*USE_TMA_LOAD_KV=*/false, kFa3PrefillHeadDim, kFa3PrefillHeadDim,
                                                 kFa3PrefillTileQ, kFa3PrefillTileKv, /*NUM_STAGES=*/2, Bf16, Bf16,
                                                 Bf16, int32_t, flashinfer::StandardAttention>;
using Mainloop = flashinfer::SparseCollectiveMainloop<Fa3Params::AdditionalParams, Traits, /*CAUSAL=*/true>;
using Epilogue = flashinfer::CollectiveEpilogue<Traits>;
using Scheduler = flashinfer::BatchPrefillPersistentTileScheduler<int32_t>;
static_assert(Traits::CTA_Q == kFa3PrefillTileQ && Traits::CTA_KV == kFa3PrefillTileKv);

void* fa3_kernel() {
  return reinterpret_cast<void*>(
      flashinfer::PrefillWithKVCacheKernel<Mainloop, Epilogue, Traits, /*LEFT_SLIDING_WINDOW=*/false,
                                           /*CAUSAL=*/true, Scheduler>);
}
constexpr int kFa3SmemBytes = static_cast<int>(sizeof(typename Traits::SharedStorage));
constexpr int kFa3Threads = Traits::NUM_WARPS * 32;

}  // namespace
#endif

bool fa3_prefill_compiled() {
#if defined(TANDEM_HAVE_FA3)
  return true;
#else
  return false;
#endif
}

cudaError_t fa3_prefill_available(int device) {
#if defined(TANDEM_FA3_BUILD_KERNEL)
  int major = 0, minor = 0;
  if (cudaError_t err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device); err != cudaSuccess)
    return err;
  if (cudaError_t err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device); err != cudaSuccess)
    return err;
  if (major != 9 || minor != 0) return cudaErrorNotSupported;
  int prev = -1;
  if (cudaError_t err = cudaGetDevice(&prev); err != cudaSuccess) return err;
  if (prev != device) cudaSetDevice(device);
  // Loads the kernel (lazy module loading) and sets its shared-memory size once for this device.
  cudaFuncAttributes attr{};
  cudaError_t err = cudaFuncGetAttributes(&attr, fa3_kernel());
  if (err == cudaSuccess)
    err = cudaFuncSetAttribute(fa3_kernel(), cudaFuncAttributeMaxDynamicSharedMemorySize, kFa3SmemBytes);
  if (prev != device) cudaSetDevice(prev);
  return err;
#else
  (void)device;
  return cudaErrorNotSupported;
#endif
}

cudaError_t launch_fa3_prefill(const PagedAttentionArgs& a, const Fa3PrefillWork& work, cudaStream_t stream) {
#if defined(TANDEM_FA3_BUILD_KERNEL)
  if (work.num_ctas <= 0) return cudaSuccess;
  const KvPoolLayer& kv = a.kv;
  // Q goes through a TMA descriptor: 16-byte aligned base and row stride. K/V are gathered with 16-byte
  // cp.async, which the head_dim 128 rows satisfy on a 16-byte aligned pool.
  if (kv.head_dim != kFa3PrefillHeadDim || a.q_stride % 8 != 0 || (reinterpret_cast<uintptr_t>(a.q) & 15u) != 0 ||
      (reinterpret_cast<uintptr_t>(kv.base) & 15u) != 0 || work.num_q_rows <= 0 || work.num_q_rows > INT32_MAX)
    return cudaErrorInvalidValue;

  Bf16* k_data = static_cast<Bf16*>(kv.base) + kv.layer_offset;
  Bf16* v_data = k_data + kv.elems_per_page;
  const int64_t token_stride = static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;
  const int nnz_qo = static_cast<int>(work.num_q_rows);
  Fa3Params::AdditionalParams additional{};
  additional.logits_soft_cap = 0.0f;
  additional.sm_scale = a.scale;

  // Mainloop: Q through TMA over rows [0, nnz_qo) with row stride q_stride; K/V gathered page by page
  // (page = token / block_size through kv_indices, page stride elems_per_block, token stride Hk*D). The
  // K/V layouts carry only the token and head strides (FlashInfer passes nnz 0 for paged KV).
  // (Neither call throws; a TMA descriptor that cannot be encoded is reported by CUTLASS on stderr and
  // then fails the launch.)
  typename Mainloop::Params mainloop_params = Mainloop::to_underlying_arguments(
      {static_cast<const Bf16*>(a.q),
       flashinfer::get_gmem_layout(nnz_qo, a.num_q_heads, kFa3PrefillHeadDim, a.q_stride, kv.head_dim), k_data,
         flashinfer::get_gmem_layout(0, kv.num_kv_heads, kFa3PrefillHeadDim, token_stride, kv.head_dim), v_data,
         flashinfer::get_gmem_layout(0, kv.num_kv_heads, kFa3PrefillHeadDim, token_stride, kv.head_dim),
         work.kv_indices, /*window_left=*/-1, kv.elems_per_block, kv.elems_per_block,
         static_cast<uint32_t>(kv.block_size), additional});
  // Out rows are dense [token][q head][dim].
  typename Epilogue::Params epilogue_params = Epilogue::to_underlying_arguments(
        {static_cast<Bf16*>(a.out),
         flashinfer::get_gmem_layout(nnz_qo, a.num_q_heads, kFa3PrefillHeadDim,
                                     static_cast<int64_t>(a.num_q_heads) * kFa3PrefillHeadDim, kFa3PrefillHeadDim),
         /*lse_ptr=*/nullptr, flashinfer::get_lse_gmem_layout(nnz_qo, a.num_q_heads)});
  typename Scheduler::Params scheduler_params = Scheduler::to_underlying_arguments(
      {work.work_indptr, work.head_indices, work.qo_tile_indices, work.qo_indptr, work.kv_indptr, work.qo_lens,
       work.kv_lens, work.batch_indices, cutlass::FastDivmod(a.num_q_heads / kv.num_kv_heads), a.num_q_heads});

  void* args[] = {&mainloop_params, &epilogue_params, &scheduler_params};
  // The dynamic shared-memory attribute was set by fa3_prefill_available() (host-only either way).
  const cudaError_t err = cudaLaunchKernel(fa3_kernel(), dim3(work.num_ctas), dim3(kFa3Threads), args,
                                           static_cast<size_t>(kFa3SmemBytes), stream);
  if (err != cudaSuccess)
    std::fprintf(stderr, "fa3 prefill: cudaLaunchKernel(grid %d, block %d, smem %d) failed: %s\n", work.num_ctas,
                 kFa3Threads, kFa3SmemBytes, cudaGetErrorString(err));
  return err;
#else
  (void)a;
  (void)work;
  (void)stream;
  return cudaErrorNotSupported;
#endif
}

}  // namespace tandem::cuda
