// CUDA graphs for decode steps (ModelRunner): greedy tokens with graphs equal those of an eager engine
// (enforce_eager) on the tiny model on CUDA, for decode batches that hit a graph bucket exactly (1, 4)
// and ones that get padded (3 -> 4, 5 -> 8). Contexts stay under 32 tokens so the decode attention's
// split layout is the same for padded and unpadded batches and the outputs are bitwise equal. Skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <vector>

#include "backend/backend_factory.h"
#include "engine_test_util.h"

namespace tandem {
namespace {

using namespace tandem::testing;

std::vector<std::vector<int32_t>> run_batch(bool enforce_eager, int num_requests) {
  EngineConfig c = tiny_config();
  c.device = Device::kCuda;
  c.enforce_eager = enforce_eager;
  auto engine = make_engine(c);
  std::vector<std::vector<int32_t>> out;
  std::vector<Result<std::shared_ptr<OutputChannel>>> results;
  for (int i = 0; i < num_requests; ++i) {
    results.push_back(engine->add_request(greedy_request("r" + std::to_string(i), prompt_of(12, i), 16)));
  }
  for (auto& r : results) {
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) continue;
    Collected col = collect(**r);
    EXPECT_FALSE(col.timed_out);
    out.push_back(col.tokens);
  }
  return out;
}

TEST(EngineCudaGraphs, GreedyTokensMatchEager) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: CUDA graph test needs a GPU";
  for (int n : {1, 3, 4, 5}) {
    SCOPED_TRACE(::testing::Message() << n << " concurrent requests");
    auto eager = run_batch(true, n);
    auto graphs = run_batch(false, n);
    ASSERT_EQ(eager.size(), static_cast<size_t>(n));
    ASSERT_EQ(graphs.size(), eager.size());
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(eager[i].size(), 16u);
      EXPECT_EQ(graphs[i], eager[i]) << "request " << i;
    }
  }
}

}  // namespace
}  // namespace tandem
