// Serving benchmark metrics, exactly as vLLM's `vllm bench serve` computes, prints and saves them
// (vllm/benchmarks/serve.py: calculate_metrics, the printed result block, the --save-result JSON).
// - TTFT, E2EL per successful request; TPOT = (E2EL - TTFT) / (output_tokens - 1) for requests with
//   more than one output token; ITL = every gap between streamed chunks, pooled over requests.
// - output tokens = usage.completion_tokens (else the generated text re-tokenized, see below).
// - mean, median, std (population) and percentiles with numpy's default linear interpolation; an
//   empty list gives 0 (vLLM computes np.mean(x or 0)).
// - goodput counts requests meeting every --goodput SLO (ttft, tpot, e2el in ms; tpot = 0 when <= 1
//   output token).
// - peak output throughput: chunk arrival times (start + ttft + cumulative itl) binned in one-second
//   buckets from the earliest start, maximum bucket count (vLLM counts chunks here, not tokens).
// - peak concurrent requests: sweep over [start, start + latency) intervals, a departure before an
//   arrival at the same instant.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/request_outcome.h"
#include "common/status.h"

namespace tandem::bench {

// numpy.percentile(values, p) with the default 'linear' method; values need not be sorted.
double percentile_linear(std::vector<double> values, double p);

struct MetricStats {  // milliseconds
  double mean = 0;
  double median = 0;
  double std = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value)
};
MetricStats summarize_ms(const std::vector<double>& seconds, const std::vector<double>& percentiles);

// "ttft:50 tpot:20" style pairs (one per element) -> {"ttft": 50, "tpot": 20}.
Result<std::map<std::string, double>> parse_goodput(const std::vector<std::string>& pairs);
// "ttft,tpot,itl" -> names, checked against ttft, tpot, itl, e2el, client_queue_time,
// e2el_including_client_queue.
Result<std::vector<std::string>> parse_percentile_metrics(const std::string& csv);
// "25,50,99.9" -> numbers in [0, 100].
Result<std::vector<double>> parse_metric_percentiles(const std::string& csv);

struct ServeMetrics {
  int completed = 0;
  int failed = 0;
  int64_t total_input = 0;
  int64_t total_output = 0;
  double request_throughput = 0;
  double request_goodput = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  MetricStats ttft, tpot, itl, e2el, client_queue_time, e2el_including_client_queue;
  double max_output_tokens_per_s = 0;
  int max_concurrent_requests = 0;
  std::vector<int> actual_output_lens;  // per request, 0 for failures
};

// count_tokens counts the generated text of successful requests whose server sent no usage (vLLM
// re-tokenizes it); null counts such a request as 1 token.
ServeMetrics compute_serve_metrics(const std::vector<RequestOutcome>& outputs, double duration_s,
                                   const std::vector<double>& percentiles,
                                   const std::map<std::string, double>& goodput_slo_ms,
                                   const std::function<int(const std::string&)>& count_tokens = nullptr);

struct ServeReportOptions {
  std::optional<int> max_concurrency;
  double request_rate = 0;  // inf: not printed
  bool goodput = false;     // --goodput given
  std::vector<std::string> percentile_metrics = {"ttft", "tpot", "itl"};
};

// "Failed requests during benchmark run detected (capping to 10):\nError 0: ...\n" or "" when none.
std::string render_failed_requests(const std::vector<RequestOutcome>& outputs);
// The result block, from "==== Serving Benchmark Result ====" to the closing "=" line, newline-ended.
std::string render_serve_report(const ServeMetrics& m, double duration_s, const ServeReportOptions& options);

// Everything vLLM's --save-result writes, in its key order. `header` holds the leading keys (date,
// endpoint_type, backend, label, model_id, tokenizer_id, num_prompts, metadata, request_rate,
// burstiness, max_concurrency); per-request arrays are included when `detailed`.
nlohmann::ordered_json serve_result_json(nlohmann::ordered_json header, const ServeMetrics& m, double duration_s,
                                         const std::vector<RequestOutcome>& outputs,
                                         const ServeReportOptions& options, bool detailed);

// Python's str(float): "inf", "10.0", "2.5", "0.1".
std::string python_float_str(double v);

}  // namespace tandem::bench
