#include "tensor/dtype.h"

#include <cmath>

namespace tandem {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kU8: return "uint8";
  }
  return "?";
}

Result<DType> parse_dtype(std::string_view s) {
  if (s == "float32" || s == "F32" || s == "fp32" || s == "float") return DType::kF32;
  if (s == "float16" || s == "F16" || s == "fp16" || s == "half") return DType::kF16;
  if (s == "bfloat16" || s == "BF16" || s == "bf16") return DType::kBF16;
  if (s == "int32" || s == "I32") return DType::kI32;
  if (s == "int64" || s == "I64") return DType::kI64;
  if (s == "uint8" || s == "U8") return DType::kU8;
  return InvalidArgumentError("unsupported dtype '{}'", s);
}

std::string_view device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

std::optional<Device> parse_device(std::string_view s) {
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda") return Device::kCuda;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (absx >= 0x47800000) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (absx < 0x38800000) {                                              // subnormal or zero
    float a;
    std::memcpy(&a, &absx, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t mant = absx & 0x7fffff;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return static_cast<uint16_t>(sign | h);
}

Status convert_host(const void* src, DType st, void* dst, DType dt, size_t n) {
  auto is_float = [](DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; };
  if (!is_float(st) || !is_float(dt)) {
    return InvalidArgumentError("cannot convert {} to {}", dtype_name(st), dtype_name(dt));
  }
  if (st == dt) {
    std::memcpy(dst, src, n * dtype_size(st));
    return Status::Ok();
  }
  auto load = [&](size_t i) -> float {
    switch (st) {
      case DType::kF32: return static_cast<const float*>(src)[i];
      case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      default: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    }
  };
  for (size_t i = 0; i < n; ++i) {
    float v = load(i);
    switch (dt) {
      case DType::kF32: static_cast<float*>(dst)[i] = v; break;
      case DType::kF16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(v); break;
      default: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
    }
  }
  return Status::Ok();
}

}  // namespace tandem
