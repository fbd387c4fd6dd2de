// CpuBackend: the plain fp32 reference implementation of every Backend op, multithreaded over rows.
// It is the oracle the CUDA ops are tested against, and what CI and the no-GPU demo run.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace tandem {

// num_threads <= 0: hardware concurrency.
Result<std::unique_ptr<Backend>> make_cpu_backend(int num_threads);

}  // namespace tandem
