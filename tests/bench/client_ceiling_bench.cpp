// The benchmark client's own ceiling against MockSseServer on loopback (a benchmark that prints
// figures, not a test; disabled by default). Run:
//   build/bin/test_bench --gtest_also_run_disabled_tests --gtest_filter='ClientCeiling.*'
// Prints: streamed chunks/s (wall and per CPU-second of the client's event-loop thread), requests/s
// with keep-alive, and the timing error the client adds (its receive stamp minus the mock's stamp just
// before the write, per chunk).
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <numeric>

#include "bench/mock_sse_server.h"
#include "bench/serve_benchmark.h"
#include "bench/serve_metrics.h"

namespace tandem::bench {
namespace {

using testing::MockScript;
using testing::MockSseServer;

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

MockSseServer::ScriptFn stream_script(int chunks, double gap_ms) {
  return [=](const std::string&) {
    MockScript s;
    for (int i = 0; i < chunks; ++i) s.pieces.push_back({gap_ms, MockSseServer::text_event("tok")});
    s.pieces.push_back({0, MockSseServer::usage_event(8, chunks) + MockSseServer::done_event()});
    return s;
  };
}

struct Figures {
  double wall_s, cpu_s;
  size_t chunks, requests, failed;
};

Figures run(MockSseServer& server, int num_requests, std::optional<int> concurrency) {
  std::vector<SampleRequest> reqs(static_cast<size_t>(num_requests), SampleRequest{"p", 8, 16, ""});
  ServeBenchmarkOptions o;
  o.port = server.port();
  o.max_concurrency = concurrency;
  double cpu0 = thread_cpu_s();
  auto r = run_serve_benchmark(o, reqs, nullptr);
  double cpu = thread_cpu_s() - cpu0;
  EXPECT_TRUE(r.ok());
  Figures f{r->duration_s, cpu, 0, reqs.size(), 0};
  for (const auto& out : r->outputs) {
    f.chunks += out.success ? 1 + out.itl.size() : 0;
    f.failed += out.success ? 0 : 1;
  }
  return f;
}

TEST(ClientCeiling, DISABLED_ChunksRequestsAndTimingError) {
  {  // Streaming throughput: 64 streams x 400 chunks, 0.5 ms apart per stream (~128k chunks/s offered).
    MockSseServer server(stream_script(400, 0.5));
    Figures f = run(server, 64, std::nullopt);
    std::printf("streaming: %zu chunks in %.3f s wall = %.0f chunks/s; client thread CPU %.3f s = %.0f chunks per CPU-s; failed %zu\n",
                f.chunks, f.wall_s, f.chunks / f.wall_s, f.cpu_s, f.chunks / f.cpu_s, f.failed);
  }
  {  // Request rate: 4000 one-chunk requests, 32 at a time, keep-alive connections.
    MockSseServer server(stream_script(1, 0));
    Figures f = run(server, 4000, 32);
    std::printf("requests: %zu in %.3f s wall = %.0f req/s; client thread CPU %.3f s = %.0f req per CPU-s; connections %d; failed %zu\n",
                f.requests, f.wall_s, f.requests / f.wall_s, f.cpu_s, f.requests / f.cpu_s, server.connections(), f.failed);
  }
  {  // Timing error: 16 streams x 100 chunks, 5 ms apart; client stamp - mock stamp per chunk.
    MockSseServer server(stream_script(100, 5));
    std::vector<SampleRequest> reqs(16, SampleRequest{"p", 8, 16, ""});
    ServeBenchmarkOptions o;
    o.port = server.port();
    auto r = run_serve_benchmark(o, reqs, nullptr);
    ASSERT_TRUE(r.ok());
    auto recs = server.records();
    std::vector<double> err_us;
    // Requests and records are matched by order of the first chunk's send time vs receive time.
    std::vector<std::vector<TimePoint>> client_times;
    for (const auto& out : r->outputs) {
      std::vector<TimePoint> ts;
      double t = out.start_time + out.ttft;
      auto at = [&](double s) {
        return r->start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
      };
      ts.push_back(at(t));
      for (double g : out.itl) ts.push_back(at(t += g));
      client_times.push_back(ts);
    }
    std::sort(client_times.begin(), client_times.end());
    std::sort(recs.begin(), recs.end(), [](const auto& a, const auto& b) { return a.sent[0] < b.sent[0]; });
    ASSERT_EQ(client_times.size(), recs.size());
    for (size_t i = 0; i < recs.size(); ++i) {
      // The last piece carries usage + [DONE] (not a token chunk).
      for (size_t k = 0; k + 1 < recs[i].sent.size() && k < client_times[i].size(); ++k) {
        err_us.push_back(std::chrono::duration<double, std::micro>(client_times[i][k] - recs[i].sent[k]).count());
      }
    }
    std::sort(err_us.begin(), err_us.end());
    double mean = std::accumulate(err_us.begin(), err_us.end(), 0.0) / static_cast<double>(err_us.size());
    std::printf("timing error (client receive stamp - mock send stamp) over %zu chunks: mean %.1f us, p50 %.1f us, "
                "p99 %.1f us, max %.1f us\n",
                err_us.size(), mean, percentile_linear(err_us, 50), percentile_linear(err_us, 99), err_us.back());
  }
}

}  // namespace
}  // namespace tandem::bench
