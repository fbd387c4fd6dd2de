// Metric math (numpy-equivalent stats, TPOT, goodput, peaks) and the printed block / JSON against
// goldens. tests/fixtures/bench/serve_report_*.txt were rendered by Python with vLLM's own format
// strings ("{:<40} {:<10.2f}" etc., from vllm/benchmarks/serve.py) for the ServeMetrics built below.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "bench/serve_metrics.h"

namespace tandem::bench {
namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(TANDEM_SOURCE_DIR) + "/tests/fixtures/bench/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Percentile, MatchesNumpyLinear) {
  // np.percentile([1, 2, 3, 4], [0, 25, 50, 99, 100]) = [1, 1.75, 2.5, 3.97, 4]
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile_linear(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile_linear(v, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile_linear(v, 50), 2.5);
  EXPECT_NEAR(percentile_linear(v, 99), 3.97, 1e-12);
  EXPECT_DOUBLE_EQ(percentile_linear(v, 100), 4);
  EXPECT_DOUBLE_EQ(percentile_linear({7}, 99), 7);
  EXPECT_DOUBLE_EQ(percentile_linear({}, 99), 0);  // np.percentile(0, 99)
}

TEST(Summarize, MeanMedianPopulationStd) {
  auto s = summarize_ms({0.001, 0.002, 0.003, 0.004}, {99});
  EXPECT_NEAR(s.mean, 2.5, 1e-12);
  EXPECT_NEAR(s.median, 2.5, 1e-12);
  EXPECT_NEAR(s.std, std::sqrt(1.25), 1e-12);  // np.std, ddof 0
  ASSERT_EQ(s.percentiles.size(), 1u);
  EXPECT_NEAR(s.percentiles[0].second, 3.97, 1e-9);
  auto e = summarize_ms({}, {50, 99});
  EXPECT_EQ(e.mean, 0);
  EXPECT_EQ(e.percentiles[1].second, 0);
}

RequestOutcome ok(double start, double ttft, std::vector<double> itl, int out_tokens, int prompt) {
  RequestOutcome o;
  o.success = true;
  o.start_time = start;
  o.ttft = ttft;
  o.itl = std::move(itl);
  o.latency = ttft;
  for (double g : o.itl) o.latency += g;
  o.output_tokens = out_tokens;
  o.prompt_len = prompt;
  return o;
}

TEST(ComputeServeMetrics, AsVllm) {
  std::vector<RequestOutcome> outs;
  outs.push_back(ok(0.0, 0.100, {0.010, 0.030}, 3, 10));  // latency 0.14, tpot 0.02
  outs.push_back(ok(0.05, 0.200, {0.020}, 2, 20));        // latency 0.22, tpot 0.02
  outs.push_back(ok(1.5, 0.050, {}, 1, 5));               // latency 0.05, no tpot
  RequestOutcome fail;
  fail.error = "HTTP 500";
  outs.push_back(fail);
  ServeMetrics m = compute_serve_metrics(outs, 2.0, {50, 99}, {{"ttft", 150}, {"tpot", 25}});
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 35);
  EXPECT_EQ(m.total_output, 6);
  EXPECT_EQ(m.actual_output_lens, (std::vector<int>{3, 2, 1, 0}));
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 3.0);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 20.5);
  EXPECT_DOUBLE_EQ(m.request_goodput, 1.0);  // req 0 (ttft 100, tpot 20) and req 2 (tpot 0): 2 / 2 s
  EXPECT_NEAR(m.ttft.mean, (100 + 200 + 50) / 3.0, 1e-9);
  EXPECT_NEAR(m.ttft.median, 100, 1e-9);
  EXPECT_NEAR(m.tpot.mean, 20, 1e-9);
  EXPECT_NEAR(m.itl.mean, 20, 1e-9);          // 10, 30, 20 pooled
  EXPECT_NEAR(m.itl.percentiles[1].second, 29.8, 1e-9);  // np.percentile([10, 20, 30], 99)
  EXPECT_NEAR(m.e2el.mean, (140 + 220 + 50) / 3.0, 1e-9);
  // Chunks at 0.10, 0.11, 0.14 | 0.25, 0.27 | 1.55: bucket 0 holds 5.
  EXPECT_EQ(m.max_output_tokens_per_s, 5);
  EXPECT_EQ(m.max_concurrent_requests, 2);
}

TEST(ComputeServeMetrics, PeakConcurrencyHalfOpenIntervals) {
  // [0, 1) and [1, 2): touching intervals never overlap.
  std::vector<RequestOutcome> outs = {ok(0, 1.0, {}, 1, 1), ok(1.0, 1.0, {}, 1, 1)};
  EXPECT_EQ(compute_serve_metrics(outs, 2, {99}, {}).max_concurrent_requests, 1);
}

TEST(ComputeServeMetrics, MissingUsageCountsGeneratedText) {
  RequestOutcome o = ok(0, 0.1, {0.1}, 0, 1);
  o.generated_text = "a b c";
  auto m = compute_serve_metrics({o}, 1, {99}, {}, [](const std::string& s) { return static_cast<int>(s.size()); });
  EXPECT_EQ(m.total_output, 5);
  EXPECT_EQ(compute_serve_metrics({o}, 1, {99}, {}).total_output, 1);
}

TEST(ComputeServeMetrics, AllFailedGivesZeros) {
  RequestOutcome f;
  f.error = "x";
  auto m = compute_serve_metrics({f, f}, 1, {99}, {});
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 2);
  EXPECT_EQ(m.ttft.mean, 0);
  EXPECT_EQ(m.max_concurrent_requests, 0);
  EXPECT_EQ(render_failed_requests({f, f}), "Failed requests during benchmark run detected (capping to 10):\nError 0: x\nError 1: x\n");
  std::vector<RequestOutcome> many(12, f);
  auto text = render_failed_requests(many);
  EXPECT_NE(text.find("Error 9: x\n"), std::string::npos);
  EXPECT_EQ(text.find("Error 10"), std::string::npos);
}

ServeMetrics golden_metrics() {
  ServeMetrics m;
  m.completed = 97;
  m.failed = 3;
  m.total_input = 99328;
  m.total_output = 12416;
  m.request_throughput = 7.857;
  m.request_goodput = 6.5;
  m.output_throughput = 1005.7133;
  m.total_token_throughput = 9051.4167;
  m.max_output_tokens_per_s = 1536;
  m.max_concurrent_requests = 64;
  auto st = [](double mean, double median, double p99, double p999) {
    MetricStats s;
    s.mean = mean;
    s.median = median;
    s.percentiles = {{99, p99}, {50, median}, {99.9, p999}};
    return s;
  };
  m.ttft = st(123.456, 110.0, 456.789, 500.125);
  m.tpot = st(12.345, 12.0, 20.5, 21.0);
  m.itl = st(12.3, 11.9, 40.25, 80.0);
  m.e2el = st(1690.5, 1650.25, 2300.0, 2400.0);
  m.client_queue_time = st(5.0, 0.0, 50.0, 60.0);
  m.e2el_including_client_queue = st(1695.5, 1650.25, 2350.0, 2460.0);
  return m;
}

TEST(RenderServeReport, DefaultMatchesGolden) {
  ServeMetrics m = golden_metrics();
  for (MetricStats* s : {&m.ttft, &m.tpot, &m.itl, &m.e2el}) s->percentiles.resize(1);  // --metric-percentiles 99
  ServeReportOptions o;
  o.request_rate = std::numeric_limits<double>::infinity();
  EXPECT_EQ(render_serve_report(m, 12.345678, o), read_fixture("serve_report_default.txt"));
}

TEST(RenderServeReport, AllRowsAndSectionsMatchGolden) {
  ServeReportOptions o;
  o.max_concurrency = 64;
  o.request_rate = 8.0;
  o.goodput = true;
  o.percentile_metrics = {"ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue"};
  EXPECT_EQ(render_serve_report(golden_metrics(), 12.345678, o), read_fixture("serve_report_full.txt"));
}

TEST(ServeResultJson, KeysInVllmOrder) {
  ServeReportOptions o;
  o.request_rate = std::numeric_limits<double>::infinity();
  o.percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  nlohmann::ordered_json header;
  header["date"] = "20261124-120000";
  header["backend"] = "openai";
  ServeMetrics m = golden_metrics();
  m.actual_output_lens = {0, 0};
  std::vector<RequestOutcome> outs(2);
  auto j = serve_result_json(header, m, 12.5, outs, o, /*detailed=*/false);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> want = {"date", "backend", "duration", "completed", "failed", "total_input_tokens",
                                   "total_output_tokens", "request_throughput", "request_goodput",
                                   "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
                                   "max_concurrent_requests", "rtfx", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms",
                                   "p99_ttft_ms", "p50_ttft_ms", "p99.9_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
                                   "std_tpot_ms", "p99_tpot_ms", "p50_tpot_ms", "p99.9_tpot_ms", "mean_itl_ms",
                                   "median_itl_ms", "std_itl_ms", "p99_itl_ms", "p50_itl_ms", "p99.9_itl_ms",
                                   "mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p99_e2el_ms", "p50_e2el_ms",
                                   "p99.9_e2el_ms"};
  EXPECT_EQ(keys, want);
  EXPECT_TRUE(j["request_goodput"].is_null());
  auto d = serve_result_json(header, m, 12.5, outs, o, /*detailed=*/true);
  for (const char* k : {"input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "generated_texts", "errors"}) {
    ASSERT_TRUE(d.contains(k)) << k;
    EXPECT_EQ(d[k].size(), 2u) << k;
  }
}

TEST(Flags, GoodputPercentilesAndMetrics) {
  auto g = parse_goodput({"ttft:50", "e2el:1000.5"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->at("ttft"), 50);
  EXPECT_EQ(g->at("e2el"), 1000.5);
  EXPECT_FALSE(parse_goodput({"itl:5"}).ok());
  EXPECT_FALSE(parse_goodput({"ttft=5"}).ok());
  EXPECT_FALSE(parse_goodput({"ttft:-1"}).ok());
  EXPECT_FALSE(parse_goodput({"ttft:abc"}).ok());
  auto p = parse_metric_percentiles("25,50,99.9");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<double>{25, 50, 99.9}));
  EXPECT_FALSE(parse_metric_percentiles("101").ok());
  EXPECT_FALSE(parse_metric_percentiles("x").ok());
  EXPECT_TRUE(parse_percentile_metrics("ttft,e2el").ok());
  EXPECT_FALSE(parse_percentile_metrics("ttft,foo").ok());
  EXPECT_EQ(python_float_str(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_float_str(10), "10.0");
  EXPECT_EQ(python_float_str(2.5), "2.5");
  EXPECT_EQ(python_float_str(0.1), "0.1");
}

}  // namespace
}  // namespace tandem::bench
