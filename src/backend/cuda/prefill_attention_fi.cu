// FlashInfer FA2 paged prefill for bf16, head_dim 128, causal (see prefill_attention_fi.h). One template
// instantiation only (CTA_TILE_Q 128, no positional encoding, DefaultAttention without custom mask /
// sliding window / soft cap / alibi), which keeps this file's compile time to about a minute.
// FlashInfer's own launcher picks NUM_MMA_KV from the device's shared memory; it sets the kernel's
// dynamic shared-memory attribute on every call (host-only, legal during stream capture).
#include "backend/cuda/flashinfer_compat.cuh"
// clang-format off
#include <flashinfer/attention/default_prefill_params.cuh>
#include <flashinfer/attention/prefill.cuh>
#include <flashinfer/attention/variants.cuh>
// clang-format on

#include "backend/cuda/prefill_attention_fi.h"

namespace tandem::cuda {
namespace {

using Params = flashinfer::BatchPrefillPagedParams<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, int32_t>;
using Variant = flashinfer::DefaultAttention</*custom_mask=*/false, /*sliding_window=*/false,
                                             /*logits_soft_cap=*/false, /*alibi=*/false>;

}  // namespace

bool flashinfer_prefill_supported(int head_dim, int num_q_heads, int num_kv_heads) {
  return head_dim == kFlashInferPrefillHeadDim && num_kv_heads > 0 && num_q_heads % num_kv_heads == 0;
}

cudaError_t launch_flashinfer_prefill(const PagedAttentionArgs& a, const FlashInferPrefillWork& work,
                                      cudaStream_t stream) {
  if (work.num_ctas <= 0 || work.num_requests <= 0) return cudaSuccess;
  const KvPoolLayer& kv = a.kv;
  // FlashInfer keeps page strides in 32 bits and loads q rows with 16-byte copies.
  if (kv.elems_per_block > 0xFFFFFFFFll || a.q_stride % 8 != 0 || (reinterpret_cast<uintptr_t>(a.q) & 15u) != 0)
    return cudaErrorInvalidValue;
  auto* pool = static_cast<__nv_bfloat16*>(kv.base);
  __nv_bfloat16* k_data = pool + kv.layer_offset;
  __nv_bfloat16* v_data = k_data + kv.elems_per_page;
  // NHD strides: {page, token, head}.
  const int64_t strides[3] = {kv.elems_per_block, static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim, kv.head_dim};

  Params p;
  p.q = static_cast<__nv_bfloat16*>(const_cast<void*>(a.q));
  p.paged_kv = flashinfer::paged_kv_t<__nv_bfloat16, int32_t>(
      static_cast<uint32_t>(kv.num_kv_heads), static_cast<uint32_t>(kv.block_size), static_cast<uint32_t>(kv.head_dim),
      static_cast<uint32_t>(work.num_requests), flashinfer::QKVLayout::kNHD, k_data, v_data, strides, work.kv_indices,
      work.kv_indptr, work.last_page_len);
  p.q_indptr = work.q_indptr;
  p.o_indptr = work.q_indptr;  // output rows are the query rows
  p.o = static_cast<__nv_bfloat16*>(a.out);
  p.lse = nullptr;
  p.group_size = flashinfer::uint_fastdiv(static_cast<uint32_t>(a.num_q_heads / kv.num_kv_heads));
  p.num_qo_heads = static_cast<uint32_t>(a.num_q_heads);
  p.q_stride_n = static_cast<int32_t>(a.q_stride);
  p.q_stride_h = kv.head_dim;
  p.window_left = -1;
  p.logits_soft_cap = 0.0f;
  p.sm_scale = a.scale;
  p.rope_rcp_scale = 1.0f;
  p.rope_rcp_theta = 1.0f;
  p.request_indices = work.request_indices;
  p.qo_tile_indices = work.qo_tile_indices;
  p.kv_tile_indices = work.kv_tile_indices;
  p.merge_indptr = nullptr;
  p.block_valid_mask = work.block_valid_mask;
  p.kv_chunk_size_ptr = work.kv_chunk_size;
  p.max_total_num_rows = 0;
  p.total_num_rows = nullptr;
  p.padded_batch_size = static_cast<uint32_t>(work.num_ctas);
  p.partition_kv = false;

  // FlashInfer reports configuration problems by throwing; they end here as a CUDA error code.
  try {
    return flashinfer::BatchPrefillWithPagedKVCacheDispatched<
        /*SAME_KV_STRIDES=*/true, kFlashInferPrefillTileQ, kFlashInferPrefillHeadDim, kFlashInferPrefillHeadDim,
        flashinfer::PosEncodingMode::kNone, /*USE_FP16_QK_REDUCTION=*/false, flashinfer::MaskMode::kCausal, Variant,
        Params>(p, /*tmp_v=*/nullptr, /*tmp_s=*/nullptr, /*enable_pdl=*/false, stream);
  } catch (...) {
    return cudaErrorInvalidConfiguration;
  }
}

}  // namespace tandem::cuda
