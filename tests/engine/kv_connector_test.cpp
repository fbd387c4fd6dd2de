// The engine's disaggregation paths with fake KvConnectors over two engines in one process: a producer
// (prefill, first token, blocks leased until released) and a consumer (blocks loaded by copying the
// producer's pool; success and failure -> recompute both give the colocated engine's tokens).
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine/kv_connector.h"
#include "engine_test_util.h"

namespace tandem {
namespace {

using namespace tandem::testing;

class FakeConnectorBase : public KvConnector {
 public:
  Status initialize(const KvConnectorContext& ctx) override {
    ctx_ = ctx;
    return Status::Ok();
  }
  KvLoadFailurePolicy failure_policy() const override { return policy; }
  void start_load(const std::string&, std::vector<int32_t>, int) override {}
  void cancel_load(const std::string&) override {}
  std::string on_prefill_finished(const std::string&, std::span<const int32_t>, int32_t, int32_t) override { return "{}"; }
  KvConnectorEvents poll() override {
    std::lock_guard lock(mu_);
    KvConnectorEvents ev;
    std::swap(ev, events_);
    return ev;
  }
  void wait_for_events(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !events_.loads_finished.empty() || !events_.leases_released.empty(); });
  }
  bool has_pending_work() const override {
    std::lock_guard lock(mu_);
    return pending_ > 0;
  }
  KvConnectorMetrics metrics() const override { return {}; }
  void shutdown() override {}

  KvLoadFailurePolicy policy = KvLoadFailurePolicy::kRecompute;
  KvConnectorContext ctx_;

 protected:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  KvConnectorEvents events_;
  int pending_ = 0;
};

class FakeProducer : public FakeConnectorBase {
 public:
  Result<KvRole> classify(const EngineRequest& r, RemotePrefillInfo*) override {
    if (r.kv_transfer_params_json && r.kv_transfer_params_json->find("do_remote_decode") != std::string::npos)
      return KvRole::kRemoteDecode;
    return KvRole::kNone;
  }
  std::string on_prefill_finished(const std::string& id, std::span<const int32_t> blocks, int32_t n,
                                  int32_t first) override {
    std::lock_guard lock(mu_);
    leased[id] = std::vector<int32_t>(blocks.begin(), blocks.end());
    ++pending_;
    return fmt::format(R"({{"remote_request_id":"{}","num_prompt_tokens":{},"first_token_id":{}}})", id, n, first);
  }
  void release(const std::string& id) {
    std::lock_guard lock(mu_);
    events_.leases_released.push_back(id);
    --pending_;
    cv_.notify_all();
  }
  std::vector<int32_t> blocks_of(const std::string& id) {
    std::lock_guard lock(mu_);
    return leased.at(id);
  }
  std::unordered_map<std::string, std::vector<int32_t>> leased;
};

class FakeConsumer : public FakeConnectorBase {
 public:
  explicit FakeConsumer(FakeProducer* producer) : producer_(producer) {}
  Result<KvRole> classify(const EngineRequest& r, RemotePrefillInfo* info) override {
    *info = next_info;
    return KvRole::kRemotePrefill;
  }
  void start_load(const std::string& id, std::vector<int32_t> local, int first_block) override {
    Status st = Status::Ok();
    if (fail) {
      st = UnavailableError("producer unreachable (test)");
    } else {
      const KvCacheView& src = producer_->ctx_.kv;
      const size_t bb = src.layout.block_bytes();
      EXPECT_EQ(src.layout, ctx_.kv.layout);
      for (size_t i = 0; i < local.size(); ++i) {
        std::memcpy(static_cast<char*>(ctx_.kv.base) + bb * local[i],
                    static_cast<const char*>(src.base) + bb * remote_blocks.at(first_block + i), bb);
      }
    }
    std::lock_guard lock(mu_);
    loads_started++;
    blocks_loaded += static_cast<int>(local.size());
    events_.loads_finished.emplace_back(id, st);
    cv_.notify_all();
  }
  RemotePrefillInfo next_info;
  std::vector<int32_t> remote_blocks;
  bool fail = false;
  int loads_started = 0;
  int blocks_loaded = 0;

 private:
  FakeProducer* producer_;
};

TEST(KvConnectorPaths, ProducerLeaseThenConsumerLoadOrRecomputeGiveColocatedTokens) {
  const auto prompt = prompt_of(37, 4);
  auto colocated = make_engine(tiny_config());
  auto ref = run_one(*colocated, greedy_request("ref", prompt, 16)).tokens;
  ASSERT_EQ(ref.size(), 16u);

  auto producer_conn = std::make_unique<FakeProducer>();
  FakeProducer* prod = producer_conn.get();
  auto producer = make_engine(tiny_config(), std::move(producer_conn));
  EngineRequest pre = greedy_request("r1", prompt, 1);
  pre.kv_transfer_params_json = R"({"do_remote_decode": true})";
  auto p_out = run_one(*producer, pre);
  ASSERT_EQ(p_out.tokens.size(), 1u);
  EXPECT_EQ(p_out.tokens[0], ref[0]);
  ASSERT_TRUE(p_out.last.kv_transfer_params_json.has_value());
  EXPECT_NE(p_out.last.kv_transfer_params_json->find("\"first_token_id\":" + std::to_string(ref[0])), std::string::npos);
  auto leased = prod->blocks_of("r1");
  EXPECT_EQ(leased.size(), 3u);  // 37 tokens in 16-token blocks
  EXPECT_EQ(producer->metrics().num_used_blocks, 3);  // kept by the lease

  for (bool fail : {false, true}) {
    auto consumer_conn = std::make_unique<FakeConsumer>(prod);
    FakeConsumer* cons = consumer_conn.get();
    cons->remote_blocks = leased;
    cons->next_info = {37, ref[0]};
    cons->fail = fail;
    auto consumer = make_engine(tiny_config(), std::move(consumer_conn));
    EngineRequest dec = greedy_request("r1", prompt, 16);
    dec.kv_transfer_params_json = R"({"do_remote_prefill": true})";
    auto c = run_one(*consumer, dec);
    EXPECT_EQ(cons->loads_started, 1);
    // The first token came from the producer: not emitted again, but counted.
    EXPECT_EQ(c.tokens, std::vector<int32_t>(ref.begin() + 1, ref.end())) << "fail=" << fail;
    EXPECT_EQ(c.last.completion_tokens, 16);
    EXPECT_EQ(c.finish, FinishReason::kLength);
    EXPECT_EQ(c.last.remote_prompt_tokens, fail ? 0 : 37);
    EXPECT_EQ(consumer->metrics().num_used_blocks, 0);
  }

  prod->release("r1");
  for (int i = 0; i < 200 && producer->metrics().num_used_blocks != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(producer->metrics().num_used_blocks, 0);
}

TEST(KvConnectorPaths, FailPolicyFinishesWithErrorAndConsumerReusesLocalPrefix) {
  auto producer_conn = std::make_unique<FakeProducer>();
  FakeProducer* prod = producer_conn.get();
  auto producer = make_engine(tiny_config(), std::move(producer_conn));
  const auto prompt = prompt_of(40, 8);
  EngineRequest pre = greedy_request("a", prompt, 1);
  pre.kv_transfer_params_json = R"({"do_remote_decode": true})";
  auto p_out = run_one(*producer, pre);
  ASSERT_EQ(p_out.tokens.size(), 1u);

  auto consumer_conn = std::make_unique<FakeConsumer>(prod);
  FakeConsumer* cons = consumer_conn.get();
  cons->remote_blocks = prod->blocks_of("a");
  cons->next_info = {40, p_out.tokens[0]};
  cons->policy = KvLoadFailurePolicy::kFail;
  cons->fail = true;
  auto consumer = make_engine(tiny_config(), std::move(consumer_conn));
  EngineRequest dec = greedy_request("a", prompt, 8);
  dec.kv_transfer_params_json = "{}";
  auto c = run_one(*consumer, dec);
  EXPECT_EQ(c.finish, FinishReason::kError);
  EXPECT_FALSE(c.last.error.ok());
  EXPECT_EQ(consumer->metrics().num_used_blocks, 0);

  // A second consumer request whose first 32 tokens are cached locally loads only the last block.
  cons->fail = false;
  cons->policy = KvLoadFailurePolicy::kRecompute;
  {
    // Warm the consumer's prefix cache with a local request on the same prompt.
    EngineRequest local = greedy_request("warm", prompt, 2);
    auto saved = cons->next_info;
    cons->next_info = {};  // classify is only called when kv_transfer_params are present
    run_one(*consumer, local);
    cons->next_info = saved;
  }
  dec.request_id = "a2";
  auto c2 = run_one(*consumer, dec);
  EXPECT_EQ(c2.last.cached_prompt_tokens, 32);
  EXPECT_EQ(c2.last.remote_prompt_tokens, 8);
  EXPECT_EQ(cons->blocks_loaded, 3 + 1);  // failed load (3 blocks) + one block
  prod->release("a");
}

}  // namespace
}  // namespace tandem
