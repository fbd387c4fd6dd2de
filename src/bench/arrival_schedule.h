// Request arrival times for `tandem bench serve`, as vLLM's get_request() computes them: with
// --request-rate inf every request arrives at t = 0; otherwise the gaps are Gamma(shape = burstiness,
// scale = 1 / (rate * burstiness)) (burstiness 1 = Poisson process; burstiness inf = constant 1/rate
// gaps), accumulated from the first request (whose own gap is also drawn), and then rescaled so that
// the last arrival lands exactly at num_requests / rate (vLLM does this to make throughput comparable
// across seeds).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace tandem::bench {

// Offsets in seconds from the benchmark start, one per request, non-decreasing.
Result<std::vector<double>> make_arrival_schedule(size_t num_requests, double request_rate, double burstiness,
                                                  uint64_t seed);

}  // namespace tandem::bench
