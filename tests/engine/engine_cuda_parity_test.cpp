// The CUDA engine against the CPU reference engine on the tiny model: greedy tokens of four prompts run
// alone on the CPU are the reference; on CUDA the same prompts run alone, together in one mixed batch,
// with chunked prefill (8-token budget), behind a prefix-cache hit, and under preemption (a pool too small
// for all four). Two checks:
//   - every CUDA scenario gives the tokens CUDA gives alone (batching, chunking, cache hits and
//     recomputation change nothing), except that a continuation may part where CUDA alone's own top-2
//     log-probabilities are within kNearTie: the GEMM kernels (and their rounding) depend on the batch's
//     row count, so a near-tie may resolve either way;
//   - CUDA alone equals the CPU token for token, except that from a position where the CPU's own top-2
//     log-probabilities are within kNearTie (a near-tie that bf16 activations may resolve either way; the
//     CPU computes in fp32) the continuations may part. The first difference must be such a near-tie.
// Skips without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backend_factory.h"
#include "engine_test_util.h"

namespace tandem {
namespace {

using namespace tandem::testing;

constexpr int kRequests = 4;
constexpr int kNewTokens = 24;
constexpr float kNearTie = 0.05f;  // nats between the CPU's best and second-best token

std::vector<int32_t> prompt(int i) { return prompt_of(20 + 7 * i, i); }

// Top-1 minus top-2 log-probability at each output position of a request run with logprobs = 2.
std::vector<float> top2_margins(const Collected& c) {
  std::vector<float> margin;
  for (const TokenLogprob& lp : c.logprobs) margin.push_back(lp.top.size() >= 2 ? lp.top[0].second - lp.top[1].second : 1e9f);
  return margin;
}

// Runs the four prompts concurrently (or one after another when `sequential`) and returns their tokens.
std::vector<std::vector<int32_t>> run_all(const EngineConfig& c, const std::string& tag, bool sequential) {
  auto engine = make_engine(c);
  std::vector<std::vector<int32_t>> out(kRequests);
  auto run = [&](int i) { return engine->add_request(greedy_request(tag + std::to_string(i), prompt(i), kNewTokens)); };
  if (sequential) {
    for (int i = 0; i < kRequests; ++i) {
      auto ch = run(i);
      EXPECT_TRUE(ch.ok()) << ch.status().to_string();
      if (ch.ok()) out[i] = collect(**ch).tokens;
    }
    return out;
  }
  std::vector<Result<std::shared_ptr<OutputChannel>>> chans;
  for (int i = 0; i < kRequests; ++i) chans.push_back(run(i));
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_TRUE(chans[i].ok()) << chans[i].status().to_string();
    if (chans[i].ok()) out[i] = collect(**chans[i]).tokens;
  }
  return out;
}

size_t first_difference_at(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

class EngineCudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the CUDA-vs-CPU engine parity test needs a GPU";
    EngineConfig cpu = tiny_config();
    cpu.enable_prefix_caching = false;
    auto engine = make_engine(cpu);
    for (int i = 0; i < kRequests; ++i) {
      EngineRequest r = greedy_request("cpu" + std::to_string(i), prompt(i), kNewTokens);
      r.sampling.logprobs = 2;
      Collected c = run_one(*engine, std::move(r));
      ASSERT_EQ(c.tokens.size(), static_cast<size_t>(kNewTokens));
      ASSERT_EQ(c.logprobs.size(), c.tokens.size());
      cpu_ref_.push_back(c.tokens);
      cpu_margin_.push_back(top2_margins(c));
    }
    EngineConfig alone = cuda_config();
    alone.enable_prefix_caching = false;
    cuda_alone_ = run_all(alone, "alone", /*sequential=*/true);
    // CUDA alone's margins (logprobs sample on the host from the same logits: the same greedy tokens).
    auto cuda = make_engine(alone);
    for (int i = 0; i < kRequests; ++i) {
      EngineRequest r = greedy_request("alone-lp" + std::to_string(i), prompt(i), kNewTokens);
      r.sampling.logprobs = 2;
      Collected c = run_one(*cuda, std::move(r));
      ASSERT_EQ(c.tokens, cuda_alone_[i]) << "request " << i << ": logprobs changed the greedy tokens";
      cuda_margin_.push_back(top2_margins(c));
    }
  }
  static EngineConfig cuda_config() {
    EngineConfig c = tiny_config();
    c.device = Device::kCuda;
    return c;
  }
  // Request i of a CUDA scenario equals CUDA alone, or first parts from it at a near-tie of CUDA alone.
  void expect_matches_alone(const std::vector<int32_t>& got, int i, const std::string& what) {
    ASSERT_EQ(got.size(), cuda_alone_[i].size()) << what << ", request " << i;
    const size_t d = first_difference_at(got, cuda_alone_[i]);
    if (d == got.size()) return;
    EXPECT_LT(cuda_margin_[i][d], kNearTie)
        << what << ", request " << i << " parts from CUDA alone at output position " << d
        << " where CUDA alone's top-2 margin is " << cuda_margin_[i][d] << " nats (not a near-tie)";
  }
  void expect_matches_alone(const std::vector<std::vector<int32_t>>& got, const std::string& what) {
    ASSERT_EQ(got.size(), cuda_alone_.size());
    for (int i = 0; i < kRequests; ++i) expect_matches_alone(got[i], i, what);
  }
  std::vector<std::vector<int32_t>> cpu_ref_, cuda_alone_;
  std::vector<std::vector<float>> cpu_margin_, cuda_margin_;
};

TEST_F(EngineCudaParity, AloneMatchesCpuUpToNearTies) {
  int identical = 0;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(cuda_alone_[i].size(), static_cast<size_t>(kNewTokens)) << "request " << i;
    const size_t d = first_difference_at(cuda_alone_[i], cpu_ref_[i]);
    if (d == cpu_ref_[i].size()) {
      ++identical;
      continue;
    }
    EXPECT_LT(cpu_margin_[i][d], kNearTie)
        << "request " << i << " parts from the CPU at output position " << d << " where the CPU's top-2 margin is "
        << cpu_margin_[i][d] << " nats (not a near-tie)";
  }
  EXPECT_GE(identical, kRequests / 2) << "most sequences should match the CPU exactly";
}

TEST_F(EngineCudaParity, MixedBatchMatchesAlone) {
  EngineConfig c = cuda_config();
  c.enable_prefix_caching = false;
  expect_matches_alone(run_all(c, "mixed", /*sequential=*/false), "mixed batch");
}

TEST_F(EngineCudaParity, ChunkedPrefillMatchesAlone) {
  EngineConfig c = cuda_config();
  c.enable_prefix_caching = false;
  c.max_num_batched_tokens = 8;
  expect_matches_alone(run_all(c, "chunked", /*sequential=*/false), "chunked prefill");
}

TEST_F(EngineCudaParity, PrefixCacheHitMatchesAlone) {
  EngineConfig c = cuda_config();
  auto engine = make_engine(c);
  for (int i = 0; i < kRequests; ++i) {
    auto first = run_one(*engine, greedy_request("p" + std::to_string(i), prompt(i), kNewTokens));
    auto second = run_one(*engine, greedy_request("q" + std::to_string(i), prompt(i), kNewTokens));
    EXPECT_GT(second.last.cached_prompt_tokens, 0) << "request " << i << " did not hit the prefix cache";
    expect_matches_alone(first.tokens, i, "first run");
    expect_matches_alone(second.tokens, i, "prefix hit");
  }
}

TEST_F(EngineCudaParity, PreemptionMatchesAlone) {
  EngineConfig c = cuda_config();
  c.enable_prefix_caching = false;
  c.num_kv_blocks = 8;  // 128 token slots; the four requests need ~190 at once
  c.max_model_len = 128;
  auto engine = make_engine(c);
  std::vector<Result<std::shared_ptr<OutputChannel>>> chans;
  for (int i = 0; i < kRequests; ++i)
    chans.push_back(engine->add_request(greedy_request("pre" + std::to_string(i), prompt(i), kNewTokens)));
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(chans[i].ok()) << chans[i].status().to_string();
    expect_matches_alone(collect(**chans[i]).tokens, i, "preemption");
  }
  EXPECT_GT(engine->metrics().num_preemptions, 0u);
}

}  // namespace
}  // namespace tandem
