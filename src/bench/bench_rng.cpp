// BenchRng implementation (see the header for why these are hand-written).
#include "bench/bench_rng.h"

#include <cmath>

#include "common/check.h"

namespace tandem::bench {

int64_t BenchRng::integers(int64_t low, int64_t high) {
  TANDEM_CHECK(low < high, "integers({}, {})", low, high);
  uint64_t range = static_cast<uint64_t>(high - low);
  // Lemire's multiply-shift with rejection: unbiased and uses one draw almost always.
  uint64_t x = engine_();
  __uint128_t m = static_cast<__uint128_t>(x) * range;
  uint64_t l = static_cast<uint64_t>(m);
  if (l < range) {
    uint64_t t = (0 - range) % range;
    while (l < t) {
      x = engine_();
      m = static_cast<__uint128_t>(x) * range;
      l = static_cast<uint64_t>(m);
    }
  }
  return low + static_cast<int64_t>(m >> 64);
}

double BenchRng::uniform01() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

double BenchRng::standard_normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = 0;
  while (u1 <= 0) u1 = uniform01();
  double u2 = uniform01();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_normal_ = r * std::sin(2 * M_PI * u2);
  has_spare_normal_ = true;
  return r * std::cos(2 * M_PI * u2);
}

double BenchRng::gamma(double shape, double scale) {
  TANDEM_CHECK(shape > 0 && scale > 0, "gamma({}, {})", shape, scale);
  if (shape < 1.0) {
    // Boost: Gamma(k) = Gamma(k + 1) * U^(1/k).
    double u = 0;
    while (u <= 0) u = uniform01();
    return gamma(shape + 1.0, scale) * std::pow(u, 1.0 / shape);
  }
  // Marsaglia & Tsang (2000).
  double d = shape - 1.0 / 3.0;
  double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = standard_normal();
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = uniform01();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
    if (u > 0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
  }
}

}  // namespace tandem::bench
