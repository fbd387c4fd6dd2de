// Creates the backend for a device: "cpu" (reference, always built) or "cuda" (when built with CUDA).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace tandem {

struct BackendOptions {
  Device device = Device::kCpu;
  int device_id = 0;    // CUDA device ordinal
  int num_threads = 0;  // CPU threads; 0 = hardware concurrency
};

Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& options);
// True when this binary was built with the CUDA backend and a CUDA device is visible.
bool cuda_available();

}  // namespace tandem
