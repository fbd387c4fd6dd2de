// Pool-sized buffers for benchmarks and tests: page-aligned host memory, or cudaMalloc'd device memory
// when the build has CUDA (otherwise device allocation fails with kUnimplemented).
#pragma once

#include <cstddef>

#include "common/status.h"
#include "transfer/transfer_agent.h"

namespace tandem {

class TransferBuffer {
 public:
  static Result<TransferBuffer> allocate(size_t bytes, MemoryKind kind, int device_id = 0);
  TransferBuffer() = default;
  TransferBuffer(TransferBuffer&& o) noexcept { *this = std::move(o); }
  TransferBuffer& operator=(TransferBuffer&& o) noexcept;
  ~TransferBuffer();

  void* data() const { return data_; }
  size_t size() const { return size_; }
  MemoryKind kind() const { return kind_; }
  MemoryRegion region() const { return {reinterpret_cast<uint64_t>(data_), size_, kind_, device_id_}; }
  // Fills with a byte pattern derived from `seed`; copies `n` bytes at `offset` out to host memory.
  Status fill(uint32_t seed);
  Status copy_to_host(size_t offset, void* dst, size_t n) const;

 private:
  void reset();
  void* data_ = nullptr;
  size_t size_ = 0;
  MemoryKind kind_ = MemoryKind::kHost;
  int device_id_ = 0;
};

}  // namespace tandem
