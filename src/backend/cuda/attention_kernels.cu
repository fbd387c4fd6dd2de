// Paged attention kernels over the block-major KV pool (backend/kv_cache_view.h), bf16 in, fp32 math.
//
// Decode (one query token per sequence): split-K. Block (seq, kv head, head group, split) walks its
// slice of the context with groups of LANES threads per token (8 bf16 = 16 bytes per lane): the slice's
// block-table entries are staged in shared memory, two steps of K/V loads are in flight (the next
// step's loads go out before this step's math), online softmax per head in registers with one rescale
// per step; the block's groups merge through shared memory and, when the context is split, the last
// split block of each (seq, head group) merges all splits (log-sum-exp) in the same kernel, found with
// a per-block atomic counter that it resets to 0 (so graph replays start from zero).
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
constexpr int kDecodeUnroll = 2;    // tokens per lane group per pipeline step (two steps in flight)
// <= 128 registers, so 4 blocks per SM: decode_num_splits() sizes the grid to this one wave.
constexpr int kDecodeMinBlocksPerSm = kDecodeSplitBlocksPerSm;
constexpr int kDecodeMinChunk = 32;
constexpr int kDecodeBtTile = 128;  // block-table entries staged in shared memory at a time

// q heads per decode block (at most 4: 8 heads of registers spill at 128 registers; GQA 8 takes two
// blocks per kv head, whose second K/V read mostly hits L2).
int decode_head_group(int g) { return g % 4 == 0 ? 4 : g % 2 == 0 ? 2 : 1; }
int decode_lanes(int head_dim) {
  int lanes = 1;
  while (lanes * 8 < head_dim) lanes *= 2;
  return std::max(lanes, 2);
}

// Dynamic shared memory of paged_decode_kernel: the block-table tile, then (reused) the group merge
// (m, l, o, weight per group and head; M, L per head) or the split weights of the fused merge.
size_t decode_smem_bytes(int lanes, int gsub, int head_dim) {
  const size_t groups = kDecodeThreads / lanes;
  const size_t merge_floats =
      std::max(groups * gsub * (3 + head_dim) + 2 * gsub, static_cast<size_t>(gsub) * kMaxDecodeSplits);
  return sizeof(int) * kDecodeBtTile + sizeof(float) * merge_floats;
}

// One step's K/V vectors of this lane: tokens base + u * kGroups + group, u < kDecodeUnroll.
struct DecodeStep {
  uint4 k[kDecodeUnroll], v[kDecodeUnroll];
};

// Block (seq, kv head x head group, split): online softmax over its context slice for GSUB q heads,
// then, with splits, writes its partial (o, m, l) and the last split block of (seq, head group) to
// finish merges all splits (its counter goes back to 0, so graph replays start from 0 again).
template <int LANES, int GSUB>
__global__ void __launch_bounds__(kDecodeThreads, kDecodeMinBlocksPerSm) paged_decode_kernel(PagedAttentionArgs a, int num_splits,
                                                                      float* partial_o, float* partial_ml,
                                                                      int* split_counters) {
  constexpr int kGroups = kDecodeThreads / LANES;
  constexpr int kStep = kGroups * kDecodeUnroll;
  extern __shared__ float4 smem_f4[];
  int* sm_bt = reinterpret_cast<int*>(smem_f4);
  float* smem = reinterpret_cast<float*>(sm_bt + kDecodeBtTile);
  __shared__ int sm_last;
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
  const int bs = kv.block_size;
  const bool bs_pow2 = (bs & (bs - 1)) == 0;
  const int bs_shift = __ffs(bs) - 1;

  for (int t0 = begin; t0 < end;) {
    // Stage this tile's block-table entries (one round trip for the whole tile, not one per step).
    const int blk0 = bs_pow2 ? t0 >> bs_shift : t0 / bs;
    const int t1 = min(end, (blk0 + kDecodeBtTile) * bs);
    const int nblk = (bs_pow2 ? (t1 - 1) >> bs_shift : (t1 - 1) / bs) - blk0 + 1;
    __syncthreads();  // the previous tile's entries are consumed
    for (int i = threadIdx.x; i < nblk; i += kDecodeThreads) sm_bt[i] = bt[blk0 + i];
    __syncthreads();

    auto load_step = [&](int base, DecodeStep& st) {
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        const int j = base + u * kGroups + group;
        if (j < t1 && active) {
          const int bi = bs_pow2 ? j >> bs_shift : j / bs;
          const int bo = j - bi * bs;
          const int64_t off = static_cast<int64_t>(sm_bt[bi - blk0]) * kv.elems_per_block + bo * token_stride + head_off;
          st.k[u] = *reinterpret_cast<const uint4*>(pool + off);
          st.v[u] = *reinterpret_cast<const uint4*>(pool + off + kv.elems_per_page);
        } else {
          st.k[u] = make_uint4(0, 0, 0, 0);
          st.v[u] = make_uint4(0, 0, 0, 0);
        }
      }
    };
    // Online softmax over one step: scores of all its tokens first, one rescale per head.
    auto compute_step = [&](int base, const DecodeStep& st) {
      float sc[GSUB][kDecodeUnroll];
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        const bool valid = base + u * kGroups + group < t1;
        float kf[8];
        unpack_bf16x8(st.k[u], kf);
#pragma unroll
        for (int g = 0; g < GSUB; ++g) {
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < 8; ++e) dot = fmaf(q[g][e], kf[e], dot);
#pragma unroll
          for (int o = LANES / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          sc[g][u] = valid ? dot : -INFINITY;
        }
      }
#pragma unroll
      for (int g = 0; g < GSUB; ++g) {
        float mt = sc[g][0];
#pragma unroll
        for (int u = 1; u < kDecodeUnroll; ++u) mt = fmaxf(mt, sc[g][u]);
        const float m_new = fmaxf(m[g], mt);
        // m_new == -inf only when this group has seen no token yet (its first step is past the slice end).
        const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[g] - m_new);
        float ps = 0.0f;
#pragma unroll
        for (int u = 0; u < kDecodeUnroll; ++u) {
          sc[g][u] = m_new == -INFINITY ? 0.0f : exp2f(sc[g][u] - m_new);
          ps += sc[g][u];
        }
        l[g] = fmaf(l[g], alpha, ps);
        m[g] = m_new;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] *= alpha;
      }
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        float vf[8];
        unpack_bf16x8(st.v[u], vf);
#pragma unroll
        for (int g = 0; g < GSUB; ++g) {
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[g][e] = fmaf(sc[g][u], vf[e], acc[g][e]);
        }
      }
    };

    // Two steps in flight: the next step's loads are issued before this step's math.
    DecodeStep cur, nxt;
    load_step(t0, cur);
    int base = t0;
    while (true) {
      if (base + kStep < t1) load_step(base + kStep, nxt);
      compute_step(base, cur);
      base += kStep;
      if (base >= t1) break;
      if (base + kStep < t1) load_step(base + kStep, cur);
      compute_step(base, nxt);
      base += kStep;
      if (base >= t1) break;
    }
    t0 = t1;
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
  // Per head: the groups' weights 2^(m_gr - M) / L once (sm_gw), then every output dim is a weighted sum.
  float* sm_gw = sm_o + kGroups * GSUB * D;  // [GSUB][kGroups]
  float* sm_ml = sm_gw + GSUB * kGroups;     // [GSUB][2]: M, L
  if (threadIdx.x < GSUB) {
    const int g = threadIdx.x;
    float M = -INFINITY, L = 0.0f;
    for (int gr = 0; gr < kGroups; ++gr) M = fmaxf(M, sm_m[gr * GSUB + g]);
    for (int gr = 0; gr < kGroups; ++gr) {
      const float mg = sm_m[gr * GSUB + g];
      const float w = mg == -INFINITY ? 0.0f : exp2f(mg - M);
      sm_gw[g * kGroups + gr] = w;
      L = fmaf(sm_l[gr * GSUB + g], w, L);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int gr = 0; gr < kGroups; ++gr) sm_gw[g * kGroups + gr] *= inv;
    sm_ml[2 * g] = M;
    sm_ml[2 * g + 1] = L;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < GSUB * D; idx += kDecodeThreads) {
    const int g = idx / D, d = idx % D;
    float val = 0.0f;
#pragma unroll 8
    for (int gr = 0; gr < kGroups; ++gr) val = fmaf(sm_gw[g * kGroups + gr], sm_o[(gr * GSUB + g) * D + d], val);
    const int head = head0 + g;
    if (num_splits == 1) {
      static_cast<bf16*>(a.out)[static_cast<int64_t>(tok) * Hq * D + head * D + d] = __float2bfloat16(val);
    } else {
      const int64_t pidx = (static_cast<int64_t>(s) * Hq + head) * num_splits + split;
      partial_o[pidx * D + d] = val;
      if (d == 0) {
        partial_ml[pidx * 2] = sm_ml[2 * g];
        partial_ml[pidx * 2 + 1] = sm_ml[2 * g + 1];
      }
    }
  }
  if (num_splits == 1) return;

  // Fused split merge: the last block of (seq, head group) to get here merges every split's partial.
  __threadfence();  // this block's partials are visible device-wide before it counts itself done
  __syncthreads();
  int* counter = split_counters + static_cast<int64_t>(s) * gridDim.y + blockIdx.y;
  if (threadIdx.x == 0) {
    const int prev = atomicAdd(counter, 1);
    sm_last = prev == num_splits - 1;
    if (sm_last) *counter = 0;  // every split has counted: ready for the next launch (graph replays)
  }
  __syncthreads();
  if (!sm_last) return;
  __threadfence();

  // Split weights per head (one warp per head): w_i = l_i 2^(m_i - M) / sum; smem reused as [GSUB][kMaxDecodeSplits].
  constexpr int kPerLane = kMaxDecodeSplits / 32;
  float* sm_w = smem;
  const int warp = threadIdx.x / 32, wl = threadIdx.x % 32;
  for (int g = warp; g < GSUB; g += kDecodeThreads / 32) {
    const int64_t p0 = (static_cast<int64_t>(s) * Hq + head0 + g) * num_splits;
    const float2* ml = reinterpret_cast<const float2*>(partial_ml) + p0;
    float mi[kPerLane], li[kPerLane];
    float M = -INFINITY;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const int i = wl + 32 * r;
      const float2 v = i < num_splits ? __ldcg(ml + i) : make_float2(-INFINITY, 0.0f);
      mi[r] = v.x;
      li[r] = v.y;
      if (li[r] > 0.0f) M = fmaxf(M, mi[r]);
    }
    M = warp_max(M);
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      li[r] = li[r] > 0.0f ? li[r] * exp2f(mi[r] - M) : 0.0f;
      sum += li[r];
    }
    sum = warp_sum(sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      const int i = wl + 32 * r;
      if (i < num_splits) sm_w[g * kMaxDecodeSplits + i] = li[r] * inv;
    }
  }
  __syncthreads();
  // Each thread: 4 dims of one head, summed over the splits with independent loads.
  const int dv = D / 4;
  for (int idx = threadIdx.x; idx < GSUB * dv; idx += kDecodeThreads) {
    const int g = idx / dv, d = (idx % dv) * 4;
    const int64_t p0 = (static_cast<int64_t>(s) * Hq + head0 + g) * num_splits;
    const float4* src = reinterpret_cast<const float4*>(partial_o + p0 * D + d);
    const float* w = sm_w + g * kMaxDecodeSplits;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 16
    for (int i = 0; i < num_splits; ++i) {
      const float4 v = __ldcg(src + static_cast<int64_t>(i) * dv);
      const float wi = w[i];
      o.x = fmaf(wi, v.x, o.x);
      o.y = fmaf(wi, v.y, o.y);
      o.z = fmaf(wi, v.z, o.z);
      o.w = fmaf(wi, v.w, o.w);
    }
    __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(static_cast<bf16*>(a.out) + static_cast<int64_t>(tok) * Hq * D +
                                                            (head0 + g) * D + d);
    dst[0] = __floats2bfloat162_rn(o.x, o.y);
    dst[1] = __floats2bfloat162_rn(o.z, o.w);
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
void launch_decode_impl(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                        cudaStream_t stream) {
  const int G = a.num_q_heads / a.kv.num_kv_heads;
  const size_t bytes = decode_smem_bytes(LANES, GSUB, a.kv.head_dim);
  dim3 grid(num_decode_seqs, a.kv.num_kv_heads * (G / GSUB), num_splits);
  paged_decode_kernel<LANES, GSUB><<<grid, kDecodeThreads, bytes, stream>>>(a, num_splits, scratch.partial_o,
                                                                            scratch.partial_ml, scratch.split_counters);
}

template <int LANES>
void launch_decode_lanes(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                         cudaStream_t stream) {
  switch (decode_head_group(a.num_q_heads / a.kv.num_kv_heads)) {
    case 4: return launch_decode_impl<LANES, 4>(a, num_decode_seqs, num_splits, scratch, stream);
    case 2: return launch_decode_impl<LANES, 2>(a, num_decode_seqs, num_splits, scratch, stream);
    default: return launch_decode_impl<LANES, 1>(a, num_decode_seqs, num_splits, scratch, stream);
  }
}

}  // namespace

int decode_split_counters(int num_decode_seqs, int num_kv_heads, int num_q_heads) {
  const int G = num_q_heads / num_kv_heads;
  return num_decode_seqs * num_kv_heads * (G / decode_head_group(G));
}

int decode_num_splits(int num_decode_seqs, int num_kv_heads, int num_q_heads, int sm_count) {
  const int blocks = decode_split_counters(num_decode_seqs, num_kv_heads, num_q_heads);  // one per decode block
  // One wave of the decode kernel (kDecodeSplitBlocksPerSm = its blocks per SM). Measured on H100
  // (PERF_NOTES.md, 2026-11-25): b=2 ctx 7500 39 us/layer at 32 splits against 49 at 64; b=32 ctx 2048
  // 115 us at 2 splits against 123 at 4; b=4 ctx 2048 best at 16.
  const int target = kDecodeSplitBlocksPerSm * std::max(sm_count, 1);
  if (blocks <= 0 || blocks >= target) return 1;
  return std::clamp(target / blocks, 1, 64);
}

void launch_paged_decode(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                         cudaStream_t stream) {
  if (num_decode_seqs <= 0) return;
  num_splits = std::clamp(num_splits, 1, kMaxDecodeSplits);
  // Requires head_dim % 8 == 0 and head_dim <= 256 (the backend routes other shapes to the prefill kernel).
  switch (decode_lanes(a.kv.head_dim)) {
    case 2: launch_decode_lanes<2>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 4: launch_decode_lanes<4>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 8: launch_decode_lanes<8>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 16: launch_decode_lanes<16>(a, num_decode_seqs, num_splits, scratch, stream); break;
    default: launch_decode_lanes<32>(a, num_decode_seqs, num_splits, scratch, stream); break;
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
