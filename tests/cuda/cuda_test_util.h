// Helpers for the CUDA op tests: both backends, bf16-rounded random data, device upload/download, and
// the error measures the tests state thresholds in (NMSE = |got - ref|^2 / |ref|^2, and max-abs).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"

namespace tandem::cuda_test {

#define TANDEM_SKIP_WITHOUT_CUDA()                                                              \
  do {                                                                                          \
    if (::tandem::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible: CUDA op tests need a GPU"; \
  } while (0)

struct Backends {
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<Backend> gpu;
};

inline Backends make_backends() {
  Backends b;
  auto cpu = make_cpu_backend(4);
  EXPECT_TRUE(cpu.ok()) << cpu.status().to_string();
  auto gpu = make_cuda_backend(0);
  EXPECT_TRUE(gpu.ok()) << gpu.status().to_string();
  if (cpu.ok()) b.cpu = std::move(cpu).value();
  if (gpu.ok()) b.gpu = std::move(gpu).value();
  return b;
}

// Random values already rounded to bf16, so both backends see identical inputs.
inline std::vector<float> random_bf16(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(dist(rng)));
  return v;
}

// Device memory holding a tensor; view() gives a TensorView of it.
struct DeviceTensor {
  Buffer buffer;
  TensorView view;
};

inline DeviceTensor device_tensor(Backend& be, DType dtype, std::initializer_list<int64_t> shape) {
  TensorView v(nullptr, dtype, be.device(), shape);
  auto buf = be.allocate(v.nbytes());
  TANDEM_CHECK(buf.ok(), "{}", buf.status().to_string());
  DeviceTensor t{std::move(buf).value(), v};
  t.view.data = t.buffer.data();
  return t;
}

inline DeviceTensor upload_bf16(Backend& be, const std::vector<float>& host, std::initializer_list<int64_t> shape) {
  DeviceTensor t = device_tensor(be, DType::kBF16, shape);
  TANDEM_CHECK(static_cast<int64_t>(host.size()) == t.view.numel());
  std::vector<uint16_t> h(host.size());
  for (size_t i = 0; i < host.size(); ++i) h[i] = f32_to_bf16(host[i]);
  be.copy_to_device(t.view.data, h.data(), h.size() * 2);
  return t;
}

template <typename T>
DeviceTensor upload_raw(Backend& be, const std::vector<T>& host, DType dtype, std::initializer_list<int64_t> shape) {
  DeviceTensor t = device_tensor(be, dtype, shape);
  TANDEM_CHECK(t.view.nbytes() == host.size() * sizeof(T));
  be.copy_to_device(t.view.data, host.data(), t.view.nbytes());
  return t;
}

// Fills a device tensor with 0xFF bytes (NaN in bf16 and f32) so unwritten outputs fail the checks.
inline void poison(Backend& be, const TensorView& t) {
  std::vector<uint8_t> ff(t.nbytes(), 0xFF);
  be.copy_to_device(t.data, ff.data(), ff.size());
}

// Device tensor (bf16 or f32) to fp32 host values.
inline std::vector<float> download(Backend& be, const TensorView& t) {
  std::vector<float> out(t.numel());
  if (t.dtype == DType::kF32) {
    be.copy_to_host(out.data(), t.data, t.nbytes());
  } else {
    TANDEM_CHECK(t.dtype == DType::kBF16);
    std::vector<uint16_t> h(t.numel());
    be.copy_to_host(h.data(), t.data, t.nbytes());
    for (size_t i = 0; i < h.size(); ++i) out[i] = bf16_to_f32(h[i]);
  }
  return out;
}

inline TensorView host_view(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return TensorView(v.data(), DType::kF32, Device::kCpu, shape);
}
inline TensorView host_view_i32(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return TensorView(v.data(), DType::kI32, Device::kCpu, shape);
}

struct ErrorStats {
  double nmse = 0;
  double max_abs = 0;
  bool finite = true;
};

inline ErrorStats compare(const std::vector<float>& got, const std::vector<float>& ref) {
  ErrorStats e;
  double num = 0, den = 0;
  EXPECT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    if (!std::isfinite(got[i])) e.finite = false;
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
  }
  e.nmse = den > 0 ? num / den : num;
  return e;
}

#define TANDEM_EXPECT_CLOSE(got, ref, nmse_max, abs_max)                                                        \
  do {                                                                                                          \
    ::tandem::cuda_test::ErrorStats _e = ::tandem::cuda_test::compare((got), (ref));                            \
    EXPECT_TRUE(_e.finite) << "non-finite output";                                                              \
    EXPECT_LE(_e.nmse, (nmse_max)) << "max_abs " << _e.max_abs;                                                 \
    EXPECT_LE(_e.max_abs, (abs_max)) << "nmse " << _e.nmse;                                                     \
  } while (0)

}  // namespace tandem::cuda_test
