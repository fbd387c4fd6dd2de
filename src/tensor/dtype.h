// Element types and devices, and conversions between fp32 and bf16/fp16 on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace tandem {

enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kI64, kU8 };
enum class Device : uint8_t { kCpu, kCuda };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);          // "float32", "bfloat16", ...
Result<DType> parse_dtype(std::string_view s);  // accepts torch/HF names and safetensors codes (F32, BF16...)
std::string_view device_name(Device d);
std::optional<Device> parse_device(std::string_view s);  // "cpu" | "cuda"

// Host conversions (round-to-nearest-even for fp32 -> bf16/fp16).
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts `n` elements of `src` (of type `src_type`) into `dst` (of type `dst_type`) on the host.
// Supported: any of f32/f16/bf16 to any of f32/f16/bf16.
Status convert_host(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

}  // namespace tandem
