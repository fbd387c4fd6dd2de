// CudaStager: a pinned host buffer and a CUDA stream of its own, used by the tcp agent to move device
// memory through the host (device -> pinned -> socket on the serving side, socket -> pinned -> device
// on the reading side). Without TANDEM_HAVE_CUDA, create() fails with kUnimplemented, so agents can
// still be built and reject device regions with a clear error.
#pragma once

#include <cstddef>
#include <memory>

#include "common/status.h"

namespace tandem {

class CudaStager {
 public:
  static Result<std::unique_ptr<CudaStager>> create(size_t bytes, int device_id);
  ~CudaStager();
  CudaStager(const CudaStager&) = delete;
  CudaStager& operator=(const CudaStager&) = delete;

  void* buffer() const { return buffer_; }
  size_t size() const { return size_; }
  int device_id() const { return device_id_; }
  // Synchronous copies of n <= size() bytes between the pinned buffer and device memory.
  Status device_to_host(const void* device_src, size_t n);
  Status host_to_device(void* device_dst, size_t n);

 private:
  CudaStager() = default;
  void* buffer_ = nullptr;
  size_t size_ = 0;
  int device_id_ = 0;
  void* stream_ = nullptr;  // cudaStream_t
};

}  // namespace tandem
