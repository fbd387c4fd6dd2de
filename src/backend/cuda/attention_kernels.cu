// Paged attention kernels over the block-major KV pool (backend/kv_cache_view.h), bf16 in, fp32 math.
//
// Decode (one query token per sequence): split-K. Block (seq, kv head, head group, split) walks its
// slice of the context with groups of LANES threads per token (8 bf16 = 16 bytes per lane), several
// tokens' K/V loads in flight, online softmax per head in registers; the block's groups merge through
// shared memory and, when the context is split, a second kernel merges the splits (log-sum-exp).
// The split count comes from the launch shape only, so a captured CUDA graph stays valid as contexts grow.
//
// Prefill (chunks with a cached prefix, causal): tensor-core tiles via WMMA. A block takes one work
// item (seq, first query token) and one kv head; its 64 rows are (token, q head) pairs of the GQA group,
// so K/V tiles are loaded once for all heads sharing them. S = Q K^T and O += P V run on bf16 WMMA with
// fp32 accumulators; O lives in shared memory and is rescaled per row (online softmax, base 2).
#include <mma.h>

#include <algorithm>

#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kDecodeThreads = 128;
constexpr int kDecodeUnroll = 4;
constexpr int kDecodeMinChunk = 32;

int decode_head_group(int g) { return g % 8 == 0 ? 8 : g % 4 == 0 ? 4 : g % 2 == 0 ? 2 : 1; }
int decode_lanes(int head_dim) {
  int lanes = 1;
  while (lanes * 8 < head_dim) lanes *= 2;
  return std::max(lanes, 2);
}

template <int LANES, int GSUB>
__global__ void __launch_bounds__(kDecodeThreads) paged_decode_kernel(PagedAttentionArgs a, int num_splits,
                                                                      float* partial_o, float* partial_ml) {
  constexpr int kGroups = kDecodeThreads / LANES;
  extern __shared__ float smem[];
  const int s = blockIdx.x;
  const KvPoolLayer& kv = a.kv;
  const int Hk = kv.num_kv_heads, D = kv.head_dim, Hq = a.num_q_heads, G = Hq / Hk;
  const int groups_per_kv = G / GSUB;
  const int kvh = blockIdx.y / groups_per_kv;
  const int head0 = kvh * G + (blockIdx.y % groups_per_kv) * GSUB;
  const int split = blockIdx.z;
  const int ctx = a.context_lens[s];
  const int chunk = max((ctx + num_splits - 1) / num_splits, kDecodeMinChunk);
  const int begin = min(ctx, split * chunk), end = min(ctx, begin + chunk);
  const int tok = a.query_start[s];

  const int group = threadIdx.x / LANES, lane = threadIdx.x % LANES;
  const int d0 = lane * 8;
  const bool active = d0 < D;
  const float qscale = a.scale * kLog2e;
  float q[GSUB][8];
  const bf16* qp = static_cast<const bf16*>(a.q) + static_cast<int64_t>(tok) * a.q_stride;
#pragma unroll
  for (int g = 0; g < GSUB; ++g) {
    if (active) {
      load_bf16x8(qp + (head0 + g) * D + d0, q[g]);
#pragma unroll
      for (int e = 0; e < 8; ++e) q[g][e] *= qscale;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) q[g][e] = 0.0f;
    }
  }
  float m[GSUB], l[GSUB], acc[GSUB][8];
#pragma unroll
  for (int g = 0; g < GSUB; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0.0f;
  }

  const bf16* pool = static_cast<const bf16*>(kv.base);
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.max_blocks_per_seq;
  const int64_t token_stride = static_cast<int64_t>(Hk) * D;
  const int64_t head_off = kv.layer_offset + static_cast<int64_t>(kvh) * D + d0;
  for (int base = begin; base < end; base += kGroups * kDecodeUnroll) {
    uint4 kr[kDecodeUnroll], vr[kDecodeUnroll];
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      const int j = base + u * kGroups + group;
      if (j < end && active) {
        const int64_t off = static_cast<int64_t>(bt[j / kv.block_size]) * kv.elems_per_block +
                            (j % kv.block_size) * token_stride + head_off;
        kr[u] = *reinterpret_cast<const uint4*>(pool + off);
        vr[u] = *reinterpret_cast<const uint4*>(pool + off + kv.elems_per_page);
      } else {
        kr[u] = make_uint4(0, 0, 0, 0);
        vr[u] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      const bool valid = base + u * kGroups + group < end;
      float kf[8], vf[8];
      unpack_bf16x8(kr[u], kf);
      unpack_bf16x8(vr[u], vf);
#pragma unroll
      for (int g = 0; g < GSUB; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(q[g][e], kf[e], dot);
#pragma unroll
        for (int o = LANES / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (valid) {
          const float m_new = fmaxf(m[g], dot);
          const float alpha = exp2f(m[g] - m_new);
          const float p = exp2f(dot - m_new);
          l[g] = l[g] * alpha + p;
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[g][e] = fmaf(acc[g][e], alpha, p * vf[e]);
          m[g] = m_new;
        }
      }
    }
  }

  // Merge the groups: smem = m[kGroups][GSUB], l[kGroups][GSUB], o[kGroups][GSUB][D].
  float* sm_m = smem;
  float* sm_l = sm_m + kGroups * GSUB;
  float* sm_o = sm_l + kGroups * GSUB;
#pragma unroll
  for (int g = 0; g < GSUB; ++g) {
    if (lane == 0) {
      sm_m[group * GSUB + g] = m[g];
      sm_l[group * GSUB + g] = l[g];
    }
    if (active) {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (d0 + e < D) sm_o[(group * GSUB + g) * D + d0 + e] = acc[g][e];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < GSUB * D; idx += kDecodeThreads) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
    for (int gr = 0; gr < kGroups; ++gr) M = fmaxf(M, sm_m[gr * GSUB + g]);
    float L = 0.0f, O = 0.0f;
    if (M != -INFINITY) {
      for (int gr = 0; gr < kGroups; ++gr) {
        const float mg = sm_m[gr * GSUB + g];
        if (mg == -INFINITY) continue;
        const float w = exp2f(mg - M);
        L += sm_l[gr * GSUB + g] * w;
        O += sm_o[(gr * GSUB + g) * D + d] * w;
      }
    }
    const int head = head0 + g;
    const float val = L > 0.0f ? O / L : 0.0f;
    if (num_splits == 1) {
      static_cast<bf16*>(a.out)[static_cast<int64_t>(tok) * Hq * D + head * D + d] = __float2bfloat16(val);
    } else {
      const int64_t pidx = (static_cast<int64_t>(s) * Hq + head) * num_splits + split;
      partial_o[pidx * D + d] = val;
      if (d == 0) {
        partial_ml[pidx * 2] = M;
        partial_ml[pidx * 2 + 1] = L;
      }
    }
  }
}

__global__ void decode_merge_kernel(PagedAttentionArgs a, int num_splits, const float* partial_o,
                                    const float* partial_ml) {
  const int s = blockIdx.x, head = blockIdx.y;
  const int Hq = a.num_q_heads, D = a.kv.head_dim;
  const int64_t p0 = (static_cast<int64_t>(s) * Hq + head) * num_splits;
  float M = -INFINITY;
  for (int i = 0; i < num_splits; ++i)
    if (partial_ml[(p0 + i) * 2 + 1] > 0.0f) M = fmaxf(M, partial_ml[(p0 + i) * 2]);
  const int tok = a.query_start[s];
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float L = 0.0f, O = 0.0f;
    for (int i = 0; i < num_splits; ++i) {
      const float li = partial_ml[(p0 + i) * 2 + 1];
      if (!(li > 0.0f)) continue;
      const float w = li * exp2f(partial_ml[(p0 + i) * 2] - M);
      L += w;
      O += w * partial_o[(p0 + i) * D + d];
    }
    static_cast<bf16*>(a.out)[static_cast<int64_t>(tok) * Hq * D + head * D + d] =
        __float2bfloat16(L > 0.0f ? O / L : 0.0f);
  }
}

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

template <int LANES, int GSUB>
void launch_decode_impl(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, float* partial_o,
                        float* partial_ml, cudaStream_t stream) {
  const int G = a.num_q_heads / a.kv.num_kv_heads;
  constexpr int kGroups = kDecodeThreads / LANES;
  const size_t bytes = sizeof(float) * kGroups * GSUB * (2 + a.kv.head_dim);
  dim3 grid(num_decode_seqs, a.kv.num_kv_heads * (G / GSUB), num_splits);
  paged_decode_kernel<LANES, GSUB><<<grid, kDecodeThreads, bytes, stream>>>(a, num_splits, partial_o, partial_ml);
}

template <int LANES>
void launch_decode_lanes(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, float* partial_o,
                         float* partial_ml, cudaStream_t stream) {
  switch (decode_head_group(a.num_q_heads / a.kv.num_kv_heads)) {
    case 8: return launch_decode_impl<LANES, 8>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream);
    case 4: return launch_decode_impl<LANES, 4>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream);
    case 2: return launch_decode_impl<LANES, 2>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream);
    default: return launch_decode_impl<LANES, 1>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream);
  }
}

}  // namespace

int decode_num_splits(int num_decode_seqs, int num_kv_heads, int num_q_heads, int sm_count) {
  const int G = num_q_heads / num_kv_heads;
  const int blocks = num_decode_seqs * num_kv_heads * (G / decode_head_group(G));
  // About 8 blocks per SM (measured on H100, PERF_NOTES.md: b=32 ctx 2048 runs 149 us/layer with 4
  // splits against 213 us with 1; b=1 ctx 7500 is flat between 32 and 64 splits).
  const int target = kDecodeSplitBlocksPerSm * std::max(sm_count, 1);
  if (blocks <= 0 || blocks >= target) return 1;
  return std::clamp(target / blocks, 1, 64);
}

void launch_paged_decode(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, float* partial_o,
                         float* partial_ml, cudaStream_t stream) {
  if (num_decode_seqs <= 0) return;
  // Requires head_dim % 8 == 0 and head_dim <= 256 (the backend routes other shapes to the prefill kernel).
  switch (decode_lanes(a.kv.head_dim)) {
    case 2: launch_decode_lanes<2>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream); break;
    case 4: launch_decode_lanes<4>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream); break;
    case 8: launch_decode_lanes<8>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream); break;
    case 16: launch_decode_lanes<16>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream); break;
    default: launch_decode_lanes<32>(a, num_decode_seqs, num_splits, partial_o, partial_ml, stream); break;
  }
  if (num_splits > 1) {
    decode_merge_kernel<<<dim3(num_decode_seqs, a.num_q_heads), 128, 0, stream>>>(a, num_splits, partial_o, partial_ml);
  }
}

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
