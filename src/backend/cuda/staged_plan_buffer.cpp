// StagedPlanBuffer (see staged_plan_buffer.h).
#include "backend/cuda/staged_plan_buffer.h"

#include "backend/cuda/cuda_check.h"

namespace tandem::cuda {

StagedPlanBuffer::~StagedPlanBuffer() {
  if (upload_done_) cudaEventSynchronize(upload_done_);
  for (void* p : old_dev_) cudaFree(p);
  for (void* p : old_host_) cudaFreeHost(p);
  if (dev_) cudaFree(dev_);
  if (host_) cudaFreeHost(host_);
  if (upload_done_) cudaEventDestroy(upload_done_);
}

Status StagedPlanBuffer::init(const char* what) {
  what_ = what;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&upload_done_, cudaEventDisableTiming));
  return Status::Ok();
}

Status StagedPlanBuffer::reallocate(int64_t elems) {
  if (!upload_done_) return FailedPreconditionError("{} buffer used before init()", what_);
  if (elems <= 0) return InvalidArgumentError("{} buffer of {} elements", what_, elems);
  void* d = nullptr;
  void* h = nullptr;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&d, sizeof(int32_t) * elems));
  if (cudaError_t err = cudaMallocHost(&h, sizeof(int32_t) * elems); err != cudaSuccess) {
    cudaFree(d);
    return InternalError("cudaMallocHost of the {} staging ({} bytes): {}", what_, sizeof(int32_t) * elems,
                         cudaGetErrorString(err));
  }
  TANDEM_RETURN_IF_ERROR(begin_write());
  if (dev_) old_dev_.push_back(dev_);
  if (host_) old_host_.push_back(host_);
  dev_ = static_cast<int32_t*>(d);
  host_ = static_cast<int32_t*>(h);
  return Status::Ok();
}

Status StagedPlanBuffer::begin_write() {
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(upload_done_));
  return Status::Ok();
}

Status StagedPlanBuffer::upload(int64_t offset, int64_t elems, cudaStream_t stream) {
  if (elems <= 0) return Status::Ok();
  TANDEM_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dev_ + offset, host_ + offset, sizeof(int32_t) * elems, cudaMemcpyHostToDevice, stream));
  return Status::Ok();
}

Status StagedPlanBuffer::end_upload(cudaStream_t stream) {
  TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(upload_done_, stream));
  return Status::Ok();
}

}  // namespace tandem::cuda
