// Prometheus histogram and text writer.
#include "server/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tandem {

PrometheusHistogram::PrometheusHistogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void PrometheusHistogram::observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();  // le semantics
  std::lock_guard lock(mu_);
  counts_[i]++;
  sum_ += value;
  count_++;
}

PrometheusHistogram::Snapshot PrometheusHistogram::snapshot() const {
  Snapshot s;
  std::lock_guard lock(mu_);
  s.bounds = bounds_;
  s.cumulative.resize(counts_.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    acc += counts_[i];
    s.cumulative[i] = acc;
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::string prometheus_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.1f}", v);
  return fmt::format("{}", v);
}

void PrometheusWriter::header(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void PrometheusWriter::sample(std::string_view name, std::string_view labels, double value) {
  if (labels.empty()) {
    out_ += fmt::format("{} {}\n", name, prometheus_number(value));
  } else {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, prometheus_number(value));
  }
}

void PrometheusWriter::histogram(std::string_view name, std::string_view labels,
                                 const PrometheusHistogram::Snapshot& s) {
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < s.bounds.size(); ++i) {
    out_ += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, prometheus_number(s.bounds[i]),
                        s.cumulative[i]);
  }
  out_ += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, s.count);
  sample(fmt::format("{}_sum", name), labels, s.sum);
  sample(fmt::format("{}_count", name), labels, static_cast<double>(s.count));
}

}  // namespace tandem
