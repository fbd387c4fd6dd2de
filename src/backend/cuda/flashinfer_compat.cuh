// Compatibility shims so that the pinned FlashInfer headers build with the CUDA toolkit's own CCCL.
// FlashInfer's fastdiv.cuh wraps cuda::fast_mod_div<uint32_t>, which CCCL gained after 3.0 (CUDA 13.0
// ships 3.0); for older CCCL this provides the one operation it uses, n / divisor, by plain division
// (a few more cycles per divide in index arithmetic, same results). Include before any FlashInfer header.
#pragma once

#include <cuda/std/version>

#include <cstdint>

#if CCCL_VERSION < 3001000
namespace cuda {
template <typename T>
struct fast_mod_div {
  __host__ __device__ fast_mod_div(T d) : divisor(d) {}
  T divisor;
};
template <typename T>
__host__ __device__ __forceinline__ T operator/(T n, const fast_mod_div<T>& d) {
  return n / d.divisor;
}
}  // namespace cuda
#endif
