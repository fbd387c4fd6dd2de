// CublasLtGemm: out[M, N] (+)= x[M, K] @ w[N, K]^T through cuBLASLt (bf16 inputs, fp32 compute, bf16 or
// fp32 output). Matmul descriptors, layouts and the heuristic's algorithm are cached per shape, and the
// workspace is preallocated, so a call allocates nothing and is safe inside CUDA-graph capture.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

#include "common/status.h"

namespace tandem::cuda {

class CublasLtGemm {
 public:
  CublasLtGemm() = default;
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  Status init(size_t workspace_bytes);
  // x bf16 [m, k], w bf16 [n, k] row-major; out [m, n] in `out_type` (CUDA_R_16BF or CUDA_R_32F).
  // accumulate: out += x @ w^T (beta 1, in place: cuBLASLt allows C == D with one layout).
  void run(const void* x, const void* w, void* out, int64_t m, int64_t n, int64_t k, cudaDataType_t out_type,
           bool accumulate, cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool has_algo = false;
  };
  Plan& plan_for(int64_t m, int64_t n, int64_t k, cudaDataType_t out_type);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t, int>, Plan> plans_;
};

}  // namespace tandem::cuda
