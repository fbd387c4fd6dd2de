// ProxyMetrics: counters, histograms and their Prometheus text (see proxy_metrics.h).
#include "proxy/proxy_metrics.h"

#include <fmt/format.h>

#include <cmath>

namespace tandem::proxy {

void LatencyHistogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // also catches NaN
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<int64_t>(std::llround(seconds * 1e6)), std::memory_order_relaxed);
}

void LatencyHistogram::render(std::string& out, std::string_view name, std::string_view help) const {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  int64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cumulative);
  }
  cumulative += buckets_[kBounds.size()].load(std::memory_order_relaxed);
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  fmt::format_to(std::back_inserter(out), "{}_sum {}\n{}_count {}\n", name,
                 static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6, name,
                 count_.load(std::memory_order_relaxed));
}

namespace {

void counter(std::string& out, std::string_view name, std::string_view help, const std::atomic<int64_t>& v) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name,
                 v.load(std::memory_order_relaxed));
}

}  // namespace

std::string ProxyMetrics::render(const std::vector<InstanceSnapshot>& instances) const {
  std::string out;
  out.reserve(8192);
  fmt::format_to(std::back_inserter(out),
                 "# HELP tandem_proxy_requests_total Client requests received, by endpoint.\n"
                 "# TYPE tandem_proxy_requests_total counter\n"
                 "tandem_proxy_requests_total{{endpoint=\"completions\"}} {}\n"
                 "tandem_proxy_requests_total{{endpoint=\"chat_completions\"}} {}\n",
                 requests_completions.load(), requests_chat.load());
  counter(out, "tandem_proxy_streaming_requests_total", "Client requests that asked for a stream.",
          requests_streaming);
  counter(out, "tandem_proxy_requests_succeeded_total", "Client requests answered in full.", requests_succeeded);
  fmt::format_to(std::back_inserter(out),
                 "# HELP tandem_proxy_errors_total Client requests that ended in an error, by kind.\n"
                 "# TYPE tandem_proxy_errors_total counter\n"
                 "tandem_proxy_errors_total{{kind=\"client\"}} {}\n"
                 "tandem_proxy_errors_total{{kind=\"upstream\"}} {}\n"
                 "tandem_proxy_errors_total{{kind=\"midstream\"}} {}\n",
                 errors_client.load(), errors_upstream.load(), errors_midstream.load());
  counter(out, "tandem_proxy_client_disconnects_total", "Clients that went away before their answer was complete.",
          client_disconnects);
  fmt::format_to(std::back_inserter(out),
                 "# HELP tandem_proxy_retries_total Request legs retried on another instance, by phase.\n"
                 "# TYPE tandem_proxy_retries_total counter\n"
                 "tandem_proxy_retries_total{{phase=\"prefill\"}} {}\n"
                 "tandem_proxy_retries_total{{phase=\"decode\"}} {}\n",
                 prefill_retries.load(), decode_retries.load());
  fmt::format_to(std::back_inserter(out),
                 "# HELP tandem_proxy_leg_failures_total Failed request legs (connection error, 5xx, timeout), by phase.\n"
                 "# TYPE tandem_proxy_leg_failures_total counter\n"
                 "tandem_proxy_leg_failures_total{{phase=\"prefill\"}} {}\n"
                 "tandem_proxy_leg_failures_total{{phase=\"decode\"}} {}\n",
                 prefill_failures.load(), decode_failures.load());
  counter(out, "tandem_proxy_prefill_fallbacks_total",
          "Requests whose decode instance prefilled itself after the prefill leg failed.", prefill_fallbacks);
  counter(out, "tandem_proxy_finished_at_prefill_total", "Requests ended by their first token (no decode leg).",
          finished_at_prefill);
  counter(out, "tandem_proxy_health_checks_failed_total", "Failed instance health checks.", health_checks_failed);
  queue_seconds.render(out, "tandem_proxy_queue_seconds",
                       "Client request received to its first upstream request sent (time inside the proxy).");
  first_byte_seconds.render(out, "tandem_proxy_first_byte_seconds",
                            "Client request received to the first response bytes handed to the client connection.");
  prefill_seconds.render(out, "tandem_proxy_prefill_seconds", "Prefill leg: request sent to its answer received.");
  handoff_seconds.render(out, "tandem_proxy_handoff_seconds",
                         "Prefill answer received to the first byte of the decode leg.");
  decode_seconds.render(out, "tandem_proxy_decode_seconds", "First decode byte to the decode leg's end.");
  request_seconds.render(out, "tandem_proxy_request_seconds", "Whole client request, received to answered.");

  out += "# HELP tandem_proxy_instance_healthy 1 when the instance passes its health checks.\n"
         "# TYPE tandem_proxy_instance_healthy gauge\n";
  for (const auto& i : instances) {
    fmt::format_to(std::back_inserter(out), "tandem_proxy_instance_healthy{{role=\"{}\",url=\"{}\"}} {}\n",
                   instance_role_name(i.role), i.url, i.healthy ? 1 : 0);
  }
  out += "# HELP tandem_proxy_instance_active_requests Requests in flight on the instance.\n"
         "# TYPE tandem_proxy_instance_active_requests gauge\n";
  for (const auto& i : instances) {
    fmt::format_to(std::back_inserter(out), "tandem_proxy_instance_active_requests{{role=\"{}\",url=\"{}\"}} {}\n",
                   instance_role_name(i.role), i.url, i.active_requests);
  }
  out += "# HELP tandem_proxy_instance_outstanding_prompt_tokens Estimated prompt tokens in flight on the instance.\n"
         "# TYPE tandem_proxy_instance_outstanding_prompt_tokens gauge\n";
  for (const auto& i : instances) {
    fmt::format_to(std::back_inserter(out),
                   "tandem_proxy_instance_outstanding_prompt_tokens{{role=\"{}\",url=\"{}\"}} {}\n",
                   instance_role_name(i.role), i.url, i.outstanding_prompt_tokens);
  }
  out += "# HELP tandem_proxy_instance_requests_total Request legs sent to the instance.\n"
         "# TYPE tandem_proxy_instance_requests_total counter\n";
  for (const auto& i : instances) {
    fmt::format_to(std::back_inserter(out), "tandem_proxy_instance_requests_total{{role=\"{}\",url=\"{}\"}} {}\n",
                   instance_role_name(i.role), i.url, i.total_requests);
  }
  return out;
}

}  // namespace tandem::proxy
