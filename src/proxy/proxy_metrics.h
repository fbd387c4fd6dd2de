// ProxyMetrics: the proxy's Prometheus metrics (requests, errors, retries, fallbacks, per-phase latency
// histograms) and their text exposition, together with the per-instance state from the registry.
// Counters are atomics: any I/O thread records without a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy/instance_registry.h"

namespace tandem::proxy {

// A fixed-bucket latency histogram (seconds), lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 17> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0, 300.0};
  void observe(double seconds);
  // Appends "# HELP/# TYPE" and the _bucket/_sum/_count lines.
  void render(std::string& out, std::string_view name, std::string_view help) const;
  int64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const { return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) * 1e-6; }

 private:
  std::array<std::atomic<int64_t>, kBounds.size() + 1> buckets_{};  // last: +Inf
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_micros_{0};
};

class ProxyMetrics {
 public:
  // Requests by route kind.
  std::atomic<int64_t> requests_completions{0};
  std::atomic<int64_t> requests_chat{0};
  std::atomic<int64_t> requests_streaming{0};
  std::atomic<int64_t> requests_succeeded{0};
  // Failures seen by clients (4xx relayed from instances counted apart).
  std::atomic<int64_t> errors_client{0};    // 4xx relayed or produced by the proxy
  std::atomic<int64_t> errors_upstream{0};  // a request failed because of an instance (5xx, unavailable)
  std::atomic<int64_t> errors_midstream{0};  // the decode leg failed after bytes were relayed
  std::atomic<int64_t> client_disconnects{0};
  // Retries and fallbacks.
  std::atomic<int64_t> prefill_retries{0};
  std::atomic<int64_t> decode_retries{0};
  std::atomic<int64_t> prefill_fallbacks{0};  // the decode instance prefilled itself
  std::atomic<int64_t> finished_at_prefill{0};  // the first token ended the request (no decode leg)
  std::atomic<int64_t> prefill_failures{0};
  std::atomic<int64_t> decode_failures{0};
  std::atomic<int64_t> health_checks_failed{0};

  LatencyHistogram queue_seconds;       // client request in -> its first upstream leg sent
  LatencyHistogram first_byte_seconds;  // client request in -> first response bytes handed to the client
  LatencyHistogram prefill_seconds;  // prefill request sent -> its answer in
  LatencyHistogram handoff_seconds;  // prefill answer in -> first decode byte
  LatencyHistogram decode_seconds;   // first decode byte -> decode leg complete
  LatencyHistogram request_seconds;  // client request in -> response complete

  // The Prometheus text exposition (version 0.0.4), including per-instance gauges.
  std::string render(const std::vector<InstanceSnapshot>& instances) const;
};

}  // namespace tandem::proxy
