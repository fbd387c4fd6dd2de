// Error checks for CUDA runtime and cuBLAS calls inside the CUDA backend (host code only).
// TANDEM_CUDA_CHECK aborts (a failing launch or copy in an op is a broken invariant: the ops have no
// error return); TANDEM_CUDA_RETURN_IF_ERROR turns a failure into a Status where one can be returned.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "common/check.h"
#include "common/status.h"

#define TANDEM_CUDA_CHECK(expr)                                                                  \
  do {                                                                                           \
    cudaError_t _tandem_err = (expr);                                                            \
    TANDEM_CHECK(_tandem_err == cudaSuccess, "{}: {}", #expr, cudaGetErrorString(_tandem_err));  \
  } while (0)

#define TANDEM_CUBLAS_CHECK(expr)                                                                    \
  do {                                                                                               \
    cublasStatus_t _tandem_st = (expr);                                                              \
    TANDEM_CHECK(_tandem_st == CUBLAS_STATUS_SUCCESS, "{}: cublas status {}", #expr,                 \
                 static_cast<int>(_tandem_st));                                                      \
  } while (0)

#define TANDEM_CUDA_RETURN_IF_ERROR(expr)                                                        \
  do {                                                                                           \
    cudaError_t _tandem_err = (expr);                                                            \
    if (_tandem_err != cudaSuccess)                                                              \
      return ::tandem::InternalError("{}: {}", #expr, cudaGetErrorString(_tandem_err));          \
  } while (0)
