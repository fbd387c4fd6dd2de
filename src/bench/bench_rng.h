// BenchRng: the benchmark's seeded random source. vLLM draws from numpy (default_rng = PCG64 for the
// random dataset, the legacy np.random.gamma for arrivals); tandem does not reproduce numpy's streams
// bit for bit. It uses std::mt19937_64 seeded with --seed and its own, library-independent transforms
// (Lemire's unbiased bounded integers, Marsaglia-Tsang gamma with a Box-Muller normal), so one seed
// gives the same dataset and arrival times on every platform and standard library.
#pragma once

#include <cstdint>
#include <random>

namespace tandem::bench {

class BenchRng {
 public:
  explicit BenchRng(uint64_t seed) : engine_(seed) {}

  // Uniform integer in [low, high) (numpy's Generator.integers(low, high)); requires low < high.
  int64_t integers(int64_t low, int64_t high);
  double uniform01();  // [0, 1) with 53 random bits
  double standard_normal();
  // Gamma(shape k > 0, scale theta > 0), mean k * theta.
  double gamma(double shape, double scale);

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0;
};

}  // namespace tandem::bench
