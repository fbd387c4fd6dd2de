// cuBLASLt GEMM with per-shape cached plans (see cublaslt_gemm.h).
//
// Row-major out[M,N] = x[M,K] w[N,K]^T is, in cuBLAS's column-major terms, C(N x M) = op(A) B with
// A = w seen as column-major K x N (ld K) transposed, B = x seen as column-major K x M (ld K), C ld N.
#include "backend/cuda/cublaslt_gemm.h"

#include "backend/cuda/cuda_check.h"

namespace tandem::cuda {

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, p] : plans_) {
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Status CublasLtGemm::init(size_t workspace_bytes) {
  if (cublasLtCreate(&handle_) != CUBLAS_STATUS_SUCCESS) return InternalError("cublasLtCreate failed");
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&workspace_, workspace_bytes));
  workspace_bytes_ = workspace_bytes;
  return Status::Ok();
}

CublasLtGemm::Plan& CublasLtGemm::plan_for(int64_t m, int64_t n, int64_t k, cudaDataType_t out_type) {
  auto key = std::make_tuple(m, n, k, static_cast<int>(out_type));
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  TANDEM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  TANDEM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  TANDEM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  TANDEM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, k, n, k));
  TANDEM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, k, m, k));
  TANDEM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_type, n, m, n));

  cublasLtMatmulPreference_t pref = nullptr;
  TANDEM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  TANDEM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &workspace_bytes_, sizeof(workspace_bytes_)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
    p.algo = result.algo;
    p.has_algo = true;
  }
  return plans_.emplace(key, p).first->second;
}

void CublasLtGemm::run(const void* x, const void* w, void* out, int64_t m, int64_t n, int64_t k,
                       cudaDataType_t out_type, bool accumulate, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  Plan& p = plan_for(m, n, k, out_type);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  TANDEM_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                                     p.has_algo ? &p.algo : nullptr, workspace_, workspace_bytes_, stream));
}

}  // namespace tandem::cuda
