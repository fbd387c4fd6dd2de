// ServerMetrics: the serving metrics behind GET /metrics, with vLLM's names and semantics under the
// `tandem:` prefix (vllm:num_requests_running -> tandem:num_requests_running, ...). Request-level
// histograms and counters are observed by the server as requests progress; engine gauges and the KV
// connector's transfer statistics are read at scrape time. One instance per server (no globals).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "engine/kv_connector.h"
#include "engine/request_output.h"
#include "server/prometheus.h"

namespace tandem {

struct FinishedRequestStats {
  FinishReason finish_reason = FinishReason::kStop;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double e2e_s = 0.0;
  double queue_s = 0.0;
  bool had_first_token = false;
};

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string model_name);

  void observe_time_to_first_token(double seconds) { ttft_.observe(seconds); }
  void observe_inter_token_latency(double seconds) { itl_.observe(seconds); }
  void observe_finished(const FinishedRequestStats& stats);
  void count_http_request() { http_requests_.fetch_add(1, std::memory_order_relaxed); }

  // Prometheus text for the current state. `connector` is set when the engine is disaggregated.
  std::string render(const EngineMetrics& engine, const std::optional<KvConnectorMetrics>& connector,
                     int64_t http_connections_open);

 private:
  std::string labels_;  // model_name="..."
  PrometheusHistogram ttft_;
  PrometheusHistogram itl_;
  PrometheusHistogram e2e_;
  PrometheusHistogram queue_;
  PrometheusHistogram transfer_;  // KV transfer durations (connector)
  std::atomic<uint64_t> prompt_tokens_{0};
  std::atomic<uint64_t> generation_tokens_{0};
  std::atomic<uint64_t> http_requests_{0};
  std::mutex mu_;
  std::map<std::string, uint64_t> success_;  // finished_reason -> count
};

}  // namespace tandem
