// ServerMetrics rendering (bucket bounds as vLLM's prometheus logger).
#include "server/server_metrics.h"

#include <fmt/format.h>

#include "engine/request_output.h"

namespace tandem {

namespace {
std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
          2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> itl_buckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> latency_buckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}
std::vector<double> transfer_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
}
}  // namespace

ServerMetrics::ServerMetrics(std::string model_name)
    : labels_(fmt::format("model_name=\"{}\"", prometheus_escape(model_name))),
      ttft_(ttft_buckets()),
      itl_(itl_buckets()),
      e2e_(latency_buckets()),
      queue_(latency_buckets()),
      transfer_(transfer_buckets()) {
  for (const char* r : {"stop", "length", "abort", "error"}) success_[r] = 0;
}

void ServerMetrics::observe_finished(const FinishedRequestStats& s) {
  prompt_tokens_.fetch_add(static_cast<uint64_t>(std::max(0, s.prompt_tokens)), std::memory_order_relaxed);
  generation_tokens_.fetch_add(static_cast<uint64_t>(std::max(0, s.completion_tokens)), std::memory_order_relaxed);
  e2e_.observe(s.e2e_s);
  queue_.observe(s.queue_s);
  std::lock_guard lock(mu_);
  success_[std::string(finish_reason_name(s.finish_reason))]++;
}

std::string ServerMetrics::render(const EngineMetrics& e, const std::optional<KvConnectorMetrics>& connector,
                                  int64_t http_connections_open) {
  PrometheusWriter w;
  const std::string& L = labels_;
  auto gauge = [&](const char* name, const char* help, double v) {
    w.header(name, "gauge", help);
    w.sample(name, L, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    w.header(name, "counter", help);
    w.sample(fmt::format("{}_total", name), L, v);
  };
  gauge("tandem:num_requests_running", "Number of requests in model execution batches.", e.num_running);
  gauge("tandem:num_requests_waiting", "Number of requests waiting to be processed.", e.num_waiting);
  gauge("tandem:num_requests_waiting_for_remote_kv", "Number of requests waiting for remote KV cache.",
        e.num_waiting_for_remote_kv);
  gauge("tandem:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage);
  gauge("tandem:kv_cache_total_blocks", "Number of KV-cache blocks in the pool.", static_cast<double>(e.num_total_blocks));
  gauge("tandem:kv_cache_used_blocks", "KV-cache blocks referenced by requests or pinned by leases.",
        static_cast<double>(e.num_used_blocks));
  gauge("tandem:kv_cache_free_blocks", "KV-cache blocks free or evictable.", static_cast<double>(e.num_free_blocks));
  gauge("tandem:engine_dead", "1 when the engine loop stopped on an internal fault.", e.dead ? 1.0 : 0.0);
  gauge("tandem:http_connections_open", "Open HTTP connections.", static_cast<double>(http_connections_open));
  counter("tandem:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
          static_cast<double>(e.prefix_cache_queries));
  counter("tandem:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
          static_cast<double>(e.prefix_cache_hits));
  counter("tandem:num_preemptions", "Cumulative number of preemptions from the engine.",
          static_cast<double>(e.num_preemptions));
  counter("tandem:prompt_tokens", "Number of prefill tokens processed.", static_cast<double>(prompt_tokens_.load()));
  counter("tandem:generation_tokens", "Number of generation tokens processed.",
          static_cast<double>(generation_tokens_.load()));
  counter("tandem:engine_prompt_tokens_computed", "Prompt tokens computed by the engine (excludes cache hits).",
          static_cast<double>(e.prompt_tokens));
  counter("tandem:engine_steps", "Engine steps executed.", static_cast<double>(e.num_steps));
  counter("tandem:http_requests", "HTTP requests received.", static_cast<double>(http_requests_.load()));
  {
    w.header("tandem:request_success", "counter", "Count of successfully processed requests.");
    std::lock_guard lock(mu_);
    for (const auto& [reason, n] : success_) {
      w.sample("tandem:request_success_total", fmt::format("{},finished_reason=\"{}\"", L, reason),
               static_cast<double>(n));
    }
  }
  auto hist = [&](const char* name, const char* help, const PrometheusHistogram& h) {
    w.header(name, "histogram", help);
    w.histogram(name, L, h.snapshot());
  };
  hist("tandem:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttft_);
  hist("tandem:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itl_);
  hist("tandem:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", e2e_);
  hist("tandem:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", queue_);

  if (connector) {
    for (double s : connector->transfer_seconds) transfer_.observe(s);
    counter("tandem:kv_transfer_bytes", "Bytes of KV cache moved between engines.",
            static_cast<double>(connector->bytes_moved));
    counter("tandem:kv_transfers", "Completed KV transfers.", static_cast<double>(connector->transfers_ok));
    counter("tandem:kv_transfer_failures", "Failed KV transfers.", static_cast<double>(connector->transfers_failed));
    counter("tandem:kv_transfer_recomputes", "Requests prefilled locally after a failed KV transfer.",
            static_cast<double>(connector->recomputes));
    counter("tandem:kv_leases_expired", "Producer block leases that expired before the consumer read them.",
            static_cast<double>(connector->leases_expired));
    gauge("tandem:kv_leases_active", "Producer block leases held now.", static_cast<double>(connector->leases_active));
    hist("tandem:kv_transfer_time_seconds", "Histogram of KV transfer durations in seconds.", transfer_);
  }
  return w.take();
}

}  // namespace tandem
