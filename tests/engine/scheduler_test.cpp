// Scheduler units with fake requests (no model): token budget, chunking, decodes first, preemption,
// abort in every state, remote-prefill admission and leases, and that every block comes back.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "engine/kv_connector.h"

namespace tandem {
namespace {

class FakeConnector : public KvConnector {
 public:
  Status initialize(const KvConnectorContext&) override { return Status::Ok(); }
  KvLoadFailurePolicy failure_policy() const override { return KvLoadFailurePolicy::kRecompute; }
  Result<KvRole> classify(const EngineRequest&, RemotePrefillInfo*) override { return KvRole::kNone; }
  void start_load(const std::string& id, std::vector<int32_t> blocks, int first_block) override {
    loads.push_back({id, blocks, first_block});
  }
  void cancel_load(const std::string& id) override { cancelled.push_back(id); }
  std::string on_prefill_finished(const std::string&, std::span<const int32_t>, int32_t, int32_t) override {
    return "{}";
  }
  KvConnectorEvents poll() override { return {}; }
  void wait_for_events(std::chrono::milliseconds) override {}
  bool has_pending_work() const override { return false; }
  KvConnectorMetrics metrics() const override { return {}; }
  void shutdown() override {}

  struct Load {
    std::string id;
    std::vector<int32_t> blocks;
    int first_block;
  };
  std::vector<Load> loads;
  std::vector<std::string> cancelled;
};

std::unique_ptr<Request> make_req(const std::string& id, int prompt_len, int first_token = 1) {
  auto r = std::make_unique<Request>();
  r->id = id;
  r->tokens.resize(prompt_len);
  std::iota(r->tokens.begin(), r->tokens.end(), first_token);
  r->num_prompt_tokens = prompt_len;
  return r;
}

// Plays the engine's part after a step: computed tokens advance, samplers append a token.
void finish_step(Scheduler& s, const SchedulerOutput& out, int32_t token = 7) {
  s.on_step_computed(out);
  for (const auto& seq : out.seqs)
    if (seq.samples) seq.req->tokens.push_back(token);
}

TEST(Scheduler, PrefillThenDecodeWithinBudget) {
  BlockManager bm(16, 4, true);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 10);
  s.add(a.get());
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].num_new_tokens, 10);
  EXPECT_TRUE(out.seqs[0].samples);
  EXPECT_EQ(out.num_decodes, 0);
  finish_step(s, out);
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.num_decodes, 1);
  EXPECT_EQ(out.seqs[0].num_new_tokens, 1);
  EXPECT_EQ(a->blocks.blocks.size(), 3u);  // 11 tokens in 4-token blocks
}

TEST(Scheduler, ChunkedPrefillRespectsBudgetAndSamplesOnlyAtTheEnd) {
  BlockManager bm(16, 4, true);
  Scheduler s({8, 6}, bm, nullptr);
  auto a = make_req("a", 14);
  s.add(a.get());
  std::vector<int> chunks;
  for (int i = 0; i < 3; ++i) {
    auto out = s.schedule();
    ASSERT_EQ(out.seqs.size(), 1u);
    chunks.push_back(out.seqs[0].num_new_tokens);
    EXPECT_EQ(out.seqs[0].samples, i == 2);
    EXPECT_LE(out.num_tokens, 6);
    finish_step(s, out);
  }
  EXPECT_EQ(chunks, (std::vector<int>{6, 6, 2}));
  EXPECT_EQ(a->num_output_tokens(), 1);
}

TEST(Scheduler, DecodesComeFirstThenPrefillsFillTheBudget) {
  BlockManager bm(32, 4, true);
  Scheduler s({8, 8}, bm, nullptr);
  auto a = make_req("a", 4), b = make_req("b", 4, 100), c = make_req("c", 20, 200);
  s.add(a.get());
  s.add(b.get());
  finish_step(s, s.schedule());  // a and b prefill together (8 tokens)
  s.add(c.get());
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 3u);
  EXPECT_EQ(out.num_decodes, 2);
  EXPECT_EQ(out.seqs[0].req, a.get());
  EXPECT_EQ(out.seqs[1].req, b.get());
  EXPECT_EQ(out.seqs[2].req, c.get());
  EXPECT_EQ(out.seqs[2].num_new_tokens, 6);  // 8 - 2 decodes
  EXPECT_FALSE(out.seqs[2].samples);
}

TEST(Scheduler, MaxNumSeqsLimitsTheBatch) {
  BlockManager bm(32, 4, true);
  Scheduler s({2, 100}, bm, nullptr);
  auto a = make_req("a", 3), b = make_req("b", 3, 10), c = make_req("c", 3, 20);
  s.add(a.get());
  s.add(b.get());
  s.add(c.get());
  auto out = s.schedule();
  EXPECT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(s.num_waiting(), 1u);
}

TEST(Scheduler, PrefixHitSkipsCachedBlocksButRecomputesTheLastToken) {
  BlockManager bm(32, 4, true);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 8);
  s.add(a.get());
  finish_step(s, s.schedule());
  auto b = make_req("b", 8);  // identical prompt: both blocks cached, but the last token is recomputed
  s.add(b.get());
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(out.seqs[1].req, b.get());
  EXPECT_EQ(b->num_computed_tokens, 4);
  EXPECT_EQ(out.seqs[1].num_new_tokens, 4);
  EXPECT_EQ(b->num_cached_tokens, 4);
  EXPECT_EQ(b->blocks.blocks[0], a->blocks.blocks[0]);
  EXPECT_EQ(s.prefix_hits(), 4u);
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOutAndRecomputesLater) {
  BlockManager bm(4, 4, false);  // 16 token slots
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 8), b = make_req("b", 8, 50);
  s.add(a.get());
  s.add(b.get());
  finish_step(s, s.schedule());  // both prefilled: 4 blocks used, each has 9 tokens now
  EXPECT_EQ(bm.num_free_blocks(), 0);
  auto out = s.schedule();  // a needs a 3rd block: b (newest) is preempted
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], b.get());
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].req, a.get());
  EXPECT_EQ(b->state, RequestState::kWaiting);
  EXPECT_EQ(b->num_computed_tokens, 0);
  EXPECT_EQ(s.num_preemptions(), 1u);
  finish_step(s, out);
  s.remove(a.get());  // a finishes; b is recomputed: all 9 tokens (prompt + its output) in one chunk
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].req, b.get());
  EXPECT_EQ(out.seqs[0].num_new_tokens, 9);
  EXPECT_TRUE(out.seqs[0].samples);
  finish_step(s, out);
  s.remove(b.get());
  EXPECT_EQ(bm.num_free_blocks(), 4);
}

TEST(Scheduler, DecodeNeedingABlockPreemptsAnotherRunningRequest) {
  BlockManager bm(3, 4, false);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 8), b = make_req("b", 4, 50);
  s.add(a.get());
  s.add(b.get());
  auto out = s.schedule();  // a: 2 blocks, b: 1 block -> 3 used, all prefilled
  finish_step(s, out);
  out = s.schedule();  // a's decode needs a 3rd block: preempts b; b's decode then ... b is gone
  EXPECT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.seqs.size(), 1u);
  s.remove(a.get());
  s.remove(b.get());
  EXPECT_EQ(bm.num_free_blocks(), 3);
}

TEST(Scheduler, AbortInEveryStateFreesAllBlocks) {
  FakeConnector conn;
  BlockManager bm(16, 4, true);
  Scheduler s({8, 10}, bm, &conn);
  auto running = make_req("run", 6), chunking = make_req("chunk", 12, 100), waiting = make_req("wait", 5, 300);
  auto remote = make_req("remote", 9, 500);
  remote->kv_role = KvRole::kRemotePrefill;
  remote->forced_first_token = 42;
  s.add(running.get());
  s.add(chunking.get());
  finish_step(s, s.schedule());  // run prefilled (6), chunk got 4 of 12
  EXPECT_EQ(chunking->num_computed_tokens, 4);
  s.add(remote.get());
  s.add(waiting.get());
  auto out = s.schedule();  // decode run, chunk continues (9 more? budget 10-1), remote admitted
  EXPECT_EQ(remote->state, RequestState::kWaitingForRemoteKv);
  ASSERT_EQ(out.remote_loads.size(), 1u);  // the engine starts it (KvConnector::start_load)
  EXPECT_EQ(out.remote_loads[0].req, remote.get());
  EXPECT_EQ(out.remote_loads[0].block_ids.size(), 3u);
  EXPECT_EQ(out.remote_loads[0].first_block, 0);
  EXPECT_TRUE(conn.loads.empty());
  finish_step(s, out);

  s.remove(waiting.get());
  s.remove(running.get());
  s.remove(chunking.get());
  s.remove(remote.get());
  EXPECT_EQ(conn.cancelled, std::vector<std::string>{"remote"});
  EXPECT_FALSE(s.has_unfinished());
  // The cancelled transfer still owns its 3 blocks until it reports.
  EXPECT_EQ(bm.num_used_blocks(), 3);
  EXPECT_EQ(s.on_load_finished("remote", false), nullptr);
  EXPECT_EQ(bm.num_used_blocks(), 0);
  EXPECT_EQ(bm.num_free_blocks(), 16);
}

TEST(Scheduler, RemotePrefillSuccessMakesThePromptComputedWithTheFirstToken) {
  FakeConnector conn;
  BlockManager bm(16, 4, true);
  Scheduler s({8, 100}, bm, &conn);
  // A local request caches the first block of the prompt the remote one shares.
  auto local = make_req("local", 6);
  s.add(local.get());
  finish_step(s, s.schedule());
  auto remote = make_req("remote", 10);
  remote->kv_role = KvRole::kRemotePrefill;
  remote->forced_first_token = 42;
  s.add(remote.get());
  auto out = s.schedule();
  EXPECT_EQ(out.seqs.size(), 1u);  // only local's decode; the remote one loads
  ASSERT_EQ(out.remote_loads.size(), 1u);
  EXPECT_EQ(out.remote_loads[0].first_block, 1);  // block 0 is a local prefix hit
  EXPECT_EQ(out.remote_loads[0].block_ids.size(), 2u);
  EXPECT_EQ(remote->num_cached_tokens, 4);
  EXPECT_EQ(remote->num_remote_tokens, 6);
  EXPECT_EQ(s.num_waiting_for_remote_kv(), 1u);
  finish_step(s, out);
  Request* r = s.on_load_finished("remote", true);
  ASSERT_EQ(r, remote.get());
  EXPECT_EQ(remote->num_computed_tokens, 10);
  EXPECT_EQ(remote->num_output_tokens(), 1);
  EXPECT_EQ(remote->output()[0], 42);
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(out.num_decodes, 2);
  s.remove(local.get());
  s.remove(remote.get());
  EXPECT_EQ(bm.num_used_blocks(), 0);
}

TEST(Scheduler, RemotePrefillFailureRecomputesLocally) {
  FakeConnector conn;
  BlockManager bm(16, 4, true);
  Scheduler s({8, 100}, bm, &conn);
  auto remote = make_req("remote", 10);
  remote->kv_role = KvRole::kRemotePrefill;
  remote->forced_first_token = 42;
  s.add(remote.get());
  EXPECT_TRUE(s.schedule().empty());
  Request* r = s.on_load_finished("remote", false);
  ASSERT_EQ(r, remote.get());
  EXPECT_TRUE(remote->remote_load_failed);
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].num_new_tokens, 10);
  EXPECT_TRUE(out.seqs[0].samples);
  s.remove(remote.get());
  EXPECT_EQ(bm.num_used_blocks(), 0);
}

TEST(Scheduler, LeaseKeepsBlocksUntilReleased) {
  BlockManager bm(8, 4, true);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 6);
  s.add(a.get());
  finish_step(s, s.schedule());
  auto ids = s.remove_and_lease(a.get());
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(bm.num_used_blocks(), 2);
  EXPECT_EQ(s.num_leases(), 1u);
  s.release_lease("a");
  EXPECT_EQ(bm.num_used_blocks(), 0);
  s.release_lease("a");  // unknown: ignored
}

TEST(Scheduler, WaitingRequestWaitsForBlocksInsteadOfFailing) {
  BlockManager bm(2, 4, false);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 7), b = make_req("b", 5, 30);
  s.add(a.get());
  s.add(b.get());
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(s.num_waiting(), 1u);
  EXPECT_TRUE(b->blocks.empty());
  s.remove(a.get());
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].req, b.get());
  s.remove(b.get());
}

// The overlapped loop: a token still on the device (pending_rows) counts as known to the scheduler, so
// the request decodes it next step; a request whose pending token is its last is not scheduled; a
// preempted request waits for its pending token before it is admitted again; a request finished while its
// step was on the device is skipped by on_step_computed.
TEST(Scheduler, PendingTokensDecodeNextStepUnlessTheyEndTheRequest) {
  BlockManager bm(16, 4, false);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 5), b = make_req("b", 5, 50);
  s.add(a.get());
  s.add(b.get());
  auto out = s.schedule();  // both prefill and sample
  ASSERT_EQ(out.seqs.size(), 2u);
  a->pending_rows.push_back(0);
  b->pending_rows.push_back(1);
  b->stop_after_pending = true;  // b's pending token is its last
  s.on_step_computed(out);
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].req, a.get());  // a decodes its pending token; b is not scheduled
  EXPECT_EQ(out.num_decodes, 1);
  EXPECT_TRUE(out.seqs[0].samples);
  // The step's tokens come back: a's pending token becomes known, b finishes meanwhile.
  a->tokens.push_back(9);
  a->pending_rows.clear();
  s.remove(b.get());
  s.on_step_computed(out);
  EXPECT_EQ(a->num_computed_tokens, 6);
  EXPECT_EQ(b->num_computed_tokens, 5);
  s.remove(a.get());
  EXPECT_EQ(bm.num_used_blocks(), 0);
}

TEST(Scheduler, WaitingRequestWithAPendingTokenIsNotAdmitted) {
  BlockManager bm(16, 4, false);
  Scheduler s({8, 100}, bm, nullptr);
  auto a = make_req("a", 5);
  a->pending_rows.push_back(0);  // e.g. preempted while its last token was on the device
  s.add(a.get());
  EXPECT_TRUE(s.schedule().empty());
  a->tokens.push_back(3);
  a->pending_rows.clear();
  auto out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].num_new_tokens, 6);
  s.remove(a.get());
}

}  // namespace
}  // namespace tandem
