// Engine tests with the real tiny model on the CPU: greedy tokens are identical alone, in a mixed
// batch, with chunked prefill, with a prefix-cache hit and after preemption; seeded sampling is
// reproducible; stop conditions; abort; validation errors.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "engine/text_stream.h"
#include "engine_test_util.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

using namespace tandem::testing;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    engine_ = make_engine(tiny_config()).release();
    for (int i = 0; i < 4; ++i) {
      auto c = run_one(*engine_, greedy_request("ref" + std::to_string(i), prompt_of(20 + 7 * i, i), 24));
      ASSERT_FALSE(c.timed_out);
      ASSERT_EQ(c.tokens.size(), 24u);
      ref_.push_back(c.tokens);
    }
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }
  static Engine* engine_;
  static std::vector<std::vector<int32_t>> ref_;
};
Engine* EngineTest::engine_ = nullptr;
std::vector<std::vector<int32_t>> EngineTest::ref_;

TEST_F(EngineTest, GreedyIsDeterministicAndFinishesWithLength) {
  auto c = run_one(*engine_, greedy_request("again", prompt_of(20, 0), 24));
  EXPECT_EQ(c.tokens, ref_[0]);
  EXPECT_EQ(c.finish, FinishReason::kLength);
  EXPECT_EQ(c.last.completion_tokens, 24);
  EXPECT_EQ(c.last.prompt_tokens, 20);
  EXPECT_FALSE(c.text.empty());  // the tiny model has a tokenizer
}

TEST_F(EngineTest, MixedBatchGivesTheSameTokensAsAlone) {
  // A fresh engine without prefix caching so every prompt is computed in the shared batch.
  EngineConfig cfg = tiny_config();
  cfg.enable_prefix_caching = false;
  auto e = make_engine(cfg);
  std::vector<std::shared_ptr<OutputChannel>> chans;
  for (int i = 0; i < 4; ++i) {
    auto ch = e->add_request(greedy_request("m" + std::to_string(i), prompt_of(20 + 7 * i, i), 24));
    ASSERT_TRUE(ch.ok());
    chans.push_back(*ch);
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(collect(*chans[i]).tokens, ref_[i]) << "request " << i;
  EXPECT_GT(e->metrics().num_steps, 0u);
}

TEST_F(EngineTest, ChunkedPrefillGivesTheSameTokens) {
  EngineConfig cfg = tiny_config();
  cfg.max_num_batched_tokens = 8;
  cfg.enable_prefix_caching = false;
  auto e = make_engine(cfg);
  std::vector<std::shared_ptr<OutputChannel>> chans;
  for (int i = 0; i < 4; ++i) chans.push_back(*e->add_request(greedy_request("c" + std::to_string(i), prompt_of(20 + 7 * i, i), 24)));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(collect(*chans[i]).tokens, ref_[i]) << "request " << i;
}

TEST_F(EngineTest, PrefixCacheHitGivesTheSameTokens) {
  EngineConfig cfg = tiny_config();
  auto e = make_engine(cfg);
  auto first = run_one(*e, greedy_request("p0", prompt_of(41, 3), 24));
  EXPECT_EQ(first.tokens, ref_[3]);
  EXPECT_EQ(first.last.cached_prompt_tokens, 0);
  auto second = run_one(*e, greedy_request("p1", prompt_of(41, 3), 24));
  EXPECT_EQ(second.tokens, ref_[3]);
  EXPECT_EQ(second.last.cached_prompt_tokens, 32);  // two full 16-token blocks
  auto m = e->metrics();
  EXPECT_EQ(m.prefix_cache_hits, 32u);
  EXPECT_EQ(m.num_used_blocks, 0);
}

TEST_F(EngineTest, PreemptionRecomputesToTheSameTokens) {
  EngineConfig cfg = tiny_config();
  cfg.num_kv_blocks = 8;  // 128 token slots; four requests need ~190
  cfg.max_model_len = 128;
  cfg.enable_prefix_caching = false;
  auto e = make_engine(cfg);
  std::vector<std::shared_ptr<OutputChannel>> chans;
  for (int i = 0; i < 4; ++i) chans.push_back(*e->add_request(greedy_request("pre" + std::to_string(i), prompt_of(20 + 7 * i, i), 24)));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(collect(*chans[i]).tokens, ref_[i]) << "request " << i;
  auto m = e->metrics();
  EXPECT_GT(m.num_preemptions, 0u);
  EXPECT_EQ(m.num_used_blocks, 0);
}

TEST_F(EngineTest, SeededSamplingIsReproducible) {
  auto req = [](const std::string& id, std::optional<uint64_t> seed) {
    EngineRequest r = greedy_request(id, prompt_of(16, 9), 32);
    r.sampling.temperature = 1.0f;
    r.sampling.top_p = 0.95f;
    r.sampling.seed = seed;
    return r;
  };
  auto a = run_one(*engine_, req("s1", 7));
  auto b = run_one(*engine_, req("s2", 7));
  auto c = run_one(*engine_, req("s3", 8));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NE(a.tokens, c.tokens);
  // Unseeded requests draw from the engine's generator: two fresh engines with the same seed agree.
  auto e1 = make_engine(tiny_config());
  auto e2 = make_engine(tiny_config());
  EXPECT_EQ(run_one(*e1, req("u", std::nullopt)).tokens, run_one(*e2, req("u", std::nullopt)).tokens);
}

TEST_F(EngineTest, PenaltiesAndLogprobsUseTheHostPath) {
  EngineRequest r = greedy_request("pen", prompt_of(20, 0), 24);
  r.sampling.repetition_penalty = 1.3f;
  r.sampling.frequency_penalty = 0.5f;
  r.sampling.logprobs = 3;
  auto c = run_one(*engine_, std::move(r));
  ASSERT_EQ(c.tokens.size(), 24u);
  ASSERT_EQ(c.logprobs.size(), 24u);
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    EXPECT_EQ(c.logprobs[i].token_id, c.tokens[i]);
    ASSERT_EQ(c.logprobs[i].top.size(), 3u);
    EXPECT_LE(c.logprobs[i].logprob, 0.0f);
    EXPECT_GE(c.logprobs[i].top[0].second, c.logprobs[i].top[1].second);
  }
  // Plain greedy with logprobs: the chosen token is the top-1.
  EngineRequest g = greedy_request("lp", prompt_of(20, 0), 8);
  g.sampling.logprobs = 1;
  auto gl = run_one(*engine_, std::move(g));
  for (size_t i = 0; i < gl.tokens.size(); ++i) EXPECT_EQ(gl.logprobs[i].top[0].first, gl.tokens[i]);
  EXPECT_EQ(gl.tokens, std::vector<int32_t>(ref_[0].begin(), ref_[0].begin() + 8));
}

TEST_F(EngineTest, StopTokenIdsAndMinTokens) {
  const auto& ref = ref_[1];
  // Stop at the 5th token's first occurrence.
  int32_t stop_id = ref[4];
  size_t first = std::find(ref.begin(), ref.end(), stop_id) - ref.begin();
  EngineRequest r = greedy_request("stopid", prompt_of(27, 1), 24);
  r.sampling.stop_token_ids = {stop_id};
  auto c = run_one(*engine_, std::move(r));
  EXPECT_EQ(c.finish, FinishReason::kStop);
  EXPECT_EQ(c.stop_reason, std::to_string(stop_id));
  EXPECT_EQ(c.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + first + 1));

  // min_tokens: the stop id of the first token is suppressed until min_tokens are out.
  EngineRequest m = greedy_request("mintok", prompt_of(27, 1), 24);
  m.sampling.stop_token_ids = {ref[0]};
  m.sampling.min_tokens = 4;
  auto mc = run_one(*engine_, std::move(m));
  ASSERT_GE(mc.tokens.size(), 4u);
  EXPECT_NE(mc.tokens[0], ref[0]);
}

// The overlapped loop (async_scheduling, the default) against synchronous steps: a batch mixing a request
// that stops on a token id mid-way (seen a step late by the async loop, whose extra row is discarded), a
// seeded random one, a short max_tokens one, a chunked long prompt and one with logprobs (host sampling)
// gives identical outputs either way, and every block comes back. Without the logprobs request every step
// of the async run samples on the device; with it, steps switch between the two paths.
TEST_F(EngineTest, AsyncSchedulingMatchesSynchronousSteps) {
  for (bool with_logprobs : {false, true}) {
    SCOPED_TRACE(with_logprobs ? "with a logprobs request" : "device sampling only");
    auto run = [&](bool async) {
      EngineConfig cfg = tiny_config();
      cfg.async_scheduling = async;
      cfg.max_num_batched_tokens = 64;
      auto e = make_engine(cfg);
      std::vector<EngineRequest> reqs;
      EngineRequest stop = greedy_request("stop", prompt_of(27, 1), 24);
      stop.sampling.stop_token_ids = {ref_[1][4]};
      reqs.push_back(stop);
      EngineRequest seeded = greedy_request("seeded", prompt_of(20, 0), 20);
      seeded.sampling.temperature = 1.0f;
      seeded.sampling.seed = 7;
      reqs.push_back(seeded);
      reqs.push_back(greedy_request("short", prompt_of(34, 2), 3));
      reqs.push_back(greedy_request("long", prompt_of(150, 3), 12));
      if (with_logprobs) {
        EngineRequest lp = greedy_request("logprobs", prompt_of(41, 3), 10);
        lp.sampling.logprobs = 2;
        reqs.push_back(lp);
      }
      std::vector<std::shared_ptr<OutputChannel>> chans;
      for (auto& r : reqs) chans.push_back(*e->add_request(r));
      std::vector<Collected> out;
      for (auto& ch : chans) out.push_back(collect(*ch));
      for (int i = 0; i < 200 && e->metrics().num_used_blocks != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      EXPECT_EQ(e->metrics().num_used_blocks, 0) << (async ? "async" : "sync");
      return out;
    };
    auto sync = run(false);
    auto async = run(true);
    ASSERT_EQ(sync.size(), async.size());
    for (size_t i = 0; i < sync.size(); ++i) {
      EXPECT_EQ(async[i].tokens, sync[i].tokens) << "request " << i;
      EXPECT_EQ(async[i].text, sync[i].text) << "request " << i;
      EXPECT_EQ(async[i].finish, sync[i].finish) << "request " << i;
      EXPECT_EQ(async[i].last.completion_tokens, sync[i].last.completion_tokens) << "request " << i;
      EXPECT_EQ(async[i].logprobs.size(), sync[i].logprobs.size()) << "request " << i;
    }
    EXPECT_EQ(sync[0].finish, FinishReason::kStop);
    EXPECT_LT(sync[0].tokens.size(), 24u);
    EXPECT_EQ(sync[2].tokens.size(), 3u);
  }
}

TEST_F(EngineTest, MaxTokensAndIgnoreEos) {
  EngineRequest r = greedy_request("max", prompt_of(20, 0), 5);
  auto c = run_one(*engine_, std::move(r));
  EXPECT_EQ(c.tokens.size(), 5u);
  EXPECT_EQ(c.finish, FinishReason::kLength);
  // With ignore_eos off and the model's EOS ids listed as stop ids the run ends no later.
  EngineRequest r2 = greedy_request("eos", prompt_of(20, 0), 24);
  r2.sampling.ignore_eos = false;
  auto c2 = run_one(*engine_, std::move(r2));
  ASSERT_TRUE(c2.finish.has_value());
  const auto& eos = engine_->model_config().eos_token_ids;
  if (*c2.finish == FinishReason::kStop) {
    EXPECT_NE(std::find(eos.begin(), eos.end(), c2.tokens.back()), eos.end());
  } else {
    EXPECT_EQ(c2.tokens, ref_[0]);  // no EOS came up: same as ignore_eos
  }
}

TEST_F(EngineTest, StopStringCutsTheText) {
  auto full = run_one(*engine_, greedy_request("full", prompt_of(34, 2), 24));
  ASSERT_GE(full.text.size(), 6u);
  // A stop string from the middle of the text.
  std::string stop = full.text.substr(full.text.size() / 2, 2);
  size_t pos = full.text.find(stop);
  EngineRequest r = greedy_request("stopstr", prompt_of(34, 2), 24);
  r.sampling.stop = {stop};
  auto c = run_one(*engine_, r);
  EXPECT_EQ(c.finish, FinishReason::kStop);
  EXPECT_EQ(c.stop_reason, stop);
  EXPECT_EQ(c.text, full.text.substr(0, pos));
  r.request_id = "stopstr2";
  r.sampling.include_stop_str_in_output = true;
  auto c2 = run_one(*engine_, r);
  EXPECT_EQ(c2.text, full.text.substr(0, pos + stop.size()));
}

TEST_F(EngineTest, AbortFinishesWithAbortAndFreesBlocks) {
  EngineConfig cfg = tiny_config();
  auto e = make_engine(cfg);
  EngineRequest r = greedy_request("long", prompt_of(40, 5), 400);
  auto ch = e->add_request(std::move(r));
  ASSERT_TRUE(ch.ok());
  RequestOutput o;
  ASSERT_EQ((*ch)->pop(o, std::chrono::seconds(60)), OutputChannel::RecvStatus::kOk);
  e->abort_request("long");
  e->abort_request("unknown-id");  // ignored
  auto c = collect(**ch);
  EXPECT_EQ(c.finish, FinishReason::kAbort);
  EXPECT_LT(c.last.completion_tokens, 400);
  // Abort while still waiting (the queue is blocked by a busy engine is not needed: abort right away).
  auto ch2 = e->add_request(greedy_request("quick", prompt_of(30, 6), 400));
  e->abort_request("quick");
  EXPECT_EQ(collect(**ch2).finish, FinishReason::kAbort);
  for (int i = 0; i < 100 && e->metrics().num_used_blocks != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(e->metrics().num_used_blocks, 0);
  EXPECT_EQ(e->metrics().num_running, 0);
  // The id can be reused after it finished.
  EXPECT_TRUE(e->add_request(greedy_request("long", prompt_of(10), 2)).ok());
}

TEST_F(EngineTest, AddRequestValidation) {
  EngineRequest empty = greedy_request("e", {}, 4);
  EXPECT_EQ(engine_->add_request(empty).status().code(), StatusCode::kInvalidArgument);
  EngineRequest too_long = greedy_request("t", prompt_of(500), 20);
  EXPECT_EQ(engine_->add_request(too_long).status().code(), StatusCode::kOutOfRange);
  EngineRequest bad_id = greedy_request("b", {1, 2, 100000}, 4);
  EXPECT_EQ(engine_->add_request(bad_id).status().code(), StatusCode::kInvalidArgument);
  EngineRequest bad_param = greedy_request("bp", prompt_of(4), 4);
  bad_param.sampling.top_p = 0.0f;
  EXPECT_EQ(engine_->add_request(bad_param).status().code(), StatusCode::kInvalidArgument);
  auto ch = engine_->add_request(greedy_request("dup", prompt_of(10), 200));
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(engine_->add_request(greedy_request("dup", prompt_of(10), 4)).status().code(), StatusCode::kAlreadyExists);
  engine_->abort_request("dup");
  collect(**ch);
}

TEST_F(EngineTest, ShutdownAbortsOutstandingAndRefusesNewRequests) {
  auto e = make_engine(tiny_config());
  auto ch = e->add_request(greedy_request("s", prompt_of(30), 400));
  ASSERT_TRUE(ch.ok());
  // No grace period: the tiny model can generate 400 tokens in ~40 ms, so any deadline races the request.
  e->shutdown(std::chrono::milliseconds(0));
  auto c = collect(**ch, std::chrono::seconds(5));
  EXPECT_FALSE(c.timed_out);
  EXPECT_EQ(c.finish, FinishReason::kAbort);
  EXPECT_EQ(e->add_request(greedy_request("x", prompt_of(3), 2)).status().code(), StatusCode::kUnavailable);
}

TEST(EngineConfigTest, InvalidConfigsAreRejected) {
  EngineConfig c = tiny_config();
  c.block_size = 10;
  EXPECT_FALSE(Engine::create(c).ok());
  c = tiny_config();
  c.model_dir = "/nonexistent/model";
  EXPECT_FALSE(Engine::create(c).ok());
}

TEST(TextStream, HoldsBackPossibleStopPrefixesAndCutsAtTheMatch) {
  SamplingParams p;
  p.stop = {"END", "xy"};
  TextStream s(nullptr, p);
  auto a = s.push_text("hello E", true);
  EXPECT_EQ(a.text, "hello ");  // "E" may start "END"
  auto b = s.push_text("N", true);
  EXPECT_EQ(b.text, "");
  auto c = s.push_text("Dtail", true);
  EXPECT_EQ(c.text, "");
  EXPECT_EQ(c.stop_string, "END");
  EXPECT_EQ(s.finish(), "");

  TextStream s2(nullptr, p);
  EXPECT_EQ(s2.push_text("abE", true).text, "ab");
  EXPECT_EQ(s2.push_text("q", true).text, "Eq");  // not a stop after all
  EXPECT_EQ(s2.push_text("x", false).text, "");   // held (prefix of "xy")
  EXPECT_EQ(s2.finish(), "x");

  p.include_stop_str_in_output = true;
  TextStream s3(nullptr, p);
  auto d = s3.push_text("12xy34", true);
  EXPECT_EQ(d.text, "12xy");
  EXPECT_EQ(d.stop_string, "xy");
}

}  // namespace
}  // namespace tandem
