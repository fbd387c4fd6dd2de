// The CUDA backend's factory, callable from plain C++ (no CUDA headers here).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace tandem {

Result<std::unique_ptr<Backend>> make_cuda_backend(int device_id);
int cuda_device_count();  // 0 when no driver or device

}  // namespace tandem
