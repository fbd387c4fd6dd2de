// Sampling on the GPU, one block per row of fp32 logits, following SamplingRow (backend/backend.h) and
// the reference in backend/cpu/cpu_sampling.{h,cpp}:
//   greedy: argmax, ties to the lowest id;
//   else p = softmax(logits * (1/T)) over the full vocabulary, computed with the reference's formula;
//   top-k: the k-th largest p found by a bitwise search on p's float bits (p >= 0, so bits order like
//          values), ties at the boundary resolved toward lower ids exactly like the reference's sort;
//   top-p: the largest threshold v with sum(p >= v) >= top_p (the sorted-prefix rule; within a group of
//          equal p at the boundary all of the group is kept);
//   min-p: p >= min_p * max(p);
//   draw:  argmax over kept ids of p_i / -log(u_i), u_i = uniform_from_hash(seed, step, i) -- the same
//          counter-based splitmix64 hash as the CPU reference, bit for bit.
// Each search pass re-reads the row (it stays in L2); no scratch memory is needed.
#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kSampleThreads = 1024;

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ float uniform_from_hash(uint64_t seed, uint64_t step, int32_t id) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ static_cast<uint64_t>(static_cast<uint32_t>(id)));
  return static_cast<float>((h >> 40) + 1) * (1.0f / 16777216.0f);
}

// (value, index) argmax across the warp, every lane gets the result: ties to the lowest index, idx < 0
// marks an empty slot; NaN never wins.
__device__ __forceinline__ void warp_argmax(float& v, int& idx) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (oi >= 0 && (idx < 0 || ov > v || (ov == v && oi < idx))) {
      v = ov;
      idx = oi;
    }
  }
}

// (value, index) argmax across the block, ties to the lowest index; NaN never wins.
__device__ void block_argmax(float& v, int& idx, float* sv, int* si) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  warp_argmax(v, idx);
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = idx;
  }
  __syncthreads();
  v = lane < nwarps ? sv[lane] : -INFINITY;
  idx = lane < nwarps ? si[lane] : -1;
  warp_argmax(v, idx);
}

// Argmax of a row of logits, ties to the lowest id (the reference's argmax_token); -1 for an empty row.
__device__ int row_argmax(const float* lg, int vocab, float* sv, int* si) {
  float best = -INFINITY;
  int bi = -1;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = lg[i];
    if (bi < 0 || v > best) {  // ascending i per thread: strict > keeps the lowest id on ties
      best = v;
      bi = i;
    }
  }
  block_argmax(best, bi, sv, si);
  return bi;
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* logits, int vocab,
                                                                 const SamplingRowDevice* rows, int32_t* out_ids) {
  __shared__ float scratch[32];
  __shared__ float sv[32];
  __shared__ int si[32];
  const int row = blockIdx.x;
  const float* lg = logits + static_cast<int64_t>(row) * vocab;
  const SamplingRowDevice r = rows[row];
  const int tid = threadIdx.x;

  if (r.temperature <= 0.0f || r.top_k == 1) {
    const int bi = row_argmax(lg, vocab, sv, si);
    if (tid == 0) out_ids[row] = bi < 0 ? 0 : bi;
    return;
  }

  const float inv_t = 1.0f / r.temperature;
  float mx = -INFINITY;
  for (int i = tid; i < vocab; i += blockDim.x) mx = fmaxf(mx, lg[i] * inv_t);
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int i = tid; i < vocab; i += blockDim.x) sum += expf(lg[i] * inv_t - mx);
  sum = block_sum(sum, scratch);
  const float inv_sum = 1.0f / sum;
  auto prob = [&](int i) { return expf(lg[i] * inv_t - mx) * inv_sum; };

  // Bitwise searches (MSB first) over the float bits of p: the k-th largest value for top-k, and the
  // largest v with sum(p >= v) >= top_p for top-p.
  const bool use_k = r.top_k > 0 && r.top_k < vocab;
  const bool use_p = r.top_p < 1.0f;
  uint32_t k_bits = 0, p_bits = 0;
  if (use_k || use_p) {
    for (int bit = 30; bit >= 0; --bit) {
      const uint32_t try_k = k_bits | (1u << bit), try_p = p_bits | (1u << bit);
      float cnt = 0.0f, mass = 0.0f;
      for (int i = tid; i < vocab; i += blockDim.x) {
        const float p = prob(i);
        const uint32_t b = __float_as_uint(p);
        cnt += b >= try_k ? 1.0f : 0.0f;
        mass += b >= try_p ? p : 0.0f;
      }
      if (use_k) cnt = block_sum(cnt, scratch);
      if (use_p) mass = block_sum(mass, scratch);
      if (use_k && cnt >= static_cast<float>(r.top_k)) k_bits = try_k;
      if (use_p && mass >= r.top_p) p_bits = try_p;
    }
  }
  // Top-k ties: keep p > v_k, plus the lowest-id (k - count(p > v_k)) of those equal to v_k.
  int k_tie_end = vocab;  // ids < k_tie_end with p == v_k are kept
  if (use_k) {
    float greater = 0.0f;
    for (int i = tid; i < vocab; i += blockDim.x) greater += __float_as_uint(prob(i)) > k_bits ? 1.0f : 0.0f;
    greater = block_sum(greater, scratch);
    const float need = static_cast<float>(r.top_k) - greater;  // >= 1 by construction
    // Smallest bound B with count(p == v_k, i < B) >= need, by binary search on B.
    int lo = 0, hi = vocab;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      float c = 0.0f;
      for (int i = tid; i < mid; i += blockDim.x) c += __float_as_uint(prob(i)) == k_bits ? 1.0f : 0.0f;
      c = block_sum(c, scratch);
      if (c >= need) hi = mid;
      else lo = mid + 1;
    }
    k_tie_end = lo;
  }
  const float min_p_threshold = r.min_p > 0.0f ? r.min_p * inv_sum : 0.0f;  // max(p) = exp(0) * inv_sum

  float best = -INFINITY;
  int bi = -1;
  for (int i = tid; i < vocab; i += blockDim.x) {
    const float p = prob(i);
    const uint32_t b = __float_as_uint(p);
    bool keep = true;
    if (use_k) keep = b > k_bits || (b == k_bits && i < k_tie_end);
    if (use_p) keep = keep && b >= p_bits;
    if (r.min_p > 0.0f) keep = keep && p >= min_p_threshold;
    if (!keep) continue;
    const float e = -logf(uniform_from_hash(r.seed, r.step, i));
    const float score = p / e;
    if (isnan(score)) continue;
    if (bi < 0 || score > best) {
      best = score;
      bi = i;
    }
  }
  block_argmax(best, bi, sv, si);  // every thread gets the block's result
  if (bi < 0) bi = row_argmax(lg, vocab, sv, si);  // nothing kept (e.g. top_p <= 0): the reference's fallback
  if (tid == 0) out_ids[row] = bi < 0 ? 0 : bi;
}

__global__ void uniform_kernel(uint64_t seed, uint64_t step, int n, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = uniform_from_hash(seed, step, i);
}

}  // namespace

void launch_sample(const float* logits, int m, int vocab, const SamplingRowDevice* rows, int32_t* out_ids,
                   cudaStream_t stream) {
  if (m <= 0) return;
  sample_kernel<<<m, kSampleThreads, 0, stream>>>(logits, vocab, rows, out_ids);
}

void launch_uniform_from_hash(uint64_t seed, uint64_t step, int n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  uniform_kernel<<<(n + 255) / 256, 256, 0, stream>>>(seed, step, n, out);
}

namespace {
__global__ void scatter_ids_kernel(const int32_t* src, const int32_t* src_index, const int32_t* dst_index,
                                   int32_t* dst, int m) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < m) dst[dst_index[i]] = src[src_index[i]];
}
}  // namespace

void launch_scatter_ids(const int32_t* src, const int32_t* src_index, const int32_t* dst_index, int32_t* dst, int m,
                        cudaStream_t stream) {
  scatter_ids_kernel<<<(m + 127) / 128, 128, 0, stream>>>(src, src_index, dst_index, dst, m);
}

}  // namespace tandem::cuda
