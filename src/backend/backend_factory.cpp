#include "backend/backend_factory.h"

#include "backend/cpu/cpu_backend.h"
#ifdef TANDEM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace tandem {

Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& options) {
  if (options.device == Device::kCpu) return make_cpu_backend(options.num_threads);
#ifdef TANDEM_HAVE_CUDA
  return make_cuda_backend(options.device_id);
#else
  return UnavailableError("this tandem binary was built without the CUDA backend (TANDEM_CUDA=OFF or no nvcc)");
#endif
}

bool cuda_available() {
#ifdef TANDEM_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

}  // namespace tandem
