// Row-wise and elementwise kernels of the CUDA backend: embedding, rms_norm, silu_mul, gather_rows and
// the fused RoPE + KV-cache scatter. bf16 in/out, fp32 math, 16-byte vector paths when sizes and pointers allow, scalar paths otherwise.
#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/cuda_kernels.h"

#include <algorithm>

namespace tandem::cuda {
namespace {

constexpr int kRowThreads = 256;

__global__ void embedding_kernel(const int32_t* ids, const bf16* table, bf16* out, int hidden, int vocab, bool vec) {
  const int row = blockIdx.x;
  const int id = ids[row];
  bf16* o = out + static_cast<int64_t>(row) * hidden;
  const bool valid = id >= 0 && id < vocab;
  const bf16* t = table + static_cast<int64_t>(valid ? id : 0) * hidden;
  if (vec) {
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x)
      reinterpret_cast<uint4*>(o)[i] = valid ? reinterpret_cast<const uint4*>(t)[i] : zero;
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = valid ? t[i] : __float2bfloat16(0.0f);
  }
}

// One block per row: the sum of squares, then the scaled row. Each thread re-reads only the elements
// it read in the first pass, so x may alias out.
template <bool kVec>
__global__ void rms_norm_kernel(const bf16* x, const bf16* w, bf16* out, int hidden, float eps) {
  __shared__ float scratch[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  const bf16* xr = x + base;
  float ss = 0.0f;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
      float a[8];
      load_bf16x8(xr + i * 8, a);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += a[e] * a[e];
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      const float a = __bfloat162float(xr[i]);
      ss += a * a;
    }
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(hidden) + eps);
  bf16* o = out + base;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
      float a[8], g[8];
      load_bf16x8(xr + i * 8, a);
      load_bf16x8(w + i * 8, g);
#pragma unroll
      for (int e = 0; e < 8; ++e) a[e] = a[e] * inv * g[e];
      store_bf16x8(o + i * 8, a);
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
      o[i] = __float2bfloat16(__bfloat162float(xr[i]) * inv * __bfloat162float(w[i]));
  }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + __expf(-g)); }

__global__ void silu_mul_kernel(const bf16* gate_up, bf16* out, int64_t n, int inter, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec) {
    const int chunks = inter / 8;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n * chunks; idx += stride) {
      const int64_t row = idx / chunks;
      const int c = static_cast<int>(idx % chunks);
      float g[8], u[8];
      load_bf16x8(gate_up + row * 2 * inter + c * 8, g);
      load_bf16x8(gate_up + row * 2 * inter + inter + c * 8, u);
#pragma unroll
      for (int e = 0; e < 8; ++e) g[e] = silu(g[e]) * u[e];
      store_bf16x8(out + row * inter + c * 8, g);
    }
  } else {
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n * inter; idx += stride) {
      const int64_t row = idx / inter;
      const int c = static_cast<int>(idx % inter);
      const float g = __bfloat162float(gate_up[row * 2 * inter + c]);
      const float u = __bfloat162float(gate_up[row * 2 * inter + inter + c]);
      out[idx] = __float2bfloat16(silu(g) * u);
    }
  }
}

template <typename Word>
__global__ void gather_rows_kernel(const Word* x, const int32_t* row_ids, Word* out, int64_t num_rows, int64_t words) {
  const int i = blockIdx.x;
  const int32_t r = row_ids[i];
  Word* o = out + static_cast<int64_t>(i) * words;
  if (r < 0 || r >= num_rows) {
    for (int64_t w = threadIdx.x; w < words; w += blockDim.x) o[w] = Word{};
    return;
  }
  const Word* s = x + static_cast<int64_t>(r) * words;
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) o[w] = s[w];
}

// Scalar path (any head_dim): one block per token: rotate q and k pairs (i, i + D/2), write rotated k
// and v into the pool.
__global__ void rope_cache_kernel(bf16* q, int64_t q_stride, bf16* k, int64_t k_stride, const bf16* v, int64_t v_stride,
                                  const float* cos_sin, const int32_t* positions, const int32_t* slot_mapping,
                                  int num_q_heads, KvPoolLayer kv) {
  const int t = blockIdx.x;
  const int D = kv.head_dim, half = D / 2, Hk = kv.num_kv_heads;
  const int pos = positions[t];
  const int slot = slot_mapping[t];
  const float* cs = cos_sin + static_cast<int64_t>(pos) * D;
  bf16* pool = static_cast<bf16*>(kv.base);
  int64_t k_dst = -1;
  if (slot >= 0) {
    k_dst = (slot / kv.block_size) * kv.elems_per_block + kv.layer_offset +
            static_cast<int64_t>(slot % kv.block_size) * Hk * D;
  }
  bf16* qt = q + static_cast<int64_t>(t) * q_stride;
  for (int j = threadIdx.x; j < num_q_heads * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    const float c = cs[i], s = cs[half + i];
    const float x1 = __bfloat162float(qt[h * D + i]), x2 = __bfloat162float(qt[h * D + i + half]);
    qt[h * D + i] = __float2bfloat16(x1 * c - x2 * s);
    qt[h * D + i + half] = __float2bfloat16(x2 * c + x1 * s);
  }
  bf16* kt = k + static_cast<int64_t>(t) * k_stride;
  for (int j = threadIdx.x; j < Hk * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    const float c = cs[i], s = cs[half + i];
    const float x1 = __bfloat162float(kt[h * D + i]), x2 = __bfloat162float(kt[h * D + i + half]);
    const bf16 r1 = __float2bfloat16(x1 * c - x2 * s), r2 = __float2bfloat16(x2 * c + x1 * s);
    kt[h * D + i] = r1;
    kt[h * D + i + half] = r2;
    if (k_dst >= 0) {
      pool[k_dst + h * D + i] = r1;
      pool[k_dst + h * D + i + half] = r2;
    }
  }
  if (k_dst >= 0) {
    const bf16* vt = v + static_cast<int64_t>(t) * v_stride;
    bf16* vd = pool + k_dst + kv.elems_per_page;
    for (int j = threadIdx.x; j < Hk * D; j += blockDim.x) vd[j] = vt[j];
  }
}


// Vector path (head_dim % 16 == 0, 16-byte aligned rows): one thread per 8 rotation pairs
// (i..i+7 with i+D/2..i+D/2+7) of one q or k head, or per 8 elements of one v row; grid (token, items / 128),
// so a decode step of a few tokens still spreads over several blocks and a prefill over all SMs.
// Same fp32 math as rope_cache_kernel.
__global__ void rope_cache_vec_kernel(bf16* q, int64_t q_stride, bf16* k, int64_t k_stride, const bf16* v,
                                      int64_t v_stride, const float* cos_sin, const int32_t* positions,
                                      const int32_t* slot_mapping, int num_q_heads, KvPoolLayer kv) {
  const int t = blockIdx.x;
  const int D = kv.head_dim, half = D / 2, Hk = kv.num_kv_heads;
  const int vph = half / 8;  // vectors per rotated half-head
  const int nq = num_q_heads * vph, nk = Hk * vph, nv = Hk * D / 8;
  const int item = blockIdx.y * blockDim.x + threadIdx.x;
  if (item >= nq + nk + nv) return;
  bf16* pool = static_cast<bf16*>(kv.base);
  auto slot_offset = [&]() -> int64_t {
    const int slot = slot_mapping[t];
    if (slot < 0) return -1;
    return (slot / kv.block_size) * kv.elems_per_block + kv.layer_offset +
           static_cast<int64_t>(slot % kv.block_size) * Hk * D;
  };
  if (item < nq + nk) {
    const bool is_q = item < nq;
    const int r = is_q ? item : item - nq;
    const int h = r / vph, i = (r % vph) * 8;
    const int64_t k_dst = is_q ? -1 : slot_offset();
    const float* cs = cos_sin + static_cast<int64_t>(positions[t]) * D;
    bf16* row = is_q ? q + static_cast<int64_t>(t) * q_stride + h * D : k + static_cast<int64_t>(t) * k_stride + h * D;
    float x1[8], x2[8], r1[8], r2[8];
    load_bf16x8(row + i, x1);
    load_bf16x8(row + half + i, x2);
    const float4 c0 = *reinterpret_cast<const float4*>(cs + i), c1 = *reinterpret_cast<const float4*>(cs + i + 4);
    const float4 s0 = *reinterpret_cast<const float4*>(cs + half + i);
    const float4 s1 = *reinterpret_cast<const float4*>(cs + half + i + 4);
    const float c[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
    const float sn[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      r1[e] = x1[e] * c[e] - x2[e] * sn[e];
      r2[e] = x2[e] * c[e] + x1[e] * sn[e];
    }
    store_bf16x8(row + i, r1);
    store_bf16x8(row + half + i, r2);
    if (k_dst >= 0) {
      store_bf16x8(pool + k_dst + h * D + i, r1);
      store_bf16x8(pool + k_dst + h * D + half + i, r2);
    }
  } else {
    const int64_t k_dst = slot_offset();
    if (k_dst < 0) return;
    const int r = (item - nq - nk) * 8;
    *reinterpret_cast<uint4*>(pool + k_dst + kv.elems_per_page + r) =
        *reinterpret_cast<const uint4*>(v + static_cast<int64_t>(t) * v_stride + r);
  }
}


}  // namespace

void launch_embedding(const int32_t* ids, const void* table, void* out, int n, int hidden, int vocab, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = hidden % 8 == 0 && aligned16(table) && aligned16(out);
  embedding_kernel<<<n, kRowThreads, 0, stream>>>(ids, static_cast<const bf16*>(table), static_cast<bf16*>(out),
                                                  hidden, vocab, vec);
}

void launch_rms_norm(const void* x, const void* w, void* out, int n, int hidden, float eps, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = hidden % 8 == 0 && aligned16(x) && aligned16(w) && aligned16(out);
  auto* xb = static_cast<const bf16*>(x);
  auto* wb = static_cast<const bf16*>(w);
  auto* ob = static_cast<bf16*>(out);
  if (vec) rms_norm_kernel<true><<<n, kRowThreads, 0, stream>>>(xb, wb, ob, hidden, eps);
  else rms_norm_kernel<false><<<n, kRowThreads, 0, stream>>>(xb, wb, ob, hidden, eps);
}

void launch_silu_mul(const void* gate_up, void* out, int n, int inter, cudaStream_t stream) {
  if (n <= 0 || inter <= 0) return;
  const bool vec = inter % 8 == 0 && aligned16(gate_up) && aligned16(out);
  const int64_t work = static_cast<int64_t>(n) * (vec ? inter / 8 : inter);
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((work + threads - 1) / threads, 65535));
  silu_mul_kernel<<<blocks, threads, 0, stream>>>(static_cast<const bf16*>(gate_up), static_cast<bf16*>(out), n, inter,
                                                  vec);
}

void launch_gather_rows(const void* x, const int32_t* row_ids, void* out, int m, int64_t num_rows, size_t row_bytes,
                        cudaStream_t stream) {
  if (m <= 0 || row_bytes == 0) return;
  if (row_bytes % 16 == 0 && aligned16(x) && aligned16(out)) {
    gather_rows_kernel<uint4><<<m, 256, 0, stream>>>(static_cast<const uint4*>(x), row_ids, static_cast<uint4*>(out),
                                                     num_rows, static_cast<int64_t>(row_bytes / 16));
  } else if (row_bytes % 4 == 0) {
    gather_rows_kernel<uint32_t><<<m, 256, 0, stream>>>(static_cast<const uint32_t*>(x), row_ids,
                                                        static_cast<uint32_t*>(out), num_rows,
                                                        static_cast<int64_t>(row_bytes / 4));
  } else {
    gather_rows_kernel<uint8_t><<<m, 256, 0, stream>>>(static_cast<const uint8_t*>(x), row_ids,
                                                       static_cast<uint8_t*>(out), num_rows,
                                                       static_cast<int64_t>(row_bytes));
  }
}

void launch_rope_and_cache_write(void* q, int64_t q_stride, void* k, int64_t k_stride, const void* v,
                                 int64_t v_stride, const float* cos_sin, const int32_t* positions,
                                 const int32_t* slot_mapping, int n, int num_q_heads, const KvPoolLayer& kv,
                                 cudaStream_t stream) {
  if (n <= 0) return;
  const int D = kv.head_dim;
  const bool vec = D % 16 == 0 && q_stride % 8 == 0 && k_stride % 8 == 0 && v_stride % 8 == 0 && aligned16(q) &&
                   aligned16(k) && aligned16(v) && aligned16(cos_sin) && aligned16(kv.base);
  if (vec) {
    const int items = (num_q_heads + kv.num_kv_heads) * (D / 16) + kv.num_kv_heads * D / 8;
    const int threads = 128;
    const dim3 grid(n, (items + threads - 1) / threads);
    rope_cache_vec_kernel<<<grid, threads, 0, stream>>>(static_cast<bf16*>(q), q_stride, static_cast<bf16*>(k), k_stride,
                                                        static_cast<const bf16*>(v), v_stride, cos_sin, positions,
                                                        slot_mapping, num_q_heads, kv);
    return;
  }
  rope_cache_kernel<<<n, 128, 0, stream>>>(static_cast<bf16*>(q), q_stride, static_cast<bf16*>(k), k_stride,
                                           static_cast<const bf16*>(v), v_stride, cos_sin, positions, slot_mapping,
                                           num_q_heads, kv);
}

}  // namespace tandem::cuda
