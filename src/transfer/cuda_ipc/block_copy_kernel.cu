// Batched device-to-device copy kernel (see block_copy_kernel.h). Regions travel as kernel parameters
// (up to kMaxPerLaunch per launch; CUDA 12.1+ allows 32 KB of parameters), so concurrent transfers on
// one stream share no descriptor buffer. blockIdx.y picks the region, blockIdx.x strides over its
// 16-byte words; a region whose addresses or length are not 16-byte aligned is copied byte by byte.
#include "transfer/cuda_ipc/block_copy_kernel.h"

#include <algorithm>

namespace tandem {
namespace {

constexpr int kMaxPerLaunch = 1024;
constexpr int kThreads = 512;

struct CopyBatch {
  DeviceCopy c[kMaxPerLaunch];
};

__global__ void __launch_bounds__(kThreads) block_copy_kernel(const __grid_constant__ CopyBatch batch) {
  const DeviceCopy& c = batch.c[blockIdx.y];
  const bool aligned = ((reinterpret_cast<uintptr_t>(c.src) | reinterpret_cast<uintptr_t>(c.dst) | c.len) & 15u) == 0;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint64_t start = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (aligned) {
    const uint4* src = static_cast<const uint4*>(c.src);
    uint4* dst = static_cast<uint4*>(c.dst);
    const uint64_t n = c.len / 16;
    for (uint64_t i = start; i < n; i += stride) dst[i] = src[i];
  } else {
    const unsigned char* src = static_cast<const unsigned char*>(c.src);
    unsigned char* dst = static_cast<unsigned char*>(c.dst);
    for (uint64_t i = start; i < c.len; i += stride) dst[i] = src[i];
  }
}

}  // namespace

cudaError_t launch_block_copies(const DeviceCopy* copies, size_t count, cudaStream_t stream) {
  for (size_t begin = 0; begin < count; begin += kMaxPerLaunch) {
    const size_t n = std::min<size_t>(kMaxPerLaunch, count - begin);
    CopyBatch batch;
    uint64_t max_len = 0;
    for (size_t i = 0; i < n; ++i) {
      batch.c[i] = copies[begin + i];
      max_len = std::max(max_len, batch.c[i].len);
    }
    // Enough blocks along x that the largest region gets ~8 words per thread; at most 4096.
    const uint64_t words = (max_len + 15) / 16;
    const unsigned gx = static_cast<unsigned>(std::clamp<uint64_t>((words + kThreads * 8 - 1) / (kThreads * 8), 1, 4096));
    block_copy_kernel<<<dim3(gx, static_cast<unsigned>(n)), kThreads, 0, stream>>>(batch);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace tandem
