// make_arrival_schedule: see the header.
#include "bench/arrival_schedule.h"

#include <cmath>
#include <limits>

#include "bench/bench_rng.h"

namespace tandem::bench {

Result<std::vector<double>> make_arrival_schedule(size_t num_requests, double request_rate, double burstiness,
                                                  uint64_t seed) {
  if (!(burstiness > 0)) {
    return InvalidArgumentError("--burstiness must be positive (got {})", burstiness);
  }
  if (!(request_rate > 0)) {
    return InvalidArgumentError("--request-rate must be positive or inf (got {})", request_rate);
  }
  std::vector<double> t(num_requests, 0.0);
  if (num_requests == 0 || std::isinf(request_rate)) return t;
  BenchRng rng(seed);
  for (size_t i = 0; i < num_requests; ++i) {
    double gap = std::isinf(burstiness) ? 1.0 / request_rate
                                        : rng.gamma(burstiness, 1.0 / (request_rate * burstiness));
    t[i] = gap + (i > 0 ? t[i - 1] : 0.0);
  }
  if (t.back() != 0) {
    double factor = (static_cast<double>(num_requests) / request_rate) / t.back();
    for (double& x : t) x *= factor;
  }
  return t;
}

}  // namespace tandem::bench
