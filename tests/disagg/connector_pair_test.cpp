// Two DisaggKvConnectors in one process (a producer and a consumer over loopback tcp), driven the way
// the engine drives them, with host KV pools filled with known patterns: blocks arrive intact, leases
// end on the consumer's notification or on expiry, and every failure ends in exactly one event.
#include <gtest/gtest.h>

#include <numeric>
#include <thread>

#include "disagg/disagg_connector.h"
#include "engine/engine.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

constexpr int kBlockSize = 4;

struct Side {
  std::vector<float> pool;
  std::unique_ptr<DisaggKvConnector> conn;
  KvLayout layout{2, 2, 4, kBlockSize, DType::kF32};
  float* block(int b) { return pool.data() + static_cast<size_t>(b) * layout.elems_per_block(); }
};

Side make_side(KvTransferRole role, std::string engine_id, int64_t num_blocks = 64,
               std::chrono::milliseconds lease = 30000ms, std::chrono::milliseconds timeout = 5000ms,
               std::string model_fp = "model-A", KvLoadFailurePolicy policy = KvLoadFailurePolicy::kRecompute) {
  Side s;
  s.pool.assign(static_cast<size_t>(num_blocks * s.layout.elems_per_block()), 0.0f);
  KvTransferConfig cfg;
  cfg.role = role;
  cfg.transport = TransportKind::kAuto;
  cfg.lease_duration = lease;
  cfg.transfer_timeout = timeout;
  cfg.failure_policy = policy;
  s.conn = std::make_unique<DisaggKvConnector>(cfg);
  KvConnectorContext ctx;
  ctx.kv = KvCacheView{s.pool.data(), num_blocks, s.layout, Device::kCpu};
  ctx.model_fingerprint = model_fp;
  ctx.tokenizer_fingerprint = "tok";
  ctx.engine_id = std::move(engine_id);
  Status st = s.conn->initialize(ctx);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return s;
}

EngineRequest request(const std::string& id, int n, std::optional<std::string> params) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_token_ids.resize(n);
  std::iota(r.prompt_token_ids.begin(), r.prompt_token_ids.end(), 1);
  r.kv_transfer_params_json = std::move(params);
  return r;
}

// Waits (as the engine loop does) for the load of `id` to finish; returns its status.
Status wait_load(KvConnector& c, const std::string& id, std::chrono::milliseconds limit = 10000ms) {
  TimePoint end = Clock::now() + limit;
  while (Clock::now() < end) {
    c.wait_for_events(100ms);
    for (auto& [rid, st] : c.poll().loads_finished) {
      if (rid == id) return st;
    }
  }
  return DeadlineExceededError("test: no loads_finished event for {}", id);
}

// Polls the producer until `id` is released.
bool wait_released(KvConnector& c, const std::string& id, std::chrono::milliseconds limit = 10000ms) {
  TimePoint end = Clock::now() + limit;
  while (Clock::now() < end) {
    c.wait_for_events(100ms);
    for (auto& rid : c.poll().leases_released) {
      if (rid == id) return true;
    }
  }
  return false;
}

// Producer side of one request: classify + prefill finished with blocks filled by a pattern.
std::string produce(Side& p, const std::string& id, int n, std::vector<int32_t> blocks, int32_t first_token) {
  RemotePrefillInfo info;
  auto role = p.conn->classify(request(id, n, R"({"do_remote_decode":true})"), &info);
  EXPECT_TRUE(role.ok() && *role == KvRole::kRemoteDecode);
  for (int32_t b : blocks) {
    float* d = p.block(b);
    for (int64_t i = 0; i < p.layout.elems_per_block(); ++i) d[i] = static_cast<float>(b * 100000 + i) + 0.5f;
  }
  return p.conn->on_prefill_finished(id, blocks, n, first_token);
}

TEST(DisaggConnector, ProducerToConsumerMovesBlocksAndReleasesLease) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-1");
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-1");
  for (int n : {1, 3, 4, 5, 8, 9, 37}) {
    std::string id = "req-" + std::to_string(n);
    int nblocks = (n + kBlockSize - 1) / kBlockSize;
    std::vector<int32_t> pblocks;
    for (int i = 0; i < nblocks; ++i) pblocks.push_back(10 + 2 * i);  // scattered: one descriptor each
    std::string params = produce(producer, id, n, pblocks, 4242);
    EXPECT_NE(params.find("\"do_remote_prefill\":true"), std::string::npos);
    EXPECT_EQ(producer.conn->num_leases(), 1u);

    RemotePrefillInfo info;
    auto role = consumer.conn->classify(request(id, n, params), &info);
    ASSERT_TRUE(role.ok()) << role.status().to_string();
    EXPECT_EQ(*role, KvRole::kRemotePrefill);
    EXPECT_EQ(info.first_token_id, 4242);
    EXPECT_EQ(info.num_prompt_tokens, n);
    std::vector<int32_t> cblocks;
    for (int i = 0; i < nblocks; ++i) cblocks.push_back(i);  // consecutive locally
    consumer.conn->start_load(id, cblocks, 0);
    Status st = wait_load(*consumer.conn, id);
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (int i = 0; i < nblocks; ++i) {
      ASSERT_EQ(0, memcmp(consumer.block(cblocks[i]), producer.block(pblocks[i]), producer.layout.block_bytes())) << "block " << i;
    }
    EXPECT_TRUE(wait_released(*producer.conn, id));
    EXPECT_EQ(producer.conn->num_leases(), 0u);
    EXPECT_FALSE(consumer.conn->has_pending_work());
  }
  KvConnectorMetrics m = consumer.conn->metrics();
  EXPECT_EQ(m.transfers_ok, 7u);
  EXPECT_EQ(m.transfers_failed, 0u);
  EXPECT_GT(m.bytes_moved, 0u);
  EXPECT_EQ(m.transfer_seconds.size(), 7u);
  EXPECT_TRUE(consumer.conn->metrics().transfer_seconds.empty());  // drained
}

TEST(DisaggConnector, LocalPrefixHitsLoadOnlyTheRest) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-2");
  Side consumer = make_side(KvTransferRole::kBoth, "cons-2");
  std::string params = produce(producer, "r", 17, {1, 2, 3, 4, 5}, 7);
  ASSERT_TRUE(consumer.conn->classify(request("r", 17, params), nullptr).ok());
  std::fill(consumer.pool.begin(), consumer.pool.end(), -1.0f);
  consumer.conn->start_load("r", {20, 21}, 3);  // blocks 0..2 hit locally
  ASSERT_TRUE(wait_load(*consumer.conn, "r").ok());
  EXPECT_EQ(0, memcmp(consumer.block(20), producer.block(4), producer.layout.block_bytes()));
  EXPECT_EQ(0, memcmp(consumer.block(21), producer.block(5), producer.layout.block_bytes()));
  EXPECT_EQ(consumer.block(19)[0], -1.0f);
  EXPECT_TRUE(wait_released(*producer.conn, "r"));

  // Everything hit locally: an empty load reports at once and still frees the producer's lease.
  std::string params2 = produce(producer, "r2", 8, {6, 7}, 7);
  ASSERT_TRUE(consumer.conn->classify(request("r2", 8, params2), nullptr).ok());
  consumer.conn->start_load("r2", {}, 2);
  ASSERT_TRUE(wait_load(*consumer.conn, "r2").ok());
  EXPECT_TRUE(wait_released(*producer.conn, "r2"));
}

TEST(DisaggConnector, ManyConcurrentLoads) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-3", 256);
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-3", 256);
  const int kRequests = 40;
  for (int r = 0; r < kRequests; ++r) {
    std::string id = "c" + std::to_string(r);
    int n = 1 + (r * 7) % 20;
    int nb = (n + kBlockSize - 1) / kBlockSize;
    std::vector<int32_t> pb, cb;
    for (int i = 0; i < nb; ++i) {
      pb.push_back(r * 5 + i);
      cb.push_back(255 - (r * 5 + i));
    }
    std::string params = produce(producer, id, n, pb, r);
    ASSERT_TRUE(consumer.conn->classify(request(id, n, params), nullptr).ok());
    consumer.conn->start_load(id, cb, 0);
  }
  int ok = 0;
  TimePoint end = Clock::now() + 20s;
  while (ok < kRequests && Clock::now() < end) {
    consumer.conn->wait_for_events(100ms);
    for (auto& [id, st] : consumer.conn->poll().loads_finished) {
      EXPECT_TRUE(st.ok()) << id << ": " << st.to_string();
      ++ok;
    }
  }
  EXPECT_EQ(ok, kRequests);
  end = Clock::now() + 10s;
  while (producer.conn->num_leases() > 0 && Clock::now() < end) {
    producer.conn->wait_for_events(100ms);
    (void)producer.conn->poll();
  }
  EXPECT_EQ(producer.conn->num_leases(), 0u);
}

TEST(DisaggConnector, LeaseExpiryFreesBlocksAndLateConsumerRecomputes) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-4", 64, 300ms, 200ms);
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-4");
  std::string params = produce(producer, "late", 8, {1, 2}, 5);
  auto t0 = Clock::now();
  EXPECT_TRUE(wait_released(*producer.conn, "late", 5000ms));
  EXPECT_GE(seconds_between(t0, Clock::now()), 0.25);
  EXPECT_EQ(producer.conn->metrics().leases_expired, 1u);
  EXPECT_EQ(producer.conn->num_leases(), 0u);

  ASSERT_TRUE(consumer.conn->classify(request("late", 8, params), nullptr).ok());
  consumer.conn->start_load("late", {0, 1}, 0);
  Status st = wait_load(*consumer.conn, "late");
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.to_string();
  EXPECT_NE(st.message().find("lease"), std::string::npos);
  EXPECT_EQ(consumer.conn->metrics().recomputes, 1u);
}

TEST(DisaggConnector, FingerprintMismatchFailsAndFreesTheLease) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-5");
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-5", 64, 30000ms, 5000ms, "model-B");
  std::string params = produce(producer, "m", 8, {1, 2}, 5);
  ASSERT_TRUE(consumer.conn->classify(request("m", 8, params), nullptr).ok());
  consumer.conn->start_load("m", {0, 1}, 0);
  Status st = wait_load(*consumer.conn, "m");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.to_string();
  EXPECT_NE(st.message().find("model config"), std::string::npos);
  EXPECT_TRUE(wait_released(*producer.conn, "m"));  // told to release, no need to wait for expiry
  EXPECT_EQ(consumer.block(0)[0], 0.0f);            // nothing was written
}

TEST(DisaggConnector, ProducerGoneFailsFast) {
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-6", 64, 30000ms, 3000ms, "model-A",
                            KvLoadFailurePolicy::kFail);
  std::string params;
  {
    Side producer = make_side(KvTransferRole::kProducer, "prod-6");
    params = produce(producer, "g", 8, {1, 2}, 5);
  }
  ASSERT_TRUE(consumer.conn->classify(request("g", 8, params), nullptr).ok());
  auto t0 = Clock::now();
  consumer.conn->start_load("g", {0, 1}, 0);
  Status st = wait_load(*consumer.conn, "g");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.to_string();
  EXPECT_LT(seconds_between(t0, Clock::now()), 3.0);
  EXPECT_EQ(consumer.conn->failure_policy(), KvLoadFailurePolicy::kFail);
  EXPECT_EQ(consumer.conn->metrics().recomputes, 0u);
  EXPECT_EQ(consumer.conn->metrics().transfers_failed, 1u);
}

TEST(DisaggConnector, RestartedProducerAtSameAddressIsDetected) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-7");
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-7");
  std::string params = produce(producer, "x", 4, {1}, 5);
  // The params claim another engine id (as after a restart on the same port).
  std::string forged = params;
  forged.replace(forged.find("prod-7"), 6, "prod-0");
  ASSERT_TRUE(consumer.conn->classify(request("x", 4, forged), nullptr).ok());
  consumer.conn->start_load("x", {0}, 0);
  EXPECT_EQ(wait_load(*consumer.conn, "x").code(), StatusCode::kNotFound);
  // The real params still work afterwards.
  ASSERT_TRUE(consumer.conn->classify(request("x", 4, params), nullptr).ok());
  consumer.conn->start_load("x", {0}, 0);
  EXPECT_TRUE(wait_load(*consumer.conn, "x").ok());
}

TEST(DisaggConnector, CancelGivesExactlyOneEvent) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-8");
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-8");
  for (int i = 0; i < 10; ++i) {
    std::string id = "k" + std::to_string(i);
    std::string params = produce(producer, id, 8, {1, 2}, 5);
    ASSERT_TRUE(consumer.conn->classify(request(id, 8, params), nullptr).ok());
    consumer.conn->start_load(id, {0, 1}, 0);
    if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(i));
    consumer.conn->cancel_load(id);
    Status st = wait_load(*consumer.conn, id);
    EXPECT_TRUE(st.ok() || st.code() == StatusCode::kAborted) << st.to_string();
    EXPECT_TRUE(wait_released(*producer.conn, id));
  }
  consumer.conn->wait_for_events(200ms);
  EXPECT_TRUE(consumer.conn->poll().loads_finished.empty());
  EXPECT_FALSE(consumer.conn->has_pending_work());
}

TEST(DisaggConnector, ClassifyValidatesRoleAndParams) {
  Side producer = make_side(KvTransferRole::kProducer, "prod-9");
  Side consumer = make_side(KvTransferRole::kConsumer, "cons-9");
  EXPECT_EQ(*consumer.conn->classify(request("a", 4, std::nullopt), nullptr), KvRole::kNone);
  EXPECT_EQ(*consumer.conn->classify(request("a", 4, R"({"do_remote_decode":false})"), nullptr), KvRole::kNone);
  EXPECT_EQ(consumer.conn->classify(request("a", 4, R"({"do_remote_decode":true})"), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  std::string params = produce(producer, "p", 8, {1, 2}, 5);
  EXPECT_EQ(producer.conn->classify(request("p", 8, params), nullptr).status().code(), StatusCode::kInvalidArgument);
  auto wrong_len = consumer.conn->classify(request("p", 9, params), nullptr);
  ASSERT_FALSE(wrong_len.ok());
  EXPECT_NE(wrong_len.status().message().find("num_prompt_tokens"), std::string::npos);
  EXPECT_FALSE(consumer.conn->classify(request("p", 8, "{oops"), nullptr).ok());
  // start_load without classify still reports exactly once.
  consumer.conn->start_load("unknown", {0}, 0);
  EXPECT_EQ(wait_load(*consumer.conn, "unknown").code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace tandem
