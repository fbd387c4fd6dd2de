// Paged prefill attention kernel over the block-major KV pool (backend/kv_cache_view.h), bf16 in, fp32
// math (decode: decode_attention_kernels.cu). Chunks with a cached prefix, causal: tensor-core tiles via
// WMMA. A block takes one work item (seq, first query token) and one kv head; its 64 rows are (token,
// q head) pairs of the GQA group, so K/V tiles are loaded once for all heads sharing them. S = Q K^T and
// O += P V run on bf16 WMMA with fp32 accumulators; O lives in shared memory and is rescaled per row
// (online softmax, base 2).
#include <mma.h>

#include <algorithm>

#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {


// ---------------- prefill ----------------
constexpr int kBM = 64, kBN = 64, kPrefillThreads = 128;

template <int DP>
struct PrefillSmem {
  static constexpr int kLdQ = DP + 8;   // bf16 elements; padding keeps WMMA rows off one bank
  static constexpr int kLdS = kBN + 4;  // fp32
  static constexpr int kLdP = kBN + 8;  // bf16
  static constexpr int kLdO = DP + 4;   // fp32
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(bf16) * kBM * kLdQ;
  static constexpr size_t kV = kK + sizeof(bf16) * kBN * kLdQ;
  static constexpr size_t kS = kV + sizeof(bf16) * kBN * kLdQ;
  static constexpr size_t kP = kS + sizeof(float) * kBM * kLdS;
  static constexpr size_t kO = kP + sizeof(bf16) * kBM * kLdP;
  static constexpr size_t kStats = kO + sizeof(float) * kBM * kLdO;  // m, l, alpha [kBM] each
  static constexpr size_t kBytes = kStats + sizeof(float) * 3 * kBM;
};

template <int DP>
__global__ void __launch_bounds__(kPrefillThreads) paged_prefill_kernel(PagedAttentionArgs a, const int32_t* work_items) {
  using namespace nvcuda;
  using L = PrefillSmem<DP>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw + L::kQ);
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw + L::kK);
  bf16* Vs = reinterpret_cast<bf16*>(smem_raw + L::kV);
  float* S = reinterpret_cast<float*>(smem_raw + L::kS);
  bf16* P = reinterpret_cast<bf16*>(smem_raw + L::kP);
  float* O = reinterpret_cast<float*>(smem_raw + L::kO);
  float* row_m = reinterpret_cast<float*>(smem_raw + L::kStats);
  float* row_l = row_m + kBM;
  float* row_alpha = row_l + kBM;

  const int s = work_items[2 * blockIdx.x];
  if (s < 0) return;
  const int qt = work_items[2 * blockIdx.x + 1];
  const int kvh = blockIdx.y;
  const KvPoolLayer& kv = a.kv;
  const int Hk = kv.num_kv_heads, D = kv.head_dim, Hq = a.num_q_heads, G = Hq / Hk;
  const int tpt = kBM / G;  // query tokens per tile
  const int q0 = a.query_start[s];
  const int q_len = a.query_start[s + 1] - q0;
  const int ctx = a.context_lens[s];
  const int prefix = ctx - q_len;
  const int tile_tokens = min(tpt, q_len - qt);
  const int kv_end = min(ctx, prefix + qt + tile_tokens);  // last row's causal limit
  const bool vec = (D % 8) == 0;
  const bool q_vec = vec && (a.q_stride % 8) == 0 && (reinterpret_cast<uintptr_t>(a.q) & 15u) == 0;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

  // Q tile: row r = (token qt + r / G, head kvh*G + r % G); zero rows/cols outside.
  const bf16* qbase = static_cast<const bf16*>(a.q);
  for (int idx = tid; idx < kBM * (DP / 8); idx += kPrefillThreads) {
    const int r = idx / (DP / 8), c = (idx % (DP / 8)) * 8;
    const int tl = r / G;
    const bool row_ok = tl < tile_tokens;
    const bf16* src = qbase + static_cast<int64_t>(q0 + qt + tl) * a.q_stride + (kvh * G + r % G) * D;
    bf16* dst = Qs + r * L::kLdQ + c;
    if (row_ok && q_vec && c < D) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src + c);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = (row_ok && c + e < D) ? src[c + e] : __float2bfloat16(0.0f);
    }
  }
  for (int idx = tid; idx < kBM * DP; idx += kPrefillThreads) O[(idx / DP) * L::kLdO + idx % DP] = 0.0f;
  if (tid < kBM) {
    row_m[tid] = -INFINITY;
    row_l[tid] = 0.0f;
  }

  const bf16* pool = static_cast<const bf16*>(kv.base);
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.max_blocks_per_seq;
  const int64_t token_stride = static_cast<int64_t>(Hk) * D;
  const float sl2 = a.scale * kLog2e;

  // Softmax ownership: warp w owns rows [16w, 16w+16); lane -> row 16w + lane/2, columns half (lane&1).
  const int my_row = warp * 16 + lane / 2;
  const int my_tok = my_row / G;
  const bool my_row_ok = my_tok < tile_tokens && my_row < tpt * G;
  const int my_pos = prefix + qt + my_tok;  // sees cache positions [0, my_pos]
  const int col0 = (lane & 1) * 32;

  for (int kv0 = 0; kv0 < kv_end; kv0 += kBN) {
    __syncthreads();  // previous tile's K/V fully consumed (and Q/O init visible on the first pass)
    for (int idx = tid; idx < kBN * (DP / 8); idx += kPrefillThreads) {
      const int r = idx / (DP / 8), c = (idx % (DP / 8)) * 8;
      const int j = kv0 + r;
      bf16* kd = Ks + r * L::kLdQ + c;
      bf16* vd = Vs + r * L::kLdQ + c;
      if (j < kv_end && c < D) {
        const int64_t off = static_cast<int64_t>(bt[j / kv.block_size]) * kv.elems_per_block + kv.layer_offset +
                            (j % kv.block_size) * token_stride + static_cast<int64_t>(kvh) * D + c;
        if (vec) {
          *reinterpret_cast<uint4*>(kd) = *reinterpret_cast<const uint4*>(pool + off);
          *reinterpret_cast<uint4*>(vd) = *reinterpret_cast<const uint4*>(pool + off + kv.elems_per_page);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            kd[e] = c + e < D ? pool[off + e] : __float2bfloat16(0.0f);
            vd[e] = c + e < D ? pool[off + kv.elems_per_page + e] : __float2bfloat16(0.0f);
          }
        }
      } else {
        *reinterpret_cast<uint4*>(kd) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(vd) = make_uint4(0, 0, 0, 0);
      }
    }
    __syncthreads();

    // S rows of this warp = Q K^T.
    {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
#pragma unroll
      for (int cb = 0; cb < kBN / 16; ++cb) {
        wmma::fill_fragment(fc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < DP / 16; ++kk) {
          wmma::load_matrix_sync(fa, Qs + warp * 16 * L::kLdQ + kk * 16, L::kLdQ);
          wmma::load_matrix_sync(fb, Ks + cb * 16 * L::kLdQ + kk * 16, L::kLdQ);
          wmma::mma_sync(fc, fa, fb, fc);
        }
        wmma::store_matrix_sync(S + warp * 16 * L::kLdS + cb * 16, fc, L::kLdS, wmma::mem_row_major);
      }
    }
    __syncwarp();

    // Online softmax over this tile's columns.
    {
      float* srow = S + my_row * L::kLdS + col0;
      float mx = -INFINITY;
#pragma unroll 8
      for (int c = 0; c < 32; ++c) {
        const int j = kv0 + col0 + c;
        float v = srow[c] * sl2;
        if (!my_row_ok || j > my_pos || j >= kv_end) v = -INFINITY;
        srow[c] = v;
        mx = fmaxf(mx, v);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      const float m_old = row_m[my_row];
      const float m_new = fmaxf(m_old, mx);
      const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m_old - m_new);
      float sum = 0.0f;
      bf16* prow = P + my_row * L::kLdP + col0;
#pragma unroll 8
      for (int c = 0; c < 32; ++c) {
        const float p = m_new == -INFINITY ? 0.0f : exp2f(srow[c] - m_new);
        const bf16 pb = __float2bfloat16(p);
        prow[c] = pb;
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      __syncwarp();
      if ((lane & 1) == 0) {
        row_l[my_row] = row_l[my_row] * alpha + sum;
        row_m[my_row] = m_new;
        row_alpha[my_row] = alpha;
      }
    }
    __syncwarp();
    for (int idx = lane; idx < 16 * DP; idx += 32) {
      const int r = warp * 16 + idx / DP;
      O[r * L::kLdO + idx % DP] *= row_alpha[r];
    }
    __syncwarp();

    // O rows of this warp += P V.
    {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
#pragma unroll
      for (int ct = 0; ct < DP / 16; ++ct) {
        float* optr = O + warp * 16 * L::kLdO + ct * 16;
        wmma::load_matrix_sync(fc, optr, L::kLdO, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          wmma::load_matrix_sync(fa, P + warp * 16 * L::kLdP + kk * 16, L::kLdP);
          wmma::load_matrix_sync(fb, Vs + kk * 16 * L::kLdQ + ct * 16, L::kLdQ);
          wmma::mma_sync(fc, fa, fb, fc);
        }
        wmma::store_matrix_sync(optr, fc, L::kLdO, wmma::mem_row_major);
      }
    }
  }
  __syncthreads();

  bf16* obase = static_cast<bf16*>(a.out);
  for (int idx = tid; idx < kBM * D; idx += kPrefillThreads) {
    const int r = idx / D, c = idx % D;
    const int tl = r / G;
    if (tl >= tile_tokens || r >= tpt * G) continue;
    const float lsum = row_l[r];
    obase[static_cast<int64_t>(q0 + qt + tl) * Hq * D + (kvh * G + r % G) * D + c] =
        __float2bfloat16(lsum > 0.0f ? O[r * L::kLdO + c] / lsum : 0.0f);
  }
}

template <int DP>
void launch_prefill_dp(const PagedAttentionArgs& a, const int32_t* work_items, int num_work_items, cudaStream_t stream) {
  constexpr size_t bytes = PrefillSmem<DP>::kBytes;  // limit raised by prepare_kernel_attributes()
  dim3 grid(num_work_items, a.kv.num_kv_heads);
  paged_prefill_kernel<DP><<<grid, kPrefillThreads, bytes, stream>>>(a, work_items);
}

}  // namespace

cudaError_t prepare_kernel_attributes() {
  cudaError_t err = cudaSuccess;
  auto raise = [&](auto kernel, size_t bytes) {
    if (err == cudaSuccess)
      err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  };
  raise(paged_prefill_kernel<16>, PrefillSmem<16>::kBytes);
  raise(paged_prefill_kernel<32>, PrefillSmem<32>::kBytes);
  raise(paged_prefill_kernel<64>, PrefillSmem<64>::kBytes);
  raise(paged_prefill_kernel<128>, PrefillSmem<128>::kBytes);
  raise(paged_prefill_kernel<256>, PrefillSmem<256>::kBytes);
  if (err == cudaSuccess) err = prepare_decode_kernel_attributes();
  return err;
}

int prefill_tile_tokens(int num_q_heads, int num_kv_heads) { return std::max(1, kBM / (num_q_heads / num_kv_heads)); }

void launch_paged_prefill(const PagedAttentionArgs& a, const int32_t* work_items, int num_work_items,
                          cudaStream_t stream) {
  if (num_work_items <= 0) return;
  const int D = a.kv.head_dim;
  if (D <= 16) launch_prefill_dp<16>(a, work_items, num_work_items, stream);
  else if (D <= 32) launch_prefill_dp<32>(a, work_items, num_work_items, stream);
  else if (D <= 64) launch_prefill_dp<64>(a, work_items, num_work_items, stream);
  else if (D <= 128) launch_prefill_dp<128>(a, work_items, num_work_items, stream);
  else launch_prefill_dp<256>(a, work_items, num_work_items, stream);
}

}  // namespace tandem::cuda
