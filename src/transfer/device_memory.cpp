// TransferBuffer (see device_memory.h).
#include "transfer/device_memory.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef TANDEM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace tandem {

Result<TransferBuffer> TransferBuffer::allocate(size_t bytes, MemoryKind kind, int device_id) {
  TransferBuffer b;
  b.size_ = bytes;
  b.kind_ = kind;
  b.device_id_ = device_id;
  if (kind == MemoryKind::kHost) {
    b.data_ = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (b.data_ == nullptr) return ResourceExhaustedError("cannot allocate {} bytes of host memory", bytes);
    return b;
  }
#ifdef TANDEM_HAVE_CUDA
  if (cudaSetDevice(device_id) != cudaSuccess || cudaMalloc(&b.data_, bytes) != cudaSuccess) {
    b.data_ = nullptr;
    return ResourceExhaustedError("cannot allocate {} bytes on CUDA device {}", bytes, device_id);
  }
  return b;
#else
  return UnimplementedError("device memory needs a build with CUDA");
#endif
}

TransferBuffer& TransferBuffer::operator=(TransferBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = o.size_;
    kind_ = o.kind_;
    device_id_ = o.device_id_;
  }
  return *this;
}

TransferBuffer::~TransferBuffer() { reset(); }

void TransferBuffer::reset() {
  if (data_ == nullptr) return;
  if (kind_ == MemoryKind::kHost) {
    std::free(data_);
  } else {
#ifdef TANDEM_HAVE_CUDA
    cudaFree(data_);
#endif
  }
  data_ = nullptr;
}

Status TransferBuffer::fill(uint32_t seed) {
  std::vector<uint32_t> chunk(1 << 20);
  for (size_t off = 0; off < size_; off += chunk.size() * 4) {
    size_t n = std::min(size_ - off, chunk.size() * 4);
    for (size_t i = 0; i < (n + 3) / 4; ++i) chunk[i] = seed * 2654435761u + static_cast<uint32_t>((off / 4) + i);
    if (kind_ == MemoryKind::kHost) {
      std::memcpy(static_cast<char*>(data_) + off, chunk.data(), n);
    } else {
#ifdef TANDEM_HAVE_CUDA
      if (cudaMemcpy(static_cast<char*>(data_) + off, chunk.data(), n, cudaMemcpyHostToDevice) != cudaSuccess) {
        return InternalError("cudaMemcpy (fill) failed");
      }
#endif
    }
  }
  return Status::Ok();
}

Status TransferBuffer::copy_to_host(size_t offset, void* dst, size_t n) const {
  if (offset + n > size_) return OutOfRangeError("copy beyond the buffer");
  if (kind_ == MemoryKind::kHost) {
    std::memcpy(dst, static_cast<const char*>(data_) + offset, n);
    return Status::Ok();
  }
#ifdef TANDEM_HAVE_CUDA
  if (cudaMemcpy(dst, static_cast<const char*>(data_) + offset, n, cudaMemcpyDeviceToHost) != cudaSuccess) {
    return InternalError("cudaMemcpy (read back) failed");
  }
  return Status::Ok();
#else
  return UnimplementedError("no CUDA");
#endif
}

}  // namespace tandem
