// Decode attention kernels over the block-major KV pool (backend/kv_cache_view.h), one query token per
// sequence, bf16 in, fp32 math; split-K with the split merge fused in (the last split block of each
// (seq, head group) merges all splits, log-sum-exp, found with a per-block atomic counter that it
// resets to 0 so graph replays start from zero). The split count comes from the launch shape only, so
// a captured CUDA graph stays valid as contexts grow. Two kernels:
// - paged_decode_mma_kernel: GQA groups of 2..8 heads at head_dim 64 / 128 (Llama, Qwen, Mistral):
//   tensor cores (mma.sync) for Q K^T and P V over 16-token tiles staged by cp.async, about one block
//   per SM (see its comment).
// - paged_decode_kernel (other shapes), CUDA cores: block (seq, kv head, head group, split) walks its
//   slice with groups of LANES threads per token (8 bf16 = 16 bytes per lane); block-table entries
//   staged in shared memory, K/V vectors through a per-thread cp.async ring, online softmax per head in
//   registers with one rescale per stage; the block's groups merge through shared memory.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kDecodeThreads = 128;
constexpr int kDecodeUnroll = 2;  // tokens per lane group per pipeline stage
// CUDA-core kernel's cp.async ring depth: kDecodeStages - 1 stages (of kDecodeUnroll tokens per lane
// group) in flight. 6 stages = 48 KB of shared memory per block, 4 blocks per SM (192 KB): at D 128
// that is 80 tokens of K and V per block in flight, against 32 with the former two register steps.
constexpr int kDecodeStages = 6;
// <= 128 registers, so 4 blocks per SM: decode_num_splits() sizes the grid to this one wave.
constexpr int kDecodeMinBlocksPerSm = kDecodeSplitBlocksPerSm;
constexpr int kDecodeMinChunk = 32;
constexpr int kDecodeBtTile = 128;  // block-table entries staged in shared memory at a time
constexpr int kDecodeMergeUnroll = 16;  // partials of the fused split merge in flight per thread

// Paged addressing of one sequence's context for both decode kernels: the block-table entries of a tile
// of up to kDecodeBtTile blocks are staged in shared memory (one round trip for the whole tile, not one
// per K/V step), and a token of the tile maps to its element offset in the pool through them.
struct StagedBlockTable {
  const int32_t* bt;  // the sequence's block table (global)
  int* sm_bt;         // kDecodeBtTile entries of shared memory
  int bs, bs_shift;   // block size, its log2 when a power of two
  bool bs_pow2;
  int blk0 = 0;       // first block of the staged tile

  __device__ StagedBlockTable(const int32_t* table, int* shared, int block_size)
      : bt(table), sm_bt(shared), bs(block_size), bs_shift(0), bs_pow2((block_size & (block_size - 1)) == 0) {
    while ((1 << bs_shift) < bs) ++bs_shift;  // log2(bs) when bs is a power of two (once per block)
  }
  __device__ __forceinline__ int block_of(int j) const { return bs_pow2 ? j >> bs_shift : j / bs; }
  // Stages the tile that starts at token t0 (all threads of the block call it); returns the tile's end
  // token, at most `end`.
  __device__ __forceinline__ int stage(int t0, int end, int num_threads) {
    blk0 = block_of(t0);
    const int t1 = min(end, (blk0 + kDecodeBtTile) * bs);
    const int nblk = block_of(t1 - 1) - blk0 + 1;
    __syncthreads();  // the previous tile's entries are consumed
    for (int i = threadIdx.x; i < nblk; i += num_threads) sm_bt[i] = bt[blk0 + i];
    __syncthreads();
    return t1;
  }
  // Element offset of token j of the staged tile: its block's start plus its row (token_stride per row).
  __device__ __forceinline__ int64_t token_offset(int j, int64_t elems_per_block, int64_t token_stride) const {
    const int bi = block_of(j);
    return static_cast<int64_t>(sm_bt[bi - blk0]) * elems_per_block + (j - bi * bs) * token_stride;
  }
};

// q heads per decode block (at most 4: 8 heads of registers spill at 128 registers; GQA 8 takes two
// blocks per kv head, whose second K/V read mostly hits L2).
int decode_head_group(int g) { return g % 4 == 0 ? 4 : g % 2 == 0 ? 2 : 1; }
int decode_lanes(int head_dim) {
  int lanes = 1;
  while (lanes * 8 < head_dim) lanes *= 2;
  return std::max(lanes, 2);
}

// Dynamic shared memory of paged_decode_kernel: the block-table tile, then the cp.async ring of K/V
// vectors [stage][unroll][k, v][thread], reused after the last stage by the group merge (m, l, o,
// weight per group and head; M, L per head).
constexpr size_t kDecodeRingBytes = sizeof(uint4) * kDecodeStages * kDecodeUnroll * 2 * kDecodeThreads;
size_t decode_smem_bytes(int lanes, int gsub, int head_dim) {
  const size_t groups = kDecodeThreads / lanes;
  const size_t merge_bytes = sizeof(float) * (groups * gsub * (3 + head_dim) + 2 * gsub);
  return sizeof(int) * kDecodeBtTile + std::max(kDecodeRingBytes, merge_bytes);
}
constexpr size_t kDecodeMaxSmemBytes = sizeof(int) * kDecodeBtTile + kDecodeRingBytes;

// 16 bytes global -> shared without registers; src_bytes 0 writes zeros (tokens past the slice).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// A ring of kStages shared-memory slots fed by cp.async over `n` steps; issue(step, slot) starts one
// step's copies into a slot. Start: kStages - 1 steps in flight, one commit group each (empty past the
// end, so that the wait in cp_async_ring_next always means "step i has landed").
template <int kStages, typename Issue>
__device__ __forceinline__ void cp_async_ring_start(int n, Issue& issue) {
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < n) issue(st, st);
    cp_async_commit();
  }
}
// Before using step i (in `slot`): waits until it has landed, runs `done_with_previous` (what makes every
// reader of step i - 1's slot finished with it), then refills that slot with step i + kStages - 1.
template <int kStages, typename Issue, typename Sync>
__device__ __forceinline__ void cp_async_ring_next(int i, int n, int slot, Issue& issue, Sync done_with_previous) {
  cp_async_wait<kStages - 2>();
  done_with_previous();
  const int refill = slot == 0 ? kStages - 1 : slot - 1;
  if (i + kStages - 1 < n) issue(i + kStages - 1, refill);
  cp_async_commit();
}

// One stage's K/V vectors of this lane: tokens base + u * kGroups + group, u < kDecodeUnroll.
struct DecodeStep {
  uint4 k[kDecodeUnroll], v[kDecodeUnroll];
};

// Fused split merge, after a block has written the partials of q heads [head0, head0 + nheads) of
// sequence s: the last split block of (seq, head group) to count itself on `counter` merges every
// split's partial into the output and resets the counter to 0 (graph replays start from 0 again).
__device__ __forceinline__ void decode_merge_splits(const PagedAttentionArgs& a, int s, int tok, int head0, int nheads,
                                                    int num_splits, const float* partial_o, const float* partial_ml,
                                                    int* counter, int* sm_last) {
  const int Hq = a.num_q_heads, D = a.kv.head_dim;
  __threadfence();  // this block's partials are visible device-wide before it counts itself done
  __syncthreads();
  if (threadIdx.x == 0) {
    const int prev = atomicAdd(counter, 1);
    *sm_last = prev == num_splits - 1;
    if (*sm_last) *counter = 0;  // every split has counted: ready for the next launch (graph replays)
  }
  __syncthreads();
  if (!*sm_last) return;
  __threadfence();

  // One pass per (head, 4 dims): each split's (m, l) and o are loaded together (no dependent round
  // trip for the split weights), kDecodeMergeUnroll splits in flight, online rescale per batch:
  // out = sum_i l_i 2^(m_i - M) o_i / sum_i l_i 2^(m_i - M). Empty splits have l = 0.
  const int dv = D / 4;
  for (int idx = threadIdx.x; idx < nheads * dv; idx += kDecodeThreads) {
    const int g = idx / dv, d = (idx % dv) * 4;
    const int64_t p0 = (static_cast<int64_t>(s) * Hq + head0 + g) * num_splits;
    const float4* src = reinterpret_cast<const float4*>(partial_o + p0 * D + d);
    const float2* ml = reinterpret_cast<const float2*>(partial_ml) + p0;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float M = -INFINITY, den = 0.0f;
    for (int i0 = 0; i0 < num_splits; i0 += kDecodeMergeUnroll) {
      float2 mlv[kDecodeMergeUnroll];
      float4 ov[kDecodeMergeUnroll];
#pragma unroll
      for (int r = 0; r < kDecodeMergeUnroll; ++r) {
        const int i = i0 + r;
        mlv[r] = i < num_splits ? __ldcg(ml + i) : make_float2(-INFINITY, 0.0f);
        ov[r] = i < num_splits ? __ldcg(src + static_cast<int64_t>(i) * dv) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
      float mb = M;
#pragma unroll
      for (int r = 0; r < kDecodeMergeUnroll; ++r)
        if (mlv[r].y > 0.0f) mb = fmaxf(mb, mlv[r].x);
      if (mb > M) {  // M == -inf means nothing summed yet (o, den are 0)
        const float c = M == -INFINITY ? 0.0f : exp2f(M - mb);
        o.x *= c;
        o.y *= c;
        o.z *= c;
        o.w *= c;
        den *= c;
        M = mb;
      }
#pragma unroll
      for (int r = 0; r < kDecodeMergeUnroll; ++r) {
        const float w = mlv[r].y > 0.0f ? mlv[r].y * exp2f(mlv[r].x - M) : 0.0f;
        den += w;
        o.x = fmaf(w, ov[r].x, o.x);
        o.y = fmaf(w, ov[r].y, o.y);
        o.z = fmaf(w, ov[r].z, o.z);
        o.w = fmaf(w, ov[r].w, o.w);
      }
    }
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(static_cast<bf16*>(a.out) + static_cast<int64_t>(tok) * Hq * D +
                                                            (head0 + g) * D + d);
    dst[0] = __floats2bfloat162_rn(o.x * inv, o.y * inv);
    dst[1] = __floats2bfloat162_rn(o.z * inv, o.w * inv);
  }
}

// Block (seq, kv head x head group, split): online softmax over its context slice for GSUB q heads,
// then, with splits, writes its partial (o, m, l) and the last split block of (seq, head group) to
// finish merges all splits (its counter goes back to 0, so graph replays start from 0 again).
// K/V go global -> shared through a per-thread cp.async ring: each thread reads back only the vectors
// it copied itself, so the ring needs cp.async.wait_group but no block barrier.
template <int LANES, int GSUB>
__global__ void __launch_bounds__(kDecodeThreads, kDecodeMinBlocksPerSm)
    paged_decode_kernel(PagedAttentionArgs a, int num_splits, float* partial_o, float* partial_ml,
                        int* split_counters) {
  constexpr int kGroups = kDecodeThreads / LANES;
  constexpr int kStep = kGroups * kDecodeUnroll;
  constexpr int kSlot = kDecodeUnroll * 2 * kDecodeThreads;  // uint4 per ring stage
  extern __shared__ float4 smem_f4[];
  int* sm_bt = reinterpret_cast<int*>(smem_f4);
  uint4* ring = reinterpret_cast<uint4*>(sm_bt + kDecodeBtTile);
  float* smem = reinterpret_cast<float*>(ring);  // after the ring drains
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
  StagedBlockTable table(bt, sm_bt, kv.block_size);

  // Online softmax over one stage: scores of all its tokens first, one rescale per head.
  auto compute_step = [&](int base, int t1, const DecodeStep& st) {
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
      // m_new == -inf only when this group has seen no token yet (its first stage is past the slice end).
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

  for (int t0 = begin; t0 < end;) {
    const int t1 = table.stage(t0, end, kDecodeThreads);

    // This thread's K and V vectors of stage `step` into ring slot `slot` (zeros past the slice).
    auto issue = [&](int step, int slot) {
      uint4* dst = ring + slot * kSlot + threadIdx.x;
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        const int j = t0 + step * kStep + u * kGroups + group;
        const bool valid = j < t1 && active;
        const bf16* src = pool;
        if (valid) src = pool + table.token_offset(j, kv.elems_per_block, token_stride) + head_off;
        cp_async_16(dst + (2 * u) * kDecodeThreads, src, valid ? 16 : 0);
        cp_async_16(dst + (2 * u + 1) * kDecodeThreads, valid ? src + kv.elems_per_page : pool, valid ? 16 : 0);
      }
    };
    const int nsteps = (t1 - t0 + kStep - 1) / kStep;
    cp_async_ring_start<kDecodeStages>(nsteps, issue);
    int slot = 0;
    for (int i = 0; i < nsteps; ++i) {
      // Each thread reads back only its own copies: it finished with stage i - 1's slot last iteration.
      cp_async_ring_next<kDecodeStages>(i, nsteps, slot, issue, [] {});
      DecodeStep cur;
      const uint4* src = ring + slot * kSlot + threadIdx.x;
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        cur.k[u] = src[(2 * u) * kDecodeThreads];
        cur.v[u] = src[(2 * u + 1) * kDecodeThreads];
      }
      compute_step(t0 + i * kStep, t1, cur);
      slot = slot + 1 == kDecodeStages ? 0 : slot + 1;
    }
    t0 = t1;
  }
  cp_async_wait<0>();  // only empty groups are left; the ring is reused below
  __syncthreads();

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

  decode_merge_splits(a, s, tok, head0, GSUB, num_splits, partial_o, partial_ml,
                      split_counters + static_cast<int64_t>(s) * gridDim.y + blockIdx.y, &sm_last);
}

// ---------------- decode on tensor cores (GQA groups of 2..8 heads, head_dim 64 / 128) ----------------
// Block (seq, kv head, split), 4 warps; warp w takes the 16-token tiles w, w + 4, ... of the slice.
// Per tile, S (16 rows = q heads of the group, zero-padded; 8 tokens per n-tile) = Q K^T and
// O += P V run on mma.sync m16n8k16 (bf16 in, fp32 accumulate): the C fragment of S is the A fragment
// of P V, so P never leaves registers. K/V rows go global -> shared through a per-warp cp.async ring
// (kMmaStages - 1 tiles in flight per warp), padded by 16 bytes per row so that ldmatrix is
// conflict-free. About 10 warp instructions per (token, kv head) against ~180 on the CUDA cores,
// which left batch 32 issue-bound rather than bandwidth-bound.
constexpr int kMmaTile = 16;
constexpr int kMmaWarps = kDecodeThreads / 32;
// Ring depth per warp: 3 stages (2 tiles in flight, 2 blocks per SM) when the grid covers the SMs
// (batch 32: no splits), 6 (5 in flight, 1 block per SM) when it does not (small batches, split).
constexpr int kMmaStagesWide = 3;
constexpr int kMmaStagesDeep = 6;
template <int D, int kMmaStages>
struct MmaDecodeSmem {
  static constexpr int kRowPad = D * 2 + 16;                  // bytes per K or V row in shared memory
  static constexpr int kStage = 2 * kMmaTile * kRowPad;       // K rows, then V rows
  static constexpr int kRing = kMmaStages * kStage;           // per warp
  static constexpr size_t kBytes = sizeof(int) * kDecodeBtTile + static_cast<size_t>(kMmaWarps) * kRing;
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <int D, int kMmaStages>
__global__ void __launch_bounds__(kDecodeThreads, kMmaStages == kMmaStagesWide ? 2 : 1)
    paged_decode_mma_kernel(PagedAttentionArgs a, int num_splits, float* partial_o, float* partial_ml,
                            int* split_counters) {
  using L = MmaDecodeSmem<D, kMmaStages>;
  constexpr int kChunks = D / 8;                          // 16-byte chunks per row
  constexpr int kIssue = kMmaTile * kChunks / 32;         // K (and V) chunks per lane per tile
  constexpr int kKSteps = D / 16;
  constexpr int kNTiles = D / 8;
  extern __shared__ float4 smem_f4[];
  int* sm_bt = reinterpret_cast<int*>(smem_f4);
  unsigned char* ring_all = reinterpret_cast<unsigned char*>(sm_bt + kDecodeBtTile);
  __shared__ int sm_last;
  const int s = blockIdx.x;
  const KvPoolLayer& kv = a.kv;
  const int Hk = kv.num_kv_heads, Hq = a.num_q_heads, G = Hq / Hk;
  const int kvh = blockIdx.y;
  const int head0 = kvh * G;
  const int split = blockIdx.z;
  const int ctx = a.context_lens[s];
  const int chunk = max((ctx + num_splits - 1) / num_splits, kDecodeMinChunk);
  const int begin = min(ctx, split * chunk), end = min(ctx, begin + chunk);
  const int tok = a.query_start[s];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tig = lane % 4;
  unsigned char* ring = ring_all + warp * L::kRing;
  const unsigned ring_s = static_cast<unsigned>(__cvta_generic_to_shared(ring));

  // A fragments of Q (rows = heads of the group, zero past G): a0 dims 2tig.., a2 dims 8+2tig.. per k-step.
  uint32_t qa[kKSteps][2];
  {
    const bf16* qp = static_cast<const bf16*>(a.q) + static_cast<int64_t>(tok) * a.q_stride + (head0 + gid) * D;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      qa[ks][0] = gid < G ? *reinterpret_cast<const uint32_t*>(qp + ks * 16 + 2 * tig) : 0u;
      qa[ks][1] = gid < G ? *reinterpret_cast<const uint32_t*>(qp + ks * 16 + 8 + 2 * tig) : 0u;
    }
  }
  const float qscale = a.scale * kLog2e;
  float o[kNTiles][4];
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // head gid; l is this thread's share (summed over tig at the end)

  const bf16* pool = static_cast<const bf16*>(kv.base);
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.max_blocks_per_seq;
  const int64_t token_stride = static_cast<int64_t>(Hk) * D;
  const int64_t head_off = kv.layer_offset + static_cast<int64_t>(kvh) * D;
  StagedBlockTable table(bt, sm_bt, kv.block_size);
  const int ch = lane % kChunks;  // this lane's 16-byte chunk of a row

  for (int t0 = begin; t0 < end;) {
    const int t1 = table.stage(t0, end, kDecodeThreads);

    const int ntiles = (t1 - t0 + kMmaTile - 1) / kMmaTile;
    const int nmine = ntiles > warp ? (ntiles - warp + kMmaWarps - 1) / kMmaWarps : 0;
    // K and V rows of this warp's i-th tile into ring slot `slot` (zeros past the slice).
    auto issue = [&](int i, int slot) {
      const int tbase = t0 + (warp + i * kMmaWarps) * kMmaTile;
      unsigned char* dst = ring + slot * L::kStage;
#pragma unroll
      for (int r = 0; r < kIssue; ++r) {
        const int row = (lane + 32 * r) / kChunks;
        const int j = tbase + row;
        const bool valid = j < t1;
        const bf16* src = pool;
        if (valid) src = pool + table.token_offset(j, kv.elems_per_block, token_stride) + head_off + ch * 8;
        cp_async_16(dst + row * L::kRowPad + ch * 16, src, valid ? 16 : 0);
        cp_async_16(dst + (kMmaTile + row) * L::kRowPad + ch * 16, valid ? src + kv.elems_per_page : pool,
                    valid ? 16 : 0);
      }
    };
    cp_async_ring_start<kMmaStages>(nmine, issue);
    int slot = 0;
    for (int i = 0; i < nmine; ++i) {
      // The warp shares its slots: every lane's copies of tile i landed, every lane is done with tile i - 1's.
      cp_async_ring_next<kMmaStages>(i, nmine, slot, issue, [] { __syncwarp(); });
      const unsigned ks_base = ring_s + slot * L::kStage;
      const unsigned vs_base = ks_base + kMmaTile * L::kRowPad;
      const int tbase = t0 + (warp + i * kMmaWarps) * kMmaTile;

      // S = Q K^T: two n-tiles of 8 tokens; ldmatrix x4 = b0, b1 of two k-steps.
      float sc[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < kKSteps; ks += 2) {
          uint32_t b[4];
          const int r = lane & 7, jm = lane >> 3;
          ldmatrix_x4(b, ks_base + (nt * 8 + r) * L::kRowPad + (ks * 16 + jm * 8) * 2);
          mma_bf16_16816(sc[nt], qa[ks][0], 0u, qa[ks][1], 0u, b[0], b[1]);
          mma_bf16_16816(sc[nt], qa[ks + 1][0], 0u, qa[ks + 1][1], 0u, b[2], b[3]);
        }
      }
      // Online softmax for head gid over tokens nt*8 + 2tig (+1); the 4 lanes of a row share m.
      float mt = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = tbase + nt * 8 + 2 * tig + e;
          sc[nt][e] = j < t1 ? sc[nt][e] * qscale : -INFINITY;
          mt = fmaxf(mt, sc[nt][e]);
        }
      }
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
      const float m_new = fmaxf(m, mt);
      const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m - m_new);
      float ps = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          sc[nt][e] = m_new == -INFINITY ? 0.0f : exp2f(sc[nt][e] - m_new);
          ps += sc[nt][e];
        }
      }
      l = fmaf(l, alpha, ps);
      m = m_new;
      if (__any_sync(0xffffffffu, alpha != 1.0f)) {
#pragma unroll
        for (int n = 0; n < kNTiles; ++n) {
          o[n][0] *= alpha;
          o[n][1] *= alpha;
        }
      }
      // O += P V: A = P (row gid: tokens 2tig.. and 8+2tig..), B from V rows via ldmatrix.trans.
      const uint32_t pa0 = pack_bf16x2(sc[0][0], sc[0][1]);
      const uint32_t pa2 = pack_bf16x2(sc[1][0], sc[1][1]);
#pragma unroll
      for (int n = 0; n < kNTiles; n += 2) {
        uint32_t b[4];
        const int r = lane & 7, jm = lane >> 3;
        ldmatrix_x4_trans(b, vs_base + (r + (jm & 1) * 8) * L::kRowPad + (n * 8 + (jm >> 1) * 8) * 2);
        mma_bf16_16816(o[n], pa0, 0u, pa2, 0u, b[0], b[1]);
        mma_bf16_16816(o[n + 1], pa0, 0u, pa2, 0u, b[2], b[3]);
      }
      slot = slot + 1 == kMmaStages ? 0 : slot + 1;
    }
    t0 = t1;
  }
  cp_async_wait<0>();
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  __syncthreads();  // rings drained in every warp: reuse them for the warp merge

  // Merge the warps: sm_m/sm_l [warp][8], sm_o [warp][8][D].
  float* smem = reinterpret_cast<float*>(ring_all);
  float* sm_m = smem;
  float* sm_l = sm_m + kMmaWarps * 8;
  float* sm_o = sm_l + kMmaWarps * 8;
  if (tig == 0) {
    sm_m[warp * 8 + gid] = m;
    sm_l[warp * 8 + gid] = l;
  }
#pragma unroll
  for (int n = 0; n < kNTiles; ++n)
    *reinterpret_cast<float2*>(sm_o + (warp * 8 + gid) * D + n * 8 + 2 * tig) = make_float2(o[n][0], o[n][1]);
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kDecodeThreads) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) M = fmaxf(M, sm_m[w * 8 + g]);
    float Lsum = 0.0f, val = 0.0f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) {
      const float mw = sm_m[w * 8 + g];
      const float wt = mw == -INFINITY ? 0.0f : exp2f(mw - M);
      Lsum = fmaf(sm_l[w * 8 + g], wt, Lsum);
      val = fmaf(sm_o[(w * 8 + g) * D + d], wt, val);
    }
    val = Lsum > 0.0f ? val / Lsum : 0.0f;
    const int head = head0 + g;
    if (num_splits == 1) {
      static_cast<bf16*>(a.out)[static_cast<int64_t>(tok) * Hq * D + head * D + d] = __float2bfloat16(val);
    } else {
      const int64_t pidx = (static_cast<int64_t>(s) * Hq + head) * num_splits + split;
      partial_o[pidx * D + d] = val;
      if (d == 0) {
        partial_ml[pidx * 2] = M;
        partial_ml[pidx * 2 + 1] = Lsum;
      }
    }
  }
  if (num_splits == 1) return;
  decode_merge_splits(a, s, tok, head0, G, num_splits, partial_o, partial_ml,
                      split_counters + static_cast<int64_t>(s) * gridDim.y + blockIdx.y, &sm_last);
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

template <int D>
void launch_decode_mma(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                       cudaStream_t stream) {
  dim3 grid(num_decode_seqs, a.kv.num_kv_heads, num_splits);  // limits raised by prepare_kernel_attributes()
  int sms = scratch.sm_count;
  if (sms <= 0) {
    int device = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
  if (static_cast<int64_t>(grid.x) * grid.y * grid.z <= sms) {
    paged_decode_mma_kernel<D, kMmaStagesDeep><<<grid, kDecodeThreads, MmaDecodeSmem<D, kMmaStagesDeep>::kBytes, stream>>>(
        a, num_splits, scratch.partial_o, scratch.partial_ml, scratch.split_counters);
  } else {
    paged_decode_mma_kernel<D, kMmaStagesWide><<<grid, kDecodeThreads, MmaDecodeSmem<D, kMmaStagesWide>::kBytes, stream>>>(
        a, num_splits, scratch.partial_o, scratch.partial_ml, scratch.split_counters);
  }
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
  // One per CUDA-core decode block (seq x head group of <= 4 q heads); the tensor-core kernel has one block
  // per (seq, kv head), the same number for G 2 and 4 but fewer for G 3 and 5-8.
  const int blocks = decode_split_counters(num_decode_seqs, num_kv_heads, num_q_heads);
  const int G = num_q_heads / std::max(num_kv_heads, 1);
  const int sms = std::max(sm_count, 1);
  if (blocks <= 0) return 1;
  if (G >= 2 && G <= 8) {
    // Tensor-core kernel (head_dim 64 / 128; other head dims take the CUDA-core kernel with these
    // splits, correct but not tuned): about one block per SM for G 2 and 4 (Llama's 4 is what was
    // measured); for G 3 and 5-8 `blocks` over-counts, so fewer splits than that (correct, not tuned). Measured on H100 (us/layer, split
    // sweep, 2026-11-25): b=1 ctx 7500 19.2 at 16 splits (21.9 at 32, 29.3 at 64), b=2 ctx 7500 30.9
    // at 8 (32.6 at 16), b=4 ctx 2048 19.8 at 4 (21.1 at 8), b=32 ctx 2048 101.1 at 1 (107.6 at 2).
    if (blocks >= sms) return 1;
    return std::clamp(sms / blocks, 1, 64);
  }
  // CUDA-core kernel: one wave at kDecodeSplitBlocksPerSm blocks per SM. Measured on H100 (PERF_NOTES.md,
  // 2026-11-25): b=2 ctx 7500 39 us/layer at 32 splits against 49 at 64; b=32 ctx 2048 115 us at
  // 2 splits against 123 at 4; b=4 ctx 2048 best at 16.
  const int target = kDecodeSplitBlocksPerSm * sms;
  if (blocks >= target) return 1;
  return std::clamp(target / blocks, 1, 64);
}

void launch_paged_decode(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                         cudaStream_t stream) {
  if (num_decode_seqs <= 0) return;
  num_splits = std::clamp(num_splits, 1, kMaxDecodeSplits);
  // GQA groups of 2..8 heads at head_dim 64 / 128 (Llama, Qwen, Mistral shapes) run on tensor cores.
  const int G = a.num_q_heads / a.kv.num_kv_heads;
  if (G >= 2 && G <= 8) {
    if (a.kv.head_dim == 128) return launch_decode_mma<128>(a, num_decode_seqs, num_splits, scratch, stream);
    if (a.kv.head_dim == 64) return launch_decode_mma<64>(a, num_decode_seqs, num_splits, scratch, stream);
  }
  // Requires head_dim % 8 == 0 and head_dim <= 256 (the backend routes other shapes to the prefill kernel).
  switch (decode_lanes(a.kv.head_dim)) {
    case 2: launch_decode_lanes<2>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 4: launch_decode_lanes<4>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 8: launch_decode_lanes<8>(a, num_decode_seqs, num_splits, scratch, stream); break;
    case 16: launch_decode_lanes<16>(a, num_decode_seqs, num_splits, scratch, stream); break;
    default: launch_decode_lanes<32>(a, num_decode_seqs, num_splits, scratch, stream); break;
  }
}

cudaError_t prepare_decode_kernel_attributes() {
  cudaError_t err = cudaSuccess;
  auto raise = [&](auto kernel, size_t bytes) {
    if (err == cudaSuccess)
      err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  };
  // The cp.async rings take more than 48 KB; all of L1 as shared memory so that the planned blocks per SM fit.
  auto raise_decode = [&](auto kernel, size_t bytes) {
    raise(kernel, bytes);
    if (err == cudaSuccess) err = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
  };
  auto raise_decode_lanes = [&](auto lanes) {
    constexpr int kLanes = decltype(lanes)::value;
    raise_decode(paged_decode_kernel<kLanes, 1>, kDecodeMaxSmemBytes);
    raise_decode(paged_decode_kernel<kLanes, 2>, kDecodeMaxSmemBytes);
    raise_decode(paged_decode_kernel<kLanes, 4>, kDecodeMaxSmemBytes);
  };
  raise_decode(paged_decode_mma_kernel<64, kMmaStagesWide>, MmaDecodeSmem<64, kMmaStagesWide>::kBytes);
  raise_decode(paged_decode_mma_kernel<128, kMmaStagesWide>, MmaDecodeSmem<128, kMmaStagesWide>::kBytes);
  raise_decode(paged_decode_mma_kernel<64, kMmaStagesDeep>, MmaDecodeSmem<64, kMmaStagesDeep>::kBytes);
  raise_decode(paged_decode_mma_kernel<128, kMmaStagesDeep>, MmaDecodeSmem<128, kMmaStagesDeep>::kBytes);
  raise_decode_lanes(std::integral_constant<int, 2>{});
  raise_decode_lanes(std::integral_constant<int, 4>{});
  raise_decode_lanes(std::integral_constant<int, 8>{});
  raise_decode_lanes(std::integral_constant<int, 16>{});
  raise_decode_lanes(std::integral_constant<int, 32>{});
  return err;
}

}  // namespace tandem::cuda
