// Backend: default implementations of the optional asynchronous pieces (markers, host buffers, sampling
// to the device) for backends whose ops complete before they return.
#include "backend/backend.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace tandem {

namespace {

class PassedMarker final : public DeviceMarker {
 public:
  void record() override {}
  Status wait(std::chrono::milliseconds) override { return Status::Ok(); }
};

}  // namespace

Result<Buffer> Backend::allocate_host(size_t bytes) {
  void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  if (!p) return ResourceExhaustedError("host allocation of {} bytes failed", bytes);
  return Buffer(p, bytes, Device::kCpu, [](void* q) { std::free(q); });
}

Result<std::unique_ptr<DeviceMarker>> Backend::create_marker() {
  return std::unique_ptr<DeviceMarker>(new PassedMarker());
}

void Backend::sample_to_device(const TensorView& logits, std::span<const SamplingRow> rows, TensorView ids) {
  TANDEM_CHECK(ids.dtype == DType::kI32 && ids.numel() >= static_cast<int64_t>(rows.size()),
               "sample_to_device: ids {} for {} rows", ids.shape_string(), rows.size());
  std::vector<int32_t> host(rows.size());
  sample(logits, rows, host);
  if (!host.empty()) copy_to_device(ids.data, host.data(), host.size() * sizeof(int32_t));
}

}  // namespace tandem
