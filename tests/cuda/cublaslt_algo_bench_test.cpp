// DISABLED_ benchmark: how far cuBLASLt's first heuristic choice (what CublasLtGemm uses) is from the
// fastest of its top candidates, at the prefill GEMM shapes of Llama-3.1-8B (m = 7500 tokens):
//   test_cuda --gtest_also_run_disabled_tests --gtest_filter='CublasLtAlgoBench.*'
// Prints, per shape, every candidate's median time over back-to-back runs and the heuristic's rank 0.
// Layouts as in backend/cuda/cublaslt_gemm.cpp (row-major out[m, n] = x[m, k] w[n, k]^T, bf16 in and out,
// fp32 compute).
#ifdef TANDEM_HAVE_CUDA
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

struct Shape {
  const char* name;
  int64_t m, n, k;
};

TEST(CublasLtAlgoBench, DISABLED_HeuristicChoiceAgainstItsTopCandidates) {
  TANDEM_SKIP_WITHOUT_CUDA();
  cublasLtHandle_t lt = nullptr;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  const size_t workspace_bytes = 32u << 20;
  void* workspace = nullptr;
  ASSERT_EQ(cudaMalloc(&workspace, workspace_bytes), cudaSuccess);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);

  const Shape shapes[] = {{"qkv", 7500, 6144, 4096},
                          {"o_proj", 7500, 4096, 4096},
                          {"gate_up", 7500, 28672, 4096},
                          {"down_proj", 7500, 4096, 14336}};
  for (const Shape& s : shapes) {
    void *x = nullptr, *w = nullptr, *out = nullptr;
    ASSERT_EQ(cudaMalloc(&x, 2 * s.m * s.k), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&w, 2 * s.n * s.k), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&out, 2 * s.m * s.n), cudaSuccess);
    cudaMemset(x, 0x3c, 2 * s.m * s.k);  // bf16 ~0.0117: finite, non-zero data
    cudaMemset(w, 0x3c, 2 * s.n * s.k);

    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
    cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, s.k, s.n, s.k);
    cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, s.k, s.m, s.k);
    cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, s.n, s.m, s.n);
    cublasLtMatmulPreference_t pref = nullptr;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                         sizeof(workspace_bytes));
    std::vector<cublasLtMatmulHeuristicResult_t> results(16);
    int found = 0;
    ASSERT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, static_cast<int>(results.size()),
                                             results.data(), &found),
              CUBLAS_STATUS_SUCCESS);
    const double tflop = 2.0 * s.m * s.n * s.k / 1e12;
    double best_ms = 1e30, first_ms = 0;
    int best = -1;
    for (int i = 0; i < found; ++i) {
      const float alpha = 1.0f, beta = 0.0f;
      auto run = [&] {
        return cublasLtMatmul(lt, desc, &alpha, w, a, x, b, &beta, out, c, out, c, &results[i].algo, workspace,
                              workspace_bytes, stream);
      };
      if (run() != CUBLAS_STATUS_SUCCESS) {
        std::printf("%-9s algo %2d: not runnable\n", s.name, i);
        continue;
      }
      std::vector<float> t;
      for (int rep = 0; rep < 7; ++rep) {
        cudaEventRecord(e0, stream);
        for (int j = 0; j < 5; ++j) run();
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        t.push_back(ms / 5);
      }
      std::sort(t.begin(), t.end());
      const double ms = t[t.size() / 2];
      if (i == 0) first_ms = ms;
      if (ms < best_ms) best_ms = ms, best = i;
      std::printf("%-9s algo %2d: %8.3f ms  %6.1f TFLOP/s%s\n", s.name, i, ms, tflop / (ms / 1e3),
                  i == 0 ? "  (heuristic's choice)" : "");
    }
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    std::printf("%-9s m=%ld n=%ld k=%ld: heuristic %.3f ms, best candidate %d %.3f ms (%.1f%% faster)\n\n", s.name,
                static_cast<long>(s.m), static_cast<long>(s.n), static_cast<long>(s.k), first_ms, best, best_ms,
                100.0 * (first_ms - best_ms) / first_ms);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(desc);
    cudaFree(x);
    cudaFree(w);
    cudaFree(out);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
  cublasLtDestroy(lt);
}

}  // namespace
}  // namespace tandem
#endif  // TANDEM_HAVE_CUDA
