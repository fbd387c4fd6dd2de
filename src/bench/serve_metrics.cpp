// Serving benchmark metric math, the printed block and the result JSON (see serve_metrics.h). Format
// strings mirror vLLM's Python ones: "{:<40} {:<10}" rows, "{:<10.2f}" numbers, "{:=^50}" title,
// "{:-^50}" section headers; fmt's alignment and padding rules equal Python's for these specs.
#include "bench/serve_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace tandem::bench {

double percentile_linear(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = rank - static_cast<double>(lo);
  // numpy's _lerp: a + (b - a) * t, switching to b - (b - a) * (1 - t) for t >= 0.5.
  double a = v[lo], b = v[hi], d = b - a;
  return frac >= 0.5 ? b - d * (1.0 - frac) : a + d * frac;
}

MetricStats summarize_ms(const std::vector<double>& seconds, const std::vector<double>& percentiles) {
  MetricStats s;
  if (!seconds.empty()) {
    double n = static_cast<double>(seconds.size());
    double mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / n;
    double sq = 0;
    for (double x : seconds) sq += (x - mean) * (x - mean);
    s.mean = mean * 1000;
    s.std = std::sqrt(sq / n) * 1000;
    s.median = percentile_linear(seconds, 50) * 1000;
  }
  for (double p : percentiles) s.percentiles.emplace_back(p, percentile_linear(seconds, p) * 1000);
  return s;
}

Result<std::map<std::string, double>> parse_goodput(const std::vector<std::string>& pairs) {
  std::map<std::string, double> out;
  for (const auto& pair : pairs) {
    size_t colon = pair.find(':');
    if (colon == std::string::npos || pair.find(':', colon + 1) != std::string::npos) {
      return InvalidArgumentError(
          "--goodput '{}': specify service level objectives as \"KEY:VALUE\" pairs, where the key is a "
          "metric name (ttft, tpot, e2el) and the value a number in milliseconds",
          pair);
    }
    std::string name = pair.substr(0, colon);
    std::string value = pair.substr(colon + 1);
    if (name != "ttft" && name != "tpot" && name != "e2el") {
      return InvalidArgumentError("--goodput: invalid metric name '{}'; it should be one of ttft, tpot, e2el", name);
    }
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(v)) {
      return InvalidArgumentError("--goodput '{}': '{}' is not a number of milliseconds", pair, value);
    }
    if (v < 0) return InvalidArgumentError("--goodput '{}': the value should be non-negative", pair);
    out[name] = v;
  }
  return out;
}

namespace {

std::vector<std::string> split_csv(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

struct MetricInfo {
  const char* key;
  const char* name;
  const char* header;
};
constexpr MetricInfo kMetrics[] = {
    {"ttft", "TTFT", "Time to First Token"},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
    {"itl", "ITL", "Inter-token Latency"},
    {"e2el", "E2EL", "End-to-end Latency"},
    {"client_queue_time", "Client Queue Time", "Client-side Queueing"},
    {"e2el_including_client_queue", "E2EL incl. Client Queue", "Queue-inclusive End-to-end Latency"},
};

const MetricStats& stats_for(const ServeMetrics& m, std::string_view key) {
  if (key == "ttft") return m.ttft;
  if (key == "tpot") return m.tpot;
  if (key == "itl") return m.itl;
  if (key == "e2el") return m.e2el;
  if (key == "client_queue_time") return m.client_queue_time;
  return m.e2el_including_client_queue;
}

// vLLM prints the client-queue sections only with --max-concurrency (the second one also needs a
// finite request rate), and only when selected with --percentile-metrics.
bool metric_shown(std::string_view key, const ServeReportOptions& o) {
  if (std::find(o.percentile_metrics.begin(), o.percentile_metrics.end(), key) == o.percentile_metrics.end()) {
    return false;
  }
  if (key == "client_queue_time") return o.max_concurrency.has_value();
  if (key == "e2el_including_client_queue") return o.max_concurrency.has_value() && !std::isinf(o.request_rate);
  return true;
}

std::string percentile_word(double p) {
  if (std::floor(p) == p) return fmt::format("{}", static_cast<int64_t>(p));
  return fmt::format("{}", p);
}

}  // namespace

Result<std::vector<std::string>> parse_percentile_metrics(const std::string& csv) {
  std::vector<std::string> out = split_csv(csv);
  for (const auto& name : out) {
    bool known = std::any_of(std::begin(kMetrics), std::end(kMetrics), [&](const MetricInfo& m) { return name == m.key; });
    if (!known) {
      return InvalidArgumentError(
          "--percentile-metrics: unknown metric '{}' (allowed: ttft, tpot, itl, e2el, client_queue_time, "
          "e2el_including_client_queue)",
          name);
    }
  }
  return out;
}

Result<std::vector<double>> parse_metric_percentiles(const std::string& csv) {
  std::vector<double> out;
  for (const auto& item : split_csv(csv)) {
    char* end = nullptr;
    double p = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(p >= 0 && p <= 100)) {
      return InvalidArgumentError("--metric-percentiles: '{}' is not a percentile in [0, 100]", item);
    }
    out.push_back(p);
  }
  return out;
}

ServeMetrics compute_serve_metrics(const std::vector<RequestOutcome>& outputs, double duration_s,
                                   const std::vector<double>& percentiles,
                                   const std::map<std::string, double>& slo,
                                   const std::function<int(const std::string&)>& count_tokens) {
  ServeMetrics m;
  std::vector<double> ttfts, tpots, all_tpots, itls, e2els, queue, e2el_queue;
  for (const auto& o : outputs) {
    if (!o.success) {
      m.actual_output_lens.push_back(0);
      ++m.failed;
      continue;
    }
    int out_len = o.output_tokens;
    if (out_len == 0) out_len = count_tokens ? count_tokens(o.generated_text) : 1;
    m.actual_output_lens.push_back(out_len);
    m.total_input += o.prompt_len;
    double tpot = 0;
    if (out_len > 1) {
      tpot = (o.latency - o.ttft) / (out_len - 1);
      tpots.push_back(tpot);
    }
    all_tpots.push_back(tpot);
    itls.insert(itls.end(), o.itl.begin(), o.itl.end());
    ttfts.push_back(o.ttft);
    e2els.push_back(o.latency);
    queue.push_back(o.client_queue_time);
    e2el_queue.push_back(o.latency + o.client_queue_time);
    ++m.completed;
  }
  int good = 0;
  if (!slo.empty()) {
    for (size_t i = 0; i < ttfts.size(); ++i) {
      bool ok = true;
      if (auto it = slo.find("ttft"); it != slo.end()) ok &= it->second / 1000.0 >= ttfts[i];
      if (auto it = slo.find("tpot"); it != slo.end()) ok &= it->second / 1000.0 >= all_tpots[i];
      if (auto it = slo.find("e2el"); it != slo.end()) ok &= it->second / 1000.0 >= e2els[i];
      good += ok ? 1 : 0;
    }
  }
  for (int x : m.actual_output_lens) m.total_output += x;

  // Peak output throughput (one-second buckets of chunk arrivals) and peak concurrency (sweep line).
  double min_start = 0, max_end = 0;
  bool any = false;
  for (const auto& o : outputs) {
    if (!o.success) continue;
    min_start = any ? std::min(min_start, o.start_time) : o.start_time;
    max_end = any ? std::max(max_end, o.start_time + o.latency) : o.start_time + o.latency;
    any = true;
  }
  if (any) {
    int64_t buckets = static_cast<int64_t>(std::ceil(max_end - min_start)) + 1;
    std::vector<double> tokens_per_second(static_cast<size_t>(buckets), 0.0);
    std::vector<std::pair<double, int>> events;
    for (const auto& o : outputs) {
      if (!o.success) continue;
      double t = o.start_time + o.ttft;
      auto add = [&](double tt) {
        int64_t b = static_cast<int64_t>(tt - min_start);  // int() truncates toward zero
        if (b >= 0 && b < buckets) tokens_per_second[static_cast<size_t>(b)] += 1;
      };
      add(t);
      for (double gap : o.itl) {
        t += gap;
        add(t);
      }
      events.emplace_back(o.start_time, 1);
      events.emplace_back(o.start_time + o.latency, -1);
    }
    std::sort(events.begin(), events.end());
    int cur = 0;
    for (const auto& e : events) {
      cur += e.second;
      m.max_concurrent_requests = std::max(m.max_concurrent_requests, cur);
    }
    m.max_output_tokens_per_s = *std::max_element(tokens_per_second.begin(), tokens_per_second.end());
  }

  m.request_throughput = m.completed / duration_s;
  m.request_goodput = good / duration_s;
  m.output_throughput = static_cast<double>(m.total_output) / duration_s;
  m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / duration_s;
  m.ttft = summarize_ms(ttfts, percentiles);
  m.tpot = summarize_ms(tpots, percentiles);
  m.itl = summarize_ms(itls, percentiles);
  m.e2el = summarize_ms(e2els, percentiles);
  m.client_queue_time = summarize_ms(queue, percentiles);
  m.e2el_including_client_queue = summarize_ms(e2el_queue, percentiles);
  return m;
}

std::string render_failed_requests(const std::vector<RequestOutcome>& outputs) {
  std::string out;
  int i = 0;
  for (const auto& o : outputs) {
    if (o.success) continue;
    if (i == 0) out += "Failed requests during benchmark run detected (capping to 10):\n";
    if (i >= 10) break;
    out += fmt::format("Error {}: {}\n", i, o.error);
    ++i;
  }
  return out;
}

std::string render_serve_report(const ServeMetrics& m, double duration_s, const ServeReportOptions& o) {
  std::string s;
  auto row_int = [&](std::string_view label, int64_t v) { s += fmt::format("{:<40} {:<10}\n", label, v); };
  auto row_f = [&](std::string_view label, double v) { s += fmt::format("{:<40} {:<10.2f}\n", label, v); };
  s += fmt::format("{:=^50}\n", " Serving Benchmark Result ");
  row_int("Successful requests:", m.completed);
  row_int("Failed requests:", m.failed);
  if (o.max_concurrency) row_int("Maximum request concurrency:", *o.max_concurrency);
  if (!std::isinf(o.request_rate)) row_f("Request rate configured (RPS):", o.request_rate);
  row_f("Benchmark duration (s):", duration_s);
  row_int("Total input tokens:", m.total_input);
  row_int("Total generated tokens:", m.total_output);
  row_f("Request throughput (req/s):", m.request_throughput);
  if (o.goodput) row_f("Request goodput (req/s):", m.request_goodput);
  row_f("Output token throughput (tok/s):", m.output_throughput);
  row_f("Peak output token throughput (tok/s):", m.max_output_tokens_per_s);
  row_f("Peak concurrent requests:", m.max_concurrent_requests);
  row_f("Total token throughput (tok/s):", m.total_token_throughput);
  for (const auto& info : kMetrics) {
    if (!metric_shown(info.key, o)) continue;
    const MetricStats& st = stats_for(m, info.key);
    s += fmt::format("{:-^50}\n", info.header);
    row_f(fmt::format("Mean {} (ms):", info.name), st.mean);
    row_f(fmt::format("Median {} (ms):", info.name), st.median);
    for (const auto& [p, v] : st.percentiles) row_f(fmt::format("P{} {} (ms):", percentile_word(p), info.name), v);
  }
  s += std::string(50, '=') + "\n";
  return s;
}

std::string python_float_str(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  if (std::floor(v) == v && std::fabs(v) < 1e16) return fmt::format("{:.1f}", v);
  return fmt::format("{}", v);  // shortest round-trip, as Python's repr
}

nlohmann::ordered_json serve_result_json(nlohmann::ordered_json j, const ServeMetrics& m, double duration_s,
                                         const std::vector<RequestOutcome>& outputs,
                                         const ServeReportOptions& o, bool detailed) {
  j["duration"] = duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] = o.goodput ? nlohmann::ordered_json(m.request_goodput) : nlohmann::ordered_json(nullptr);
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  if (detailed) {
    auto arr = [&](auto get) {
      nlohmann::ordered_json a = nlohmann::ordered_json::array();
      for (const auto& out : outputs) a.push_back(get(out));
      return a;
    };
    j["input_lens"] = arr([](const RequestOutcome& r) { return r.prompt_len; });
    j["output_lens"] = m.actual_output_lens;
    j["ttfts"] = arr([](const RequestOutcome& r) { return r.ttft; });
    j["itls"] = arr([](const RequestOutcome& r) { return r.itl; });
    j["latencies"] = arr([](const RequestOutcome& r) { return r.latency; });
    j["start_times"] = arr([](const RequestOutcome& r) { return r.start_time; });
    j["queue_times"] = arr([](const RequestOutcome& r) { return r.client_queue_time; });
    j["generated_texts"] = arr([](const RequestOutcome& r) { return r.generated_text; });
    j["errors"] = arr([](const RequestOutcome& r) { return r.error; });
  }
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  j["rtfx"] = 0.0;
  for (const auto& info : kMetrics) {
    if (!metric_shown(info.key, o)) continue;
    const MetricStats& st = stats_for(m, info.key);
    j[fmt::format("mean_{}_ms", info.key)] = st.mean;
    j[fmt::format("median_{}_ms", info.key)] = st.median;
    j[fmt::format("std_{}_ms", info.key)] = st.std;
    for (const auto& [p, v] : st.percentiles) j[fmt::format("p{}_{}_ms", percentile_word(p), info.key)] = v;
  }
  return j;
}

}  // namespace tandem::bench
