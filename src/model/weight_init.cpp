// Deterministic weight generation (see weight_init.h).
#include "model/weight_init.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "common/check.h"

namespace tandem {
namespace {

inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t weight_stream_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void fill_random_weights(uint64_t seed, uint64_t stream_id, float mean, float stddev, DType dtype, void* dst,
                         int64_t begin, int64_t count) {
  TANDEM_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16, "random weights in {}",
               dtype_name(dtype));
  const uint64_t key = mix64(seed ^ mix64(stream_id));
  constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16: unit variance for Irwin-Hall(4) over [0, 4)
  for (int64_t j = 0; j < count; ++j) {
    uint64_t h = mix64(key + static_cast<uint64_t>(begin + j));
    float sum = static_cast<float>(h & 0xffff) + static_cast<float>((h >> 16) & 0xffff) +
                static_cast<float>((h >> 32) & 0xffff) + static_cast<float>(h >> 48);
    float v = mean + stddev * ((sum - 2.0f * 65535.0f) * kScale);
    switch (dtype) {
      case DType::kF32: static_cast<float*>(dst)[j] = v; break;
      case DType::kBF16: static_cast<uint16_t*>(dst)[j] = f32_to_bf16(v); break;
      default: static_cast<uint16_t*>(dst)[j] = f32_to_f16(v); break;
    }
  }
}

void parallel_chunks(int64_t n, int64_t min_chunk, int num_threads, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  min_chunk = std::max<int64_t>(1, min_chunk);
  int64_t chunks = std::min<int64_t>(num_threads, (n + min_chunk - 1) / min_chunk);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  std::vector<std::thread> threads;
  for (int64_t c = 1; c < chunks; ++c) {
    int64_t b = c * per, e = std::min(n, b + per);
    if (b < e) threads.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, per));
  for (auto& t : threads) t.join();
}

}  // namespace tandem
