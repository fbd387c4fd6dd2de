// GPU sampling against the CPU reference (backend/cpu/cpu_sampling.h): the counter-based uniforms must
// match bit for bit; greedy rows exactly (ties to the lowest id); random rows must pick a token the
// reference keeps, and the same token as the reference on nearly every row (the only allowed source of
// difference is the last-ulp rounding of expf and of the softmax sum order).
#include <gtest/gtest.h>

#include <cstring>

#include "backend/cpu/cpu_sampling.h"
#include "backend/cuda/cuda_kernels.h"
#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

TEST(CudaSampling, UniformsMatchTheReferenceBitForBit) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  const int n = 200003;
  auto d_u = device_tensor(*be.gpu, DType::kF32, {n});
  for (auto [seed, step] : {std::pair<uint64_t, uint64_t>{0, 0}, {42, 7}, {0xFFFFFFFFFFFFFFFFull, 123456789}}) {
    cuda::launch_uniform_from_hash(seed, step, n, d_u.view.as<float>(), nullptr);
    be.gpu->synchronize();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> got(n);
    be.gpu->copy_to_host(got.data(), d_u.view.data, n * sizeof(float));
    int mismatches = 0;
    for (int i = 0; i < n; ++i) {
      const float ref = uniform_from_hash(seed, step, i);
      if (std::memcmp(&ref, &got[i], 4) != 0) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0) << "seed " << seed << " step " << step;
  }
}

TEST(CudaSampling, GreedyMatchesArgmaxWithTies) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(5);
  const int m = 9, vocab = 32003;
  std::vector<float> logits = random_bf16(static_cast<size_t>(m) * vocab, rng, 3.0f);
  // Row 1: a tie for the maximum at two ids; row 2: all equal.
  logits[1 * vocab + 100] = 50.0f;
  logits[1 * vocab + 31000] = 50.0f;
  std::fill(logits.begin() + 2 * vocab, logits.begin() + 3 * vocab, 1.0f);
  auto d_logits = upload_raw(*be.gpu, logits, DType::kF32, {m, vocab});
  std::vector<SamplingRow> rows(m);
  for (int i = 0; i < m; ++i) rows[i].temperature = i % 2 ? 0.0f : -1.0f;
  rows[3].temperature = 0.8f;
  rows[3].top_k = 1;  // top_k == 1 is greedy too
  std::vector<int32_t> got(m, -7);
  be.gpu->sample(d_logits.view, rows, got);
  for (int i = 0; i < m; ++i) {
    EXPECT_EQ(got[i], argmax_token(std::span<const float>(logits.data() + static_cast<size_t>(i) * vocab, vocab)))
        << "row " << i;
  }
  EXPECT_EQ(got[1], 100);
  EXPECT_EQ(got[2], 0);
}

TEST(CudaSampling, RandomRowsMatchTheReference) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(6);
  const int vocab = 5003;
  struct P {
    float t;
    int k;
    float p, min_p;
  };
  const P params[] = {{1.0f, 0, 1.0f, 0.0f}, {0.7f, 50, 1.0f, 0.0f},  {1.3f, 0, 0.9f, 0.0f}, {1.0f, 0, 1.0f, 0.05f},
                      {0.9f, 40, 0.8f, 0.02f}, {2.0f, 3, 1.0f, 0.0f}, {1.0f, 0, 0.0f, 0.0f}, {1.0f, 5003, 0.99f, 0.0f}};
  const int per_param = 16;
  const int m = per_param * static_cast<int>(std::size(params));
  std::vector<float> logits = random_bf16(static_cast<size_t>(m) * vocab, rng, 2.0f);
  // Some rows with many exactly equal logits (ties at the top-k boundary).
  for (int r = 0; r < m; r += 5)
    for (int i = 0; i < vocab; i += 3) logits[static_cast<size_t>(r) * vocab + i] = 1.5f;
  std::vector<SamplingRow> rows(m);
  for (int r = 0; r < m; ++r) {
    const P& p = params[r / per_param];
    rows[r] = SamplingRow{p.t, p.k, p.p, p.min_p, 1000u + static_cast<uint64_t>(r), static_cast<uint64_t>(r % 3)};
  }
  auto d_logits = upload_raw(*be.gpu, logits, DType::kF32, {m, vocab});
  std::vector<int32_t> got(m, -7);
  be.gpu->sample(d_logits.view, rows, got);
  int same = 0;
  std::vector<float> probs;
  for (int r = 0; r < m; ++r) {
    std::span<const float> row(logits.data() + static_cast<size_t>(r) * vocab, vocab);
    const int32_t ref = sample_token(row, rows[r]);
    same += got[r] == ref;
    ASSERT_GE(got[r], 0);
    ASSERT_LT(got[r], vocab);
    // The pick must be kept by the reference's filters.
    probs.assign(vocab, 0.0f);
    float mx = -INFINITY, sum = 0.0f, inv_t = 1.0f / rows[r].temperature;
    for (float l : row) mx = std::max(mx, l * inv_t);
    for (int i = 0; i < vocab; ++i) sum += probs[i] = std::exp(row[i] * inv_t - mx);
    for (float& p : probs) p *= 1.0f / sum;
    if (rows[r].top_p > 0.0f) {
      EXPECT_TRUE(sampling_keep_mask(probs, rows[r])[got[r]]) << "row " << r << " picked a filtered token " << got[r];
    }
  }
  EXPECT_GE(same, m - 2) << same << " of " << m << " rows equal to the reference";
}

TEST(CudaSampling, ManyRowsInChunks) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(8);
  const int m = 1500, vocab = 64;  // more rows than one staging chunk
  std::vector<float> logits = random_bf16(static_cast<size_t>(m) * vocab, rng, 1.0f);
  auto d_logits = upload_raw(*be.gpu, logits, DType::kF32, {m, vocab});
  std::vector<SamplingRow> rows(m);
  for (int r = 0; r < m; ++r) rows[r] = SamplingRow{r % 2 ? 0.0f : 1.0f, 0, 1.0f, 0.0f, 9, static_cast<uint64_t>(r)};
  std::vector<int32_t> got(m, -7);
  be.gpu->sample(d_logits.view, rows, got);
  int same = 0;
  for (int r = 0; r < m; ++r) {
    same += got[r] == sample_token(std::span<const float>(logits.data() + static_cast<size_t>(r) * vocab, vocab), rows[r]);
  }
  EXPECT_GE(same, m - 3);
}

}  // namespace
}  // namespace tandem
