// Acceptance tests of disaggregated prefill/decode with real engines in one process: a producer engine
// and a consumer engine (tiny model, CPU, DisaggKvConnector over loopback tcp) against a colocated
// engine without a connector. Greedy decoding must give the colocated tokens (the consumer emits
// tokens[1:], the producer's first token having gone to the client already), with and without prefix-cache
// hits, under concurrency and under faults (expired lease, fingerprint mismatch, dead producer, policy
// fail, full consumer pool, aborts); every lease and block must come back (num_used_blocks == 0).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "disagg/kv_connector_factory.h"
#include "disagg/kv_transfer_config.h"
#include "engine/engine.h"
#include "engine/engine_test_util.h"  // tests/engine: testing::collect
#include "model/model_writer.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using testing::collect;

constexpr int kBlockSize = 16;
constexpr int kMaxTokens = 8;  // consumer max_tokens: the first token (from the producer) + 7 decoded

// Model A (the default) and model B: the same shapes with tied embeddings (other weights, the same KV
// layout, a different model fingerprint). Written once per process.
const std::filesystem::path& model_dir(bool variant_b = false) {
  static const std::filesystem::path base =
      std::filesystem::temp_directory_path() / ("tandem_engine_pair_test_" + std::to_string(::getpid()));
  static const std::filesystem::path a = [] {
    auto d = base / "a";
    std::filesystem::create_directories(d);
    Status st = write_preset_model("tiny", d, 1234);
    TANDEM_CHECK(st.ok(), "write_preset_model: {}", st.to_string());
    return d;
  }();
  static const std::filesystem::path b = [] {
    auto d = base / "b";
    std::filesystem::create_directories(d);
    ModelWriterOptions o;
    o.tie_word_embeddings = true;
    Status st = write_preset_model("tiny", d, 987, o);
    TANDEM_CHECK(st.ok(), "write_preset_model: {}", st.to_string());
    return d;
  }();
  return variant_b ? b : a;
}

EngineConfig engine_config(bool variant_b = false, int64_t num_blocks = 1024) {
  EngineConfig c;
  c.model_dir = model_dir(variant_b);
  c.device = Device::kCpu;
  c.num_threads = 1;
  c.block_size = kBlockSize;
  c.num_kv_blocks = num_blocks;
  c.max_model_len = static_cast<int>(std::min<int64_t>(2048, num_blocks * kBlockSize));
  c.max_num_batched_tokens = 2048;
  c.max_num_seqs = 64;
  return c;
}

struct ConnectorOptions {
  KvTransferRole role = KvTransferRole::kProducer;
  std::chrono::milliseconds lease = 30000ms;
  std::chrono::milliseconds timeout = 5000ms;
  KvLoadFailurePolicy policy = KvLoadFailurePolicy::kRecompute;
};

std::unique_ptr<Engine> make_engine(const EngineConfig& c, std::optional<ConnectorOptions> co = std::nullopt) {
  std::unique_ptr<KvConnector> conn;
  if (co) {
    KvTransferConfig k;
    k.role = co->role;
    k.transport = TransportKind::kTcp;
    k.side_channel_host = "127.0.0.1";
    k.side_channel_port = 0;
    k.lease_duration = co->lease;
    k.transfer_timeout = co->timeout;
    k.failure_policy = co->policy;
    auto r = create_kv_connector(k);
    TANDEM_CHECK(r.ok(), "create_kv_connector: {}", r.status().to_string());
    conn = std::move(r).value();
  }
  auto e = Engine::create(c, std::move(conn));
  TANDEM_CHECK(e.ok(), "Engine::create: {}", e.status().to_string());
  return std::move(e).value();
}

std::unique_ptr<Engine> make_producer(ConnectorOptions co = {}, bool variant_b = false) {
  co.role = KvTransferRole::kProducer;
  return make_engine(engine_config(variant_b), co);
}
std::unique_ptr<Engine> make_consumer(ConnectorOptions co = {}, bool variant_b = false, int64_t num_blocks = 1024) {
  co.role = KvTransferRole::kConsumer;
  return make_engine(engine_config(variant_b, num_blocks), co);
}

std::vector<int32_t> prompt_of(int n, int salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = 3 + (i * 37 + salt * 101 + (i * i) % 13) % 500;
  return p;
}

EngineRequest greedy(const std::string& id, std::vector<int32_t> prompt, int max_tokens,
                     std::optional<std::string> kv_params = std::nullopt) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  r.kv_transfer_params_json = std::move(kv_params);
  return r;
}

// A request's outputs (testing::Collected), or why add_request refused it.
struct Collected : testing::Collected {
  bool add_failed = false;
  Status add_status;
};

Collected run(Engine& e, EngineRequest r) {
  Collected c;
  auto ch = e.add_request(std::move(r));
  if (!ch.ok()) {
    c.add_failed = true;
    c.add_status = ch.status();
    return c;
  }
  static_cast<testing::Collected&>(c) = collect(**ch, 120s);
  return c;
}

// The colocated reference, memoised per (model, prompt, max_tokens).
class Reference {
 public:
  explicit Reference(bool variant_b = false) : engine_(make_engine(engine_config(variant_b))) {}
  std::vector<int32_t> tokens(const std::vector<int32_t>& prompt, int max_tokens) {
    auto key = std::make_pair(prompt, max_tokens);
    {
      std::lock_guard lock(mu_);
      if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    }
    Collected c = run(*engine_, greedy("ref-" + std::to_string(next_id_++), prompt, max_tokens));
    EXPECT_FALSE(c.add_failed) << c.add_status.to_string();
    EXPECT_EQ(c.finish, FinishReason::kLength);
    EXPECT_EQ(static_cast<int>(c.tokens.size()), max_tokens);
    std::lock_guard lock(mu_);
    memo_[key] = c.tokens;
    return c.tokens;
  }
  Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::mutex mu_;
  std::atomic<int> next_id_{0};
  std::map<std::pair<std::vector<int32_t>, int>, std::vector<int32_t>> memo_;
};

// Producer half: max_tokens 1 with do_remote_decode; returns the final output's kv_transfer_params.
struct Produced {
  Collected out;
  std::string params;
};
Produced produce(Engine& producer, const std::string& id, const std::vector<int32_t>& prompt) {
  Produced p;
  p.out = run(producer, greedy(id, prompt, 1, R"({"do_remote_decode": true})"));
  EXPECT_FALSE(p.out.add_failed) << p.out.add_status.to_string();
  EXPECT_FALSE(p.out.timed_out);
  EXPECT_EQ(p.out.finish, FinishReason::kLength) << id;
  EXPECT_EQ(p.out.tokens.size(), 1u) << id;
  EXPECT_TRUE(p.out.last.kv_transfer_params_json.has_value()) << id;
  if (p.out.last.kv_transfer_params_json) p.params = *p.out.last.kv_transfer_params_json;
  EXPECT_NE(p.params.find("\"do_remote_prefill\":true"), std::string::npos) << p.params;
  return p;
}

Collected consume(Engine& consumer, const std::string& id, const std::vector<int32_t>& prompt, const std::string& params,
                  int max_tokens = kMaxTokens) {
  Collected c = run(consumer, greedy(id, prompt, max_tokens, params));
  EXPECT_FALSE(c.add_failed) << id << ": " << c.add_status.to_string();
  EXPECT_FALSE(c.timed_out) << id;
  return c;
}

// Checks the consumer's output against the colocated tokens (the consumer emits ref[1:]).
void expect_matches(const Collected& prod, const Collected& cons, const std::vector<int32_t>& ref, size_t prompt_len,
                    const std::string& what) {
  ASSERT_EQ(ref.size(), static_cast<size_t>(kMaxTokens)) << what;
  ASSERT_EQ(prod.tokens.size(), 1u) << what;
  EXPECT_EQ(prod.tokens[0], ref[0]) << what << ": producer's first token";
  EXPECT_EQ(cons.finish, FinishReason::kLength) << what << ": " << cons.last.error.to_string();
  EXPECT_EQ(cons.tokens, std::vector<int32_t>(ref.begin() + 1, ref.end())) << what;
  EXPECT_EQ(cons.last.completion_tokens, kMaxTokens) << what;
  EXPECT_EQ(cons.last.prompt_tokens, static_cast<int32_t>(prompt_len)) << what;
}

template <typename Pred>
bool wait_for(std::chrono::milliseconds limit, Pred pred) {
  TimePoint end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// Engine metrics are published by the engine loop: poll until the used-block count reaches zero.
bool wait_blocks_zero(const Engine& e, std::chrono::milliseconds limit = 15000ms) {
  return wait_for(limit, [&] { return e.metrics().num_used_blocks == 0; });
}

const std::vector<int> kLengths = {1, 2, 15, 16, 17, 31, 32, 33, 100, 300, 511, 512, 513, 777, 1000};

TEST(EnginePair, SequentialRoundTripsMatchColocatedWithAndWithoutPrefixHits) {
  Reference ref;
  auto producer = make_producer();
  auto consumer = make_consumer();
  // Round 0: cold caches everywhere. Round 1: the same prompts, now hits on both sides.
  for (int round = 0; round < 2; ++round) {
    for (int n : kLengths) {
      std::string id = fmt::format("seq-{}-{}", round, n);
      auto prompt = prompt_of(n, n);
      auto r = ref.tokens(prompt, kMaxTokens);
      Produced p = produce(*producer, id, prompt);
      Collected c = consume(*consumer, id, prompt, p.params);
      expect_matches(p.out, c, r, prompt.size(), id);
      const int32_t consumer_hit = (n / kBlockSize) * kBlockSize;
      const int32_t producer_hit = ((n - 1) / kBlockSize) * kBlockSize;  // the last token is always recomputed
      if (round == 0) {
        EXPECT_EQ(c.last.remote_prompt_tokens, n) << id;
        EXPECT_EQ(c.last.cached_prompt_tokens, 0) << id;
        EXPECT_EQ(p.out.last.cached_prompt_tokens, 0) << id;
      } else {
        EXPECT_EQ(c.last.cached_prompt_tokens, consumer_hit) << id;
        EXPECT_EQ(c.last.remote_prompt_tokens, n - consumer_hit) << id;
        EXPECT_EQ(p.out.last.cached_prompt_tokens, producer_hit) << id;
      }
    }
  }
  EXPECT_TRUE(wait_blocks_zero(*producer)) << producer->metrics().num_used_blocks;
  EXPECT_TRUE(wait_blocks_zero(*consumer)) << consumer->metrics().num_used_blocks;
  EXPECT_FALSE(producer->metrics().dead);
  EXPECT_FALSE(consumer->metrics().dead);
}

TEST(EnginePair, ConcurrentBatchMatchesColocated) {
  Reference ref;
  auto producer = make_producer();
  auto consumer = make_consumer();
  constexpr int kRequests = 32;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kRequests; ++i) {
    int n = kLengths[i % kLengths.size()];
    if (n > 520) n = 40 + i;  // keep the batch modest on two cores: a few long ones, many short
    if (i == 7) n = 1000;
    prompts.push_back(prompt_of(n, 1000 + i));
  }
  // A shared prefix: several prompts extend one 300-token base (hits inside the batch on both sides).
  auto base = prompt_of(300, 77);
  for (int i = 0; i < 6; ++i) {
    auto p = base;
    auto tail = prompt_of(1 + 7 * i, 500 + i);
    p.insert(p.end(), tail.begin(), tail.end());
    prompts.push_back(p);
  }
  std::vector<std::vector<int32_t>> refs;
  for (auto& p : prompts) refs.push_back(ref.tokens(p, kMaxTokens));

  std::vector<Produced> prod(prompts.size());
  std::vector<Collected> cons(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      std::string id = "batch-" + std::to_string(i);
      prod[i] = produce(*producer, id, prompts[i]);
      cons[i] = consume(*consumer, id, prompts[i], prod[i].params);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    expect_matches(prod[i].out, cons[i], refs[i], prompts[i].size(), "batch-" + std::to_string(i));
    EXPECT_EQ(cons[i].last.remote_prompt_tokens + cons[i].last.cached_prompt_tokens,
              static_cast<int32_t>(prompts[i].size()))
        << i;
  }
  // The shared-prefix prompts, sent again one by one: the 288-token prefix hits on the consumer.
  for (size_t i = kRequests; i < prompts.size(); ++i) {
    std::string id = "again-" + std::to_string(i);
    Produced p = produce(*producer, id, prompts[i]);
    Collected c = consume(*consumer, id, prompts[i], p.params);
    expect_matches(p.out, c, refs[i], prompts[i].size(), id);
    EXPECT_GE(c.last.cached_prompt_tokens, 288) << id;
    EXPECT_GE(p.out.last.cached_prompt_tokens, 288) << id;
  }
  EXPECT_TRUE(wait_blocks_zero(*producer)) << producer->metrics().num_used_blocks;
  EXPECT_TRUE(wait_blocks_zero(*consumer)) << consumer->metrics().num_used_blocks;
}

TEST(EnginePair, ExpiredLeaseRecomputesIdenticalTokens) {
  Reference ref;
  constexpr auto kLease = 1000ms;
  auto producer = make_producer({.lease = kLease, .timeout = 800ms});
  auto consumer = make_consumer();
  for (int n : {17, 100, 300}) {
    std::string id = "lease-" + std::to_string(n);
    auto prompt = prompt_of(n, 3 * n);
    TimePoint t0 = Clock::now();
    Produced p = produce(*producer, id, prompt);
    // Metrics are published after the engine step that produced the output: poll.
    EXPECT_TRUE(wait_for(kLease, [&] { return producer->metrics().num_used_blocks > 0; }))
        << "the lease pins the prompt's blocks";
    std::this_thread::sleep_until(t0 + kLease + 200ms);
    ASSERT_TRUE(wait_blocks_zero(*producer, 5000ms)) << "the lease did not expire";
    Collected c = consume(*consumer, id, prompt, p.params);
    expect_matches(p.out, c, ref.tokens(prompt, kMaxTokens), prompt.size(), id);
    EXPECT_EQ(c.last.remote_prompt_tokens, 0) << id << ": nothing can have come from the producer";
  }
  EXPECT_TRUE(wait_blocks_zero(*producer));
  EXPECT_TRUE(wait_blocks_zero(*consumer));
}

TEST(EnginePair, FingerprintMismatchRecomputesWithTheConsumersModel) {
  Reference ref_a;
  Reference ref_b(/*variant_b=*/true);
  auto producer = make_producer();
  auto consumer = make_consumer({}, /*variant_b=*/true);
  for (int n : {1, 16, 33, 300}) {
    std::string id = "fp-" + std::to_string(n);
    auto prompt = prompt_of(n, 5 * n);
    Produced p = produce(*producer, id, prompt);
    ASSERT_EQ(p.out.tokens.size(), 1u);
    EXPECT_EQ(p.out.tokens[0], ref_a.tokens(prompt, kMaxTokens)[0]);
    Collected c = consume(*consumer, id, prompt, p.params);
    EXPECT_EQ(c.finish, FinishReason::kLength) << c.last.error.to_string();
    EXPECT_EQ(c.last.remote_prompt_tokens, 0) << id;
    EXPECT_EQ(c.last.completion_tokens, kMaxTokens);
    // The consumer's own model continues from the producer's first token.
    auto extended = prompt;
    extended.push_back(p.out.tokens[0]);
    EXPECT_EQ(c.tokens, ref_b.tokens(extended, kMaxTokens - 1)) << id;
  }
  // The mismatch makes the consumer release (notify) the producer's lease.
  EXPECT_TRUE(wait_blocks_zero(*producer));
  EXPECT_TRUE(wait_blocks_zero(*consumer));
  EXPECT_FALSE(consumer->metrics().dead);
}

TEST(EnginePair, DestroyedProducerRecomputesIdenticalTokens) {
  Reference ref;
  auto consumer = make_consumer({.timeout = 2000ms});
  std::vector<std::pair<std::vector<int32_t>, Produced>> produced;
  {
    auto producer = make_producer();
    for (int n : {1, 17, 100, 513}) {
      auto prompt = prompt_of(n, 7 * n);
      produced.emplace_back(prompt, produce(*producer, "dead-" + std::to_string(n), prompt));
    }
    producer->shutdown(1000ms);
  }
  for (auto& [prompt, p] : produced) {
    std::string id = "dead-" + std::to_string(prompt.size());
    Collected c = consume(*consumer, id, prompt, p.params);
    expect_matches(p.out, c, ref.tokens(prompt, kMaxTokens), prompt.size(), id);
    EXPECT_EQ(c.last.remote_prompt_tokens, 0) << id;
  }
  EXPECT_TRUE(wait_blocks_zero(*consumer));
}

TEST(EnginePair, PolicyFailEndsTheRequestWithAnError) {
  auto consumer = make_consumer({.timeout = 2000ms, .policy = KvLoadFailurePolicy::kFail});
  auto prompt = prompt_of(40, 11);
  Produced p;
  {
    auto producer = make_producer();
    p = produce(*producer, "fail-1", prompt);
  }
  Collected c = consume(*consumer, "fail-1", prompt, p.params);
  EXPECT_EQ(c.finish, FinishReason::kError);
  EXPECT_FALSE(c.last.error.ok());
  EXPECT_NE(c.last.error.to_string().find("remote KV load failed"), std::string::npos) << c.last.error.to_string();
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_TRUE(wait_blocks_zero(*consumer));
  EXPECT_FALSE(consumer->metrics().dead);

  // A fingerprint mismatch under policy fail: an error naming the model, and the producer's lease freed.
  auto producer = make_producer({}, /*variant_b=*/true);
  Produced p2 = produce(*producer, "fail-2", prompt);
  Collected c2 = consume(*consumer, "fail-2", prompt, p2.params);
  EXPECT_EQ(c2.finish, FinishReason::kError);
  EXPECT_NE(c2.last.error.to_string().find("model"), std::string::npos) << c2.last.error.to_string();
  EXPECT_TRUE(wait_blocks_zero(*producer));
  EXPECT_TRUE(wait_blocks_zero(*consumer));
}

TEST(EnginePair, FullConsumerPoolMakesRequestsWaitAndAllFinish) {
  Reference ref;
  auto producer = make_producer();
  // 16 blocks of 16 tokens: two 100-token prompts (7 blocks with their decode) fit at a time.
  auto consumer = make_consumer({}, false, /*num_blocks=*/16);
  constexpr int kRequests = 10;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Produced> prod;
  for (int i = 0; i < kRequests; ++i) {
    prompts.push_back(prompt_of(100, 300 + i));
    prod.push_back(produce(*producer, "full-" + std::to_string(i), prompts.back()));
  }
  std::vector<Collected> cons(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i)
    threads.emplace_back([&, i] { cons[i] = consume(*consumer, "full-" + std::to_string(i), prompts[i], prod[i].params); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i)
    expect_matches(prod[i].out, cons[i], ref.tokens(prompts[i], kMaxTokens), prompts[i].size(), "full-" + std::to_string(i));
  EXPECT_TRUE(wait_blocks_zero(*producer));
  EXPECT_TRUE(wait_blocks_zero(*consumer));
}

TEST(EnginePair, AbortingConsumerRequestsReturnsAllBlocks) {
  // A long lease: every lease must come back through the consumer's notification, also for requests
  // aborted while still queued (before their load started) and loads cancelled in flight.
  auto producer = make_producer({.lease = 60000ms, .timeout = 2000ms});
  auto consumer = make_consumer({.timeout = 2000ms}, false, /*num_blocks=*/32);
  constexpr int kRequests = 12;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Produced> prod;
  for (int i = 0; i < kRequests; ++i) {
    prompts.push_back(prompt_of(150, 700 + i));
    prod.push_back(produce(*producer, "abort-" + std::to_string(i), prompts.back()));
  }
  EXPECT_TRUE(wait_for(2000ms, [&] { return producer->metrics().num_used_blocks > 0; }));
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (int i = 0; i < kRequests; ++i) {
    auto ch = consumer->add_request(greedy("abort-" + std::to_string(i), prompts[i], 64, prod[i].params));
    ASSERT_TRUE(ch.ok()) << ch.status().to_string();
    channels.push_back(*ch);
    if (i == kRequests / 2) std::this_thread::sleep_for(5ms);  // let some loads start
  }
  for (int i = 0; i < kRequests; ++i) consumer->abort_request("abort-" + std::to_string(i));
  int aborted = 0;
  for (auto& ch : channels) {
    auto c = collect(*ch);
    EXPECT_FALSE(c.timed_out);
    ASSERT_TRUE(c.finish.has_value());
    EXPECT_TRUE(*c.finish == FinishReason::kAbort || *c.finish == FinishReason::kLength);
    aborted += *c.finish == FinishReason::kAbort;
  }
  EXPECT_GT(aborted, 0);
  EXPECT_TRUE(wait_blocks_zero(*consumer)) << consumer->metrics().num_used_blocks;
  EXPECT_TRUE(wait_blocks_zero(*producer, 10000ms)) << producer->metrics().num_used_blocks;
  EXPECT_EQ(consumer->metrics().num_waiting_for_remote_kv, 0);
}

TEST(EnginePair, AbortingQueuedConsumerRequestsReleasesLeasesAtOnce) {
  auto producer = make_producer({.lease = 60000ms});
  // 16 blocks: one 150-token request (10 blocks, 16 with its decode) at a time; the others queue before
  // their load starts.
  auto consumer = make_consumer({}, false, /*num_blocks=*/16);
  constexpr int kRequests = 5;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Produced> prod;
  for (int i = 0; i < kRequests; ++i) {
    prompts.push_back(prompt_of(150, 900 + i));
    prod.push_back(produce(*producer, "queued-" + std::to_string(i), prompts.back()));
  }
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (int i = 0; i < kRequests; ++i) {
    auto ch = consumer->add_request(greedy("queued-" + std::to_string(i), prompts[i], 100, prod[i].params));
    ASSERT_TRUE(ch.ok()) << ch.status().to_string();
    channels.push_back(*ch);
  }
  // At once: request 0 holds the pool for its 100 decode steps, so 1..4 are still queued.
  for (int i = 1; i < kRequests; ++i) consumer->abort_request("queued-" + std::to_string(i));
  for (int i = 1; i < kRequests; ++i) EXPECT_EQ(collect(*channels[i]).finish, FinishReason::kAbort) << i;
  auto first = collect(*channels[0]);
  EXPECT_EQ(first.finish, FinishReason::kLength);
  EXPECT_EQ(first.tokens.size(), 99u);
  // Long before the 60 s leases could expire.
  EXPECT_TRUE(wait_blocks_zero(*producer, 5000ms)) << producer->metrics().num_used_blocks;
  EXPECT_TRUE(wait_blocks_zero(*consumer, 5000ms)) << consumer->metrics().num_used_blocks;
}

// A listener that never accepts: connects succeed (the kernel completes them) and nothing ever answers,
// so a consumer's handshake hangs until its transfer timeout: its requests stay waiting for remote KV.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    TANDEM_CHECK(fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 64) == 0,
                 "black hole listener");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~BlackHole() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(EnginePair, AbortingRequestsWaitingForKvReturnsAllBlocks) {
  BlackHole hole;
  auto producer = make_producer({.lease = 1500ms, .timeout = 1000ms});
  auto consumer = make_consumer({.timeout = 1500ms}, false, /*num_blocks=*/64);
  constexpr int kRequests = 4;  // <= the connector's transfer threads: every load is in flight
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (int i = 0; i < kRequests; ++i) {
    std::string id = "hole-" + std::to_string(i);
    auto prompt = prompt_of(60, 40 + i);
    Produced p = produce(*producer, id, prompt);
    // The real params, pointed at the black hole.
    std::string params = std::regex_replace(p.params, std::regex(R"("remote_port":\d+)"),
                                            fmt::format("\"remote_port\":{}", hole.port()));
    ASSERT_NE(params, p.params);
    auto ch = consumer->add_request(greedy(id, prompt, kMaxTokens, params));
    ASSERT_TRUE(ch.ok()) << ch.status().to_string();
    channels.push_back(*ch);
  }
  ASSERT_TRUE(wait_for(2000ms, [&] { return consumer->metrics().num_waiting_for_remote_kv == kRequests; }))
      << consumer->metrics().num_waiting_for_remote_kv;
  EXPECT_GT(consumer->metrics().num_used_blocks, 0);
  TimePoint t0 = Clock::now();
  for (int i = 0; i < kRequests; ++i) consumer->abort_request("hole-" + std::to_string(i));
  for (auto& ch : channels) {
    auto c = collect(*ch);
    EXPECT_EQ(c.finish, FinishReason::kAbort);
    EXPECT_TRUE(c.tokens.empty());
  }
  EXPECT_LT(Clock::now() - t0, 1000ms) << "aborts answer at once, not when the transfer gives up";
  // The blocks stay with the transfers until they report (at their timeout), then come back.
  EXPECT_TRUE(wait_blocks_zero(*consumer, 10000ms)) << consumer->metrics().num_used_blocks;
  EXPECT_EQ(consumer->metrics().num_waiting_for_remote_kv, 0);
  EXPECT_TRUE(wait_blocks_zero(*producer, 10000ms)) << producer->metrics().num_used_blocks;  // leases expire
  EXPECT_FALSE(consumer->metrics().dead);
}

}  // namespace
}  // namespace tandem
