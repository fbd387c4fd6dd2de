// Minimal Prometheus text exposition (format 0.0.4): a thread-safe histogram and a writer for
// HELP/TYPE headers and samples. Enough for /metrics; no global registry (each server owns its own).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class PrometheusHistogram {
 public:
  explicit PrometheusHistogram(std::vector<double> upper_bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf last
    double sum = 0.0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), +Inf last
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// Appends exposition text. `labels` is the rendered label set without braces, e.g.
// `model_name="m"` (may be empty).
class PrometheusWriter {
 public:
  void header(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::string_view labels, double value);
  void histogram(std::string_view name, std::string_view labels, const PrometheusHistogram::Snapshot& s);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Escapes a label value (backslash, quote, newline).
std::string prometheus_escape(std::string_view value);
// Formats a sample value as Prometheus does (integers without a fraction, +Inf, NaN).
std::string prometheus_number(double v);

}  // namespace tandem
