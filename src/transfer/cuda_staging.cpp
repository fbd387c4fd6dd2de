// CudaStager (see cuda_staging.h). The CUDA part compiles only with TANDEM_HAVE_CUDA.
#include "transfer/cuda_staging.h"

#ifdef TANDEM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace tandem {

#ifdef TANDEM_HAVE_CUDA

namespace {
Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  return InternalError("{}: {}", what, cudaGetErrorString(e));
}
}  // namespace

Result<std::unique_ptr<CudaStager>> CudaStager::create(size_t bytes, int device_id) {
  std::unique_ptr<CudaStager> s(new CudaStager());
  s->size_ = bytes;
  s->device_id_ = device_id;
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_id), "cudaSetDevice"));
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaHostAlloc(&s->buffer_, bytes, cudaHostAllocDefault), "cudaHostAlloc (staging)"));
  cudaStream_t stream = nullptr;
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  s->stream_ = stream;
  return s;
}

CudaStager::~CudaStager() {
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  if (buffer_ != nullptr) cudaFreeHost(buffer_);
}

Status CudaStager::device_to_host(const void* device_src, size_t n) {
  TANDEM_CHECK_LE(n, size_);
  auto stream = static_cast<cudaStream_t>(stream_);
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_id_), "cudaSetDevice"));
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaMemcpyAsync(buffer_, device_src, n, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H"));
  return cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

Status CudaStager::host_to_device(void* device_dst, size_t n) {
  TANDEM_CHECK_LE(n, size_);
  auto stream = static_cast<cudaStream_t>(stream_);
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_id_), "cudaSetDevice"));
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaMemcpyAsync(device_dst, buffer_, n, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync H2D"));
  return cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

#else

Result<std::unique_ptr<CudaStager>> CudaStager::create(size_t, int) {
  return UnimplementedError("device memory needs a build with CUDA (TANDEM_HAVE_CUDA)");
}
CudaStager::~CudaStager() = default;
Status CudaStager::device_to_host(const void*, size_t) { return UnimplementedError("no CUDA in this build"); }
Status CudaStager::host_to_device(void*, size_t) { return UnimplementedError("no CUDA in this build"); }

#endif

}  // namespace tandem
