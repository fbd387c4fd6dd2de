// Small-M GEMV kernels: see gemv_kernels.h. Each warp computes ROWS output columns (rows of w) for all
// M rows of x: lanes take 8 consecutive k (one 16-byte load per weight row), and the weights stream
// through two register buffers of U such steps (the next batch is loaded before the current one is
// used); then the warp reduces its M x ROWS sums with shuffles. x (at most M * K * 2 bytes) is re-read by
// every warp through L1/L2; the weights bypass L1.
#include "backend/cuda/cuda_device_utils.cuh"
#include "backend/cuda/gemv_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kGemvThreads = 128;
constexpr int kGemvWarps = kGemvThreads / 32;

__device__ __forceinline__ uint4 load_streaming(const bf16* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ float load_out(const float* p) { return *p; }
__device__ __forceinline__ float load_out(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_out(bf16* p, float v) { *p = __float2bfloat16(v); }

template <int M, int ROWS, int U, bool ACCUMULATE, typename OutT>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                            OutT* __restrict__ out, int n, int k) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kGemvWarps + warp) * ROWS;
  if (row0 >= n) return;
  const bf16* wrow[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) wrow[r] = w + static_cast<int64_t>(min(row0 + r, n - 1)) * k;

  float acc[M][ROWS];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[m][r] = 0.0f;

  // The weights stream through two register buffers: the loads of the next U steps are issued before the
  // current ones are consumed, so each warp always has a batch in flight.
  constexpr int kStep = 32 * 8;  // k covered by one warp-wide 16-byte load
  constexpr int kBatch = kStep * U;
  uint4 cur[U][ROWS], next[U][ROWS];
  auto load_weights = [&](uint4 (&wr)[U][ROWS], int base) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = base + u * kStep;
#pragma unroll
      for (int r = 0; r < ROWS; ++r) wr[u][r] = kk < k ? load_streaming(wrow[r] + kk) : make_uint4(0, 0, 0, 0);
    }
  };
  load_weights(cur, lane * 8);
  for (int base = lane * 8; base < k; base += kBatch) {
    if (base + kBatch < k) load_weights(next, base + kBatch);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = base + u * kStep;
      if (kk >= k) break;
      float wf[ROWS][8];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) unpack_bf16x8(cur[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[8];
        unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(x + static_cast<int64_t>(m) * k + kk)), xf);
#pragma unroll
        for (int r = 0; r < ROWS; ++r)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[m][r] = fmaf(xf[e], wf[r][e], acc[m][r]);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < ROWS; ++r) cur[u][r] = next[u][r];
  }

#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      float v = acc[m][r];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      // Lane (m * ROWS + r) % 32 writes this sum, spreading the stores over the warp.
      if (lane == (m * ROWS + r) % 32 && row0 + r < n) {
        OutT* o = out + static_cast<int64_t>(m) * n + row0 + r;
        store_out(o, ACCUMULATE ? load_out(o) + v : v);
      }
    }
}

template <int M, bool ACCUMULATE, typename OutT>
void launch_m(const bf16* x, const bf16* w, OutT* out, int n, int k, cudaStream_t stream) {
  // Few rows of x (decode's M <= 2, the path in use): one weight row per warp, two batches of two 16-byte
  // loads in flight. Measured on the H100 (PERF_NOTES.md) against the previous kernel (two rows per warp,
  // one batch of four loads: the next batch issued only after the current one was used), two rows per
  // warp double-buffered, and four loads per batch. More rows of x: four weight rows per warp so each x
  // load serves more weights (x traffic per weight byte = M / ROWS).
  constexpr int ROWS = M <= 2 ? 1 : 4;
  constexpr int U = M <= 2 ? 2 : 1;
  const int warps = (n + ROWS - 1) / ROWS;
  const int blocks = (warps + kGemvWarps - 1) / kGemvWarps;
  gemv_kernel<M, ROWS, U, ACCUMULATE, OutT><<<blocks, kGemvThreads, 0, stream>>>(x, w, out, n, k);
}

template <bool ACCUMULATE, typename OutT>
void launch_typed(const bf16* x, const bf16* w, OutT* out, int m, int n, int k, cudaStream_t stream) {
  switch (m) {
    case 1: return launch_m<1, ACCUMULATE>(x, w, out, n, k, stream);
    case 2: return launch_m<2, ACCUMULATE>(x, w, out, n, k, stream);
    case 3: return launch_m<3, ACCUMULATE>(x, w, out, n, k, stream);
    case 4: return launch_m<4, ACCUMULATE>(x, w, out, n, k, stream);
    case 5: return launch_m<5, ACCUMULATE>(x, w, out, n, k, stream);
    case 6: return launch_m<6, ACCUMULATE>(x, w, out, n, k, stream);
    case 7: return launch_m<7, ACCUMULATE>(x, w, out, n, k, stream);
    default: return launch_m<8, ACCUMULATE>(x, w, out, n, k, stream);
  }
}

}  // namespace

bool gemv_supported(const void* x, const void* w, int64_t m, int64_t k) {
  return m >= 1 && m <= kGemvMaxM && k > 0 && k % 8 == 0 && k <= (int64_t{1} << 30) &&
         (reinterpret_cast<uintptr_t>(x) & 15u) == 0 && (reinterpret_cast<uintptr_t>(w) & 15u) == 0;
}

void launch_gemv(const void* x, const void* w, void* out, bool out_f32, bool accumulate, int m, int n, int k,
                 cudaStream_t stream) {
  if (m <= 0 || n <= 0) return;
  const bf16* xb = static_cast<const bf16*>(x);
  const bf16* wb = static_cast<const bf16*>(w);
  if (out_f32) {
    float* o = static_cast<float*>(out);
    accumulate ? launch_typed<true>(xb, wb, o, m, n, k, stream) : launch_typed<false>(xb, wb, o, m, n, k, stream);
  } else {
    bf16* o = static_cast<bf16*>(out);
    accumulate ? launch_typed<true>(xb, wb, o, m, n, k, stream) : launch_typed<false>(xb, wb, o, m, n, k, stream);
  }
}

}  // namespace tandem::cuda
