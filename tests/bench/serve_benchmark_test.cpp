// run_serve_benchmark against MockSseServer: measured TTFT / ITL / E2EL / TPOT and throughputs match the
// mock's stamped send times within 1 ms (and its injected schedule), with failures (HTTP errors,
// dropped connections, streams without a token chunk, invalid JSON), empty chunks, comments, events
// split across reads, and [DONE].
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <map>

#include "bench/serve_benchmark.h"
#include "bench/serve_metrics.h"
#include "bench/mock_sse_server.h"

namespace tandem::bench {
namespace {

using testing::MockPiece;
using testing::MockScript;
using testing::MockSseServer;

// The client's own timing error (what this test checks): each stamp must belong to the right read. The
// nearest wrong reads are 3 ms ("tricky": tokens -> usage) or more away; 2.5 ms leaves room for a
// descheduled client thread on a loaded 2-core CI machine (1 ms failed there once in ~15 runs).
constexpr double kTolMs = 2.5;
constexpr double kMockTolMs = 20.0;  // the mock's sleep_until accuracy on a loaded 2-core machine (load 15 seen)

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string prompt_of(const std::string& body) {
  auto j = nlohmann::json::parse(body);
  return j.contains("prompt") ? j["prompt"].get<std::string>() : j["messages"][0]["content"].get<std::string>();
}

// The scripts, keyed by prompt.
MockScript script_for(const std::string& prompt) {
  MockScript s;
  if (prompt == "ok") {  // 3 tokens at 20, 30, 45 ms, then usage and [DONE]
    s.pieces = {{20, MockSseServer::text_event("a")}, {10, MockSseServer::text_event("b")},
                {15, MockSseServer::text_event("c")}, {5, MockSseServer::usage_event(7, 3)},
                {1, MockSseServer::done_event()}};
  } else if (prompt == "http500") {
    s.status = 500;
    s.reason = "Internal Server Error";
    s.error_body = R"({"error":{"message":"boom","type":"InternalServerError","code":500}})";
  } else if (prompt == "drop") {  // one token, then the connection drops
    s.pieces = {{10, MockSseServer::text_event("x")}};
    s.drop_after_pieces = true;
  } else if (prompt == "tricky") {
    // A comment, an empty-choices chunk without usage (ignored), an event split across two reads, two
    // events in one read, usage, [DONE].
    std::string e1 = MockSseServer::text_event("p");
    std::string e2 = MockSseServer::text_event("q");
    std::string e3 = MockSseServer::text_event("r");
    s.pieces = {{5, ": ping\n\n"},
                {5, "data: {\"choices\":[]}\n\n"},
                {10, e1.substr(0, 25)},   // not yet a complete event
                {10, e1.substr(25)},      // completes the first token event (t = 30 ms)
                {12, e2 + e3},            // two tokens in one read (t = 42 ms)
                {3, MockSseServer::usage_event(11, 3) + MockSseServer::done_event()}};
  } else if (prompt == "no-token") {  // usage and [DONE] only: no chunk with choices
    s.pieces = {{5, MockSseServer::usage_event(4, 0)}, {1, MockSseServer::done_event()}};
  } else if (prompt == "bad-json") {
    s.pieces = {{5, MockSseServer::text_event("a")}, {5, "data: {not json\n\n"}, {5, MockSseServer::done_event()}};
  }
  return s;
}

std::vector<SampleRequest> make_requests(const std::vector<std::string>& prompts) {
  std::vector<SampleRequest> out;
  for (size_t i = 0; i < prompts.size(); ++i) out.push_back({prompts[i], 5, 16, "req-" + std::to_string(i)});
  return out;
}

TEST(ServeBenchmark, TimingMatchesMockSchedule) {
  MockSseServer server([](const std::string& body) { return script_for(prompt_of(body)); });
  auto requests = make_requests({"ok", "http500", "drop", "tricky", "no-token", "bad-json"});
  ServeBenchmarkOptions o;
  o.port = server.port();
  o.model = "mock";
  auto run = run_serve_benchmark(o, requests, nullptr);
  ASSERT_TRUE(run.ok()) << run.status().to_string();
  ASSERT_EQ(run->outputs.size(), requests.size());

  std::map<std::string, testing::MockRecord> rec;
  for (auto& r : server.records()) rec[prompt_of(r.body)] = r;
  ASSERT_EQ(rec.size(), requests.size());
  const auto& out = run->outputs;
  for (auto& [p, r] : rec) {
    std::string sent;
    for (auto t : r.sent) sent += fmt::format(" {:.2f}", ms(t - run->start));
    if (std::getenv("TANDEM_BENCH_TEST_VERBOSE")) std::printf("mock %-8s received at %.2f ms, sent at%s\n", p.c_str(), ms(r.received - run->start), sent.c_str());
  }
  auto abs_time = [&](const RequestOutcome& o, double rel_s) {
    return run->start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.start_time + rel_s));
  };

  // "ok": TTFT at the first chunk, ITL between chunks, latency at the last token chunk (not usage).
  {
    const RequestOutcome& r = out[0];
    const auto& m = rec["ok"];
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.generated_text, "abc");
    EXPECT_EQ(r.output_tokens, 3);
    EXPECT_EQ(r.prompt_len, 7);  // usage.prompt_tokens replaces the dataset's count
    ASSERT_EQ(m.sent.size(), 5u);
    EXPECT_NEAR(ms(abs_time(r, r.ttft) - m.sent[0]), 0.0, kTolMs);
    ASSERT_EQ(r.itl.size(), 2u);
    EXPECT_NEAR(r.itl[0] * 1000, ms(m.sent[1] - m.sent[0]), kTolMs);
    EXPECT_NEAR(r.itl[1] * 1000, ms(m.sent[2] - m.sent[1]), kTolMs);
    EXPECT_NEAR(ms(abs_time(r, r.latency) - m.sent[2]), 0.0, kTolMs);
    // Against the injected schedule, which runs from the moment the mock has read the request (TTFT
    // also holds the connect and the request's trip, a few ms when the mock spawns its thread).
    const double recv_ms = ms(m.received - abs_time(r, 0));
    EXPECT_NEAR(r.ttft * 1000, recv_ms + 20.0, kMockTolMs);
    EXPECT_NEAR(r.itl[0] * 1000, 10.0, kMockTolMs);
    EXPECT_NEAR(r.itl[1] * 1000, 15.0, kMockTolMs);
    EXPECT_NEAR(r.latency * 1000, recv_ms + 45.0, kMockTolMs);
    EXPECT_NEAR((r.latency - r.ttft) / 2 * 1000, 12.5, kMockTolMs);  // TPOT
    EXPECT_EQ(m.request_id, "req-0");
    auto body = nlohmann::json::parse(m.body);
    EXPECT_EQ(body["model"], "mock");
    EXPECT_EQ(body["max_tokens"], 16);
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
  }
  // HTTP error.
  EXPECT_FALSE(out[1].success);
  EXPECT_NE(out[1].error.find("HTTP 500 Internal Server Error"), std::string::npos) << out[1].error;
  EXPECT_NE(out[1].error.find("boom"), std::string::npos) << out[1].error;
  // Dropped connection after a token: failed, as aiohttp's payload error makes vLLM fail it.
  EXPECT_FALSE(out[2].success);
  EXPECT_NE(out[2].error.find("Unavailable"), std::string::npos) << out[2].error;
  // Tricky framing.
  {
    const RequestOutcome& r = out[3];
    const auto& m = rec["tricky"];
    ASSERT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.generated_text, "pqr");
    EXPECT_EQ(r.output_tokens, 3);
    ASSERT_EQ(m.sent.size(), 6u);
    EXPECT_NEAR(ms(abs_time(r, r.ttft) - m.sent[3]), 0.0, kTolMs);  // the read that completed event 1
    ASSERT_EQ(r.itl.size(), 2u);
    EXPECT_NEAR(r.itl[0] * 1000, ms(m.sent[4] - m.sent[3]), kTolMs);
    EXPECT_NEAR(r.itl[1] * 1000, 0.0, 1e-9);  // same read: same arrival stamp
    const double recv_ms = ms(m.received - abs_time(r, 0));
    EXPECT_NEAR(r.ttft * 1000, recv_ms + 30.0, kMockTolMs);
    EXPECT_NEAR(r.latency * 1000, recv_ms + 42.0, kMockTolMs);
  }
  EXPECT_FALSE(out[4].success);
  EXPECT_EQ(out[4].error, "Never received a valid chunk to calculate TTFT.This response will be marked as failed!");
  EXPECT_FALSE(out[5].success);
  EXPECT_NE(out[5].error.find("invalid JSON"), std::string::npos) << out[5].error;

  // Metrics over the run, recomputed from the mock's stamps.
  // A TTFT SLO between the two successes' TTFTs (~20 and ~30 ms after the mock read the request).
  const double slo_ms = (out[0].ttft + out[3].ttft) / 2 * 1000;
  ServeMetrics m = compute_serve_metrics(out, run->duration_s, {50, 99}, {{"ttft", slo_ms}});
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 4);
  EXPECT_EQ(m.total_input, 7 + 11);
  EXPECT_EQ(m.total_output, 6);
  const auto& ok = rec["ok"];
  const auto& tr = rec["tricky"];
  double tpot_ok = (ms(ok.sent[2] - ok.sent[0])) / 2;
  double tpot_tr = (ms(tr.sent[4] - tr.sent[3])) / 2;
  EXPECT_NEAR(m.tpot.mean, (tpot_ok + tpot_tr) / 2, kTolMs);
  EXPECT_NEAR(m.itl.mean, (ms(ok.sent[1] - ok.sent[0]) + ms(ok.sent[2] - ok.sent[1]) + ms(tr.sent[4] - tr.sent[3])) / 4,
              kTolMs);
  EXPECT_NEAR(m.output_throughput, 6 / run->duration_s, 1e-9);
  EXPECT_NEAR(m.request_throughput, 2 / run->duration_s, 1e-9);
  EXPECT_NEAR(m.request_goodput, 1 / run->duration_s, 1e-9);  // only "ok" meets the SLO
  EXPECT_EQ(m.max_concurrent_requests, 2);
  EXPECT_EQ(m.max_output_tokens_per_s, 6);  // 6 chunks, all within the first second
  EXPECT_GT(run->duration_s, 0.044);
  EXPECT_LT(run->duration_s, 1.0);
}

TEST(ServeBenchmark, ConcurrencyCapReusesConnectionsAndQueues) {
  MockSseServer server([](const std::string&) {
    MockScript s;
    s.pieces = {{20, MockSseServer::text_event("t")}, {1, MockSseServer::usage_event(3, 1)},
                {0, MockSseServer::done_event()}};
    return s;
  });
  auto requests = make_requests(std::vector<std::string>(6, "x"));
  ServeBenchmarkOptions o;
  o.port = server.port();
  o.max_concurrency = 2;
  auto run = run_serve_benchmark(o, requests, nullptr);
  ASSERT_TRUE(run.ok()) << run.status().to_string();
  ServeMetrics m = compute_serve_metrics(run->outputs, run->duration_s, {99}, {});
  EXPECT_EQ(m.completed, 6);
  EXPECT_EQ(m.max_concurrent_requests, 2);
  EXPECT_EQ(server.connections(), 2);  // keep-alive: the 2 slots reuse their connections
  // Three waves of ~21 ms: the last two requests queued ~42 ms behind the semaphore.
  EXPECT_NEAR(run->outputs[5].client_queue_time * 1000, 42, 3 * kMockTolMs);
  EXPECT_NEAR(run->outputs[0].client_queue_time * 1000, 0, kTolMs);
  EXPECT_GT(run->duration_s, 0.06);
}

TEST(ServeBenchmark, RequestRateSpreadsArrivals) {
  MockSseServer server([](const std::string&) {
    MockScript s;
    s.pieces = {{1, MockSseServer::text_event("t")}, {0, MockSseServer::done_event()}};
    return s;
  });
  auto requests = make_requests(std::vector<std::string>(10, "x"));
  ServeBenchmarkOptions o;
  o.port = server.port();
  o.request_rate = 50;  // the last arrival is rescaled to exactly 10 / 50 = 0.2 s
  o.seed = 3;
  auto run = run_serve_benchmark(o, requests, nullptr);
  ASSERT_TRUE(run.ok());
  EXPECT_NEAR(run->outputs.back().start_time, 0.2, 0.005);
  for (size_t i = 1; i < run->outputs.size(); ++i) {
    EXPECT_GE(run->outputs[i].start_time, run->outputs[i - 1].start_time);
  }
}

TEST(ServeBenchmark, ConnectionRefusedIsAFailureNotAHang) {
  uint16_t port;
  {
    MockSseServer server([](const std::string&) { return MockScript{}; });
    port = server.port();
  }
  ServeBenchmarkOptions o;
  o.port = port;
  auto run = run_serve_benchmark(o, make_requests({"a", "b"}), nullptr);
  ASSERT_TRUE(run.ok());
  for (const auto& r : run->outputs) {
    EXPECT_FALSE(r.success);
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(ServeBenchmark, RejectsBadOptions) {
  ServeBenchmarkOptions o;
  o.backend = "tgi";
  EXPECT_FALSE(run_serve_benchmark(o, make_requests({"a"}), nullptr).ok());
  o.backend = "openai-chat";  // endpoint still /v1/completions
  EXPECT_FALSE(run_serve_benchmark(o, make_requests({"a"}), nullptr).ok());
  o.backend = "openai";
  o.max_concurrency = 0;
  EXPECT_FALSE(run_serve_benchmark(o, make_requests({"a"}), nullptr).ok());
}

TEST(ServeBenchmark, ChatBackendParsesDeltas) {
  MockSseServer server([](const std::string& body) {
    auto j = nlohmann::json::parse(body);
    EXPECT_EQ(j["max_completion_tokens"], 16);
    MockScript s;
    s.pieces = {{2, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"},
                {2, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"},
                {1, MockSseServer::usage_event(5, 2) + MockSseServer::done_event()}};
    return s;
  });
  ServeBenchmarkOptions o;
  o.port = server.port();
  o.backend = "openai-chat";
  o.endpoint = "/v1/chat/completions";
  auto run = run_serve_benchmark(o, make_requests({"hello"}), nullptr);
  ASSERT_TRUE(run.ok());
  const auto& r = run->outputs[0];
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_EQ(r.generated_text, "hi");
  EXPECT_EQ(r.itl.size(), 1u);  // the role chunk counts as the first chunk, as in vLLM
  EXPECT_EQ(r.output_tokens, 2);
}

}  // namespace
}  // namespace tandem::bench
