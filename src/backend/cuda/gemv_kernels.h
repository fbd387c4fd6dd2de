// Small-M GEMV for decode: out[m, n] (+)= sum_k x[m, k] * w[n, k] for bf16 x [M, K] (M <= kGemvMaxM) and
// bf16 weights w [N, K] (Hugging Face layout), fp32 accumulation, bf16 or fp32 output. Weights are
// streamed once with 16-byte loads (several per thread in flight), each warp owning a few output
// columns over the whole K; the grid covers N, so every SM streams. Used by CudaBackend::matmul for
// small M, where cuBLASLt's GEMV reaches only 2.0-2.8 TB/s (PERF_NOTES.md).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::cuda {

constexpr int kGemvMaxM = 8;

// True when the shapes and pointers suit launch_gemv (K % 8 == 0, 16-byte aligned x and w, M in
// [1, kGemvMaxM]).
bool gemv_supported(const void* x, const void* w, int64_t m, int64_t k);

// out_f32: out is fp32 [M, N], else bf16 [M, N]. accumulate: out += x @ w^T (each output element is
// read and written by the one lane that owns it).
void launch_gemv(const void* x, const void* w, void* out, bool out_f32, bool accumulate, int m, int n, int k,
                 cudaStream_t stream);

}  // namespace tandem::cuda
