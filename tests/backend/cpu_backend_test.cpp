// CPU backend ops against naive formulas written here, on small odd shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_sampling.h"

namespace tandem {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TensorView view(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return TensorView(v.data(), DType::kF32, Device::kCpu, shape);
}
TensorView iview(std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
  return TensorView(v.data(), DType::kI32, Device::kCpu, shape);
}

class CpuBackendTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto b = make_cpu_backend(GetParam());
    ASSERT_TRUE(b.ok());
    backend = std::move(b).value();
  }
  std::unique_ptr<Backend> backend;
};

TEST_P(CpuBackendTest, Embedding) {
  const int v = 7, h = 5;
  auto table = randn(v * h, 1);
  std::vector<int32_t> ids = {3, 0, 6, -1, 7, 3};
  std::vector<float> out(ids.size() * h, 99.0f);
  backend->embedding(iview(ids, {6}), view(table, {v, h}), view(out, {6, h}));
  for (size_t i = 0; i < ids.size(); ++i) {
    for (int j = 0; j < h; ++j) {
      float want = (ids[i] >= 0 && ids[i] < v) ? table[ids[i] * h + j] : 0.0f;
      EXPECT_EQ(out[i * h + j], want) << i << "," << j;
    }
  }
}

TEST_P(CpuBackendTest, RmsNorm) {
  const int n = 3, h = 13;
  const float eps = 1e-5f;
  auto x = randn(n * h, 2), w = randn(h, 3);
  std::vector<float> out(n * h);
  backend->rms_norm(view(x, {n, h}), view(w, {h}), eps, view(out, {n, h}));
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < h; ++j) ss += x[i * h + j] * x[i * h + j];
    double inv = 1.0 / std::sqrt(ss / h + eps);
    for (int j = 0; j < h; ++j) EXPECT_NEAR(out[i * h + j], x[i * h + j] * inv * w[j], 1e-5);
  }
  // In place: the same result.
  std::vector<float> xo = x;
  backend->rms_norm(view(xo, {n, h}), view(w, {h}), eps, view(xo, {n, h}));
  EXPECT_EQ(xo, out);
}

TEST_P(CpuBackendTest, Matmul) {
  for (auto [n, k, m] : {std::tuple{1, 7, 5}, {9, 33, 17}, {17, 3, 1}}) {
    auto x = randn(n * k, 5), w = randn(m * k, 6);
    std::vector<float> out(n * m);
    backend->matmul(view(x, {n, k}), view(w, {m, k}), view(out, {n, m}));
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < m; ++j) {
        double s = 0;
        for (int t = 0; t < k; ++t) s += static_cast<double>(x[i * k + t]) * w[j * k + t];
        EXPECT_NEAR(out[i * m + j], s, 1e-4) << n << "x" << k << "x" << m;
      }
    }
    // matmul_add: out += x @ w^T on top of what out holds.
    std::vector<float> acc = randn(n * m, 7), before = acc;
    backend->matmul_add(view(x, {n, k}), view(w, {m, k}), view(acc, {n, m}));
    for (int i = 0; i < n * m; ++i) EXPECT_NEAR(acc[i], before[i] + out[i], 1e-5) << n << "x" << k << "x" << m;
  }
}

TEST_P(CpuBackendTest, SiluMulAndGatherRows) {
  const int n = 3, inter = 7;
  auto gu = randn(n * 2 * inter, 7);
  std::vector<float> out(n * inter);
  backend->silu_mul(view(gu, {n, 2 * inter}), view(out, {n, inter}));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < inter; ++j) {
      float g = gu[i * 2 * inter + j], u = gu[i * 2 * inter + inter + j];
      EXPECT_NEAR(out[i * inter + j], g / (1 + std::exp(-g)) * u, 1e-6);
    }
  }
  std::vector<int32_t> rows = {2, 0, 2};
  std::vector<float> g(3 * inter);
  backend->gather_rows(view(out, {n, inter}), iview(rows, {3}), view(g, {3, inter}));
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < inter; ++j) EXPECT_EQ(g[i * inter + j], out[rows[i] * inter + j]);
  }
}

// Paged attention + RoPE: two sequences (a decode with a cached prefix, and a prefill chunk after a
// cached prefix) with scattered block tables, GQA 6 q heads / 2 kv heads, head_dim 6, block size 3.
TEST_P(CpuBackendTest, RopeCacheWriteAndPagedAttention) {
  const int hq = 6, hk = 2, d = 6, bs = 3, layers = 2, layer = 1;
  KvLayout layout{layers, hk, d, bs, DType::kF32};
  const int num_blocks = 12;
  std::vector<float> pool(num_blocks * layout.elems_per_block(), 0.0f);
  KvCacheView kv{pool.data(), num_blocks, layout, Device::kCpu};
  // Reference K/V per sequence position (after RoPE for K), filled as we go.
  struct Seq {
    int cached, new_tokens;
    std::vector<int32_t> blocks;
  };
  std::vector<Seq> seqs = {{7, 1, {5, 1, 9}}, {4, 5, {2, 11, 0}}};
  const int max_blocks = 3;
  const int max_pos = 32;
  std::vector<float> cos_sin(max_pos * d);
  for (int p = 0; p < max_pos; ++p) {
    for (int i = 0; i < d / 2; ++i) {
      float inv = std::pow(100.0f, -2.0f * i / d);
      cos_sin[p * d + i] = std::cos(p * inv);
      cos_sin[p * d + d / 2 + i] = std::sin(p * inv);
    }
  }
  // Full K/V (pre-RoPE K) for every position of each sequence.
  std::vector<std::vector<float>> k_all, v_all;
  auto rope = [&](const float* x, int pos, float* out) {
    for (int i = 0; i < d / 2; ++i) {
      float c = cos_sin[pos * d + i], s = cos_sin[pos * d + d / 2 + i];
      out[i] = x[i] * c - x[i + d / 2] * s;
      out[i + d / 2] = x[i + d / 2] * c + x[i] * s;
    }
  };
  // Pre-fill the cached prefixes directly.
  for (size_t s = 0; s < seqs.size(); ++s) {
    int total = seqs[s].cached + seqs[s].new_tokens;
    k_all.push_back(randn(total * hk * d, 10 + s));
    v_all.push_back(randn(total * hk * d, 20 + s));
    for (int p = 0; p < seqs[s].cached; ++p) {
      int64_t slot = static_cast<int64_t>(seqs[s].blocks[p / bs]) * bs + p % bs;
      for (int h = 0; h < hk; ++h) {
        rope(&k_all[s][(p * hk + h) * d], p, &pool[layout.k_slot_offset(slot, layer, h)]);
        std::copy_n(&v_all[s][(p * hk + h) * d], d, &pool[layout.k_slot_offset(slot, layer, h) + layout.elems_per_page()]);
      }
    }
  }
  // Batch inputs.
  std::vector<int32_t> positions, slots, qstart = {0}, ctx, tables;
  std::vector<float> k_new, v_new;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int p = seqs[s].cached; p < seqs[s].cached + seqs[s].new_tokens; ++p) {
      positions.push_back(p);
      slots.push_back(seqs[s].blocks[p / bs] * bs + p % bs);
      k_new.insert(k_new.end(), &k_all[s][p * hk * d], &k_all[s][(p + 1) * hk * d]);
      v_new.insert(v_new.end(), &v_all[s][p * hk * d], &v_all[s][(p + 1) * hk * d]);
    }
    qstart.push_back(static_cast<int32_t>(positions.size()));
    ctx.push_back(seqs[s].cached + seqs[s].new_tokens);
    tables.insert(tables.end(), seqs[s].blocks.begin(), seqs[s].blocks.end());
  }
  const int n = static_cast<int>(positions.size());
  // q, k, v as column slices of one fused [n, (hq + 2hk) d] buffer, as the model passes them.
  const int qkv_w = (hq + 2 * hk) * d;
  std::vector<float> fused(n * qkv_w);
  auto q_ref = randn(n * hq * d, 30);
  for (int t = 0; t < n; ++t) {
    std::copy_n(&q_ref[t * hq * d], hq * d, &fused[t * qkv_w]);
    std::copy_n(&k_new[t * hk * d], hk * d, &fused[t * qkv_w + hq * d]);
    std::copy_n(&v_new[t * hk * d], hk * d, &fused[t * qkv_w + (hq + hk) * d]);
  }
  TensorView fv = view(fused, {n, qkv_w});
  AttentionMetadata md;
  md.num_seqs = 2;
  md.num_tokens = n;
  md.num_decode_seqs = 1;
  md.max_blocks_per_seq = max_blocks;
  md.positions = iview(positions, {n});
  md.slot_mapping = iview(slots, {n});
  md.query_start = iview(qstart, {3});
  md.context_lens = iview(ctx, {2});
  md.block_tables = iview(tables, {2, max_blocks});
  md.h_positions = positions.data();
  md.h_slot_mapping = slots.data();
  md.h_query_start = qstart.data();
  md.h_context_lens = ctx.data();
  md.h_block_tables = tables.data();
  TensorView q = fv.cols(0, hq * d), k = fv.cols(hq * d, hk * d), v = fv.cols((hq + hk) * d, hk * d);
  backend->rope_and_cache_write(q, k, v, view(cos_sin, {max_pos, d}), md, kv, layer);
  std::vector<float> out(n * hq * d);
  const float scale = 0.37f;
  backend->attention(q, kv, layer, md, scale, view(out, {n, hq * d}));

  // Naive reference: softmax(q_rot . k_rot^T * scale) v over positions [0, p].
  int t = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int p = seqs[s].cached; p < seqs[s].cached + seqs[s].new_tokens; ++p, ++t) {
      for (int h = 0; h < hq; ++h) {
        int kvh = h / (hq / hk);
        std::vector<float> qr(d);
        rope(&q_ref[(t * hq + h) * d], p, qr.data());
        for (int i = 0; i < d; ++i) EXPECT_NEAR(fused[t * qkv_w + h * d + i], qr[i], 1e-5) << "q rotated in place";
        std::vector<double> sc(p + 1);
        double mx = -1e30;
        for (int j = 0; j <= p; ++j) {
          std::vector<float> kr(d);
          rope(&k_all[s][(j * hk + kvh) * d], j, kr.data());
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += qr[i] * kr[i];
          sc[j] = dot * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int i = 0; i < d; ++i) {
          double o = 0;
          for (int j = 0; j <= p; ++j) o += sc[j] / sum * v_all[s][(j * hk + kvh) * d + i];
          EXPECT_NEAR(out[(t * hq + h) * d + i], o, 1e-4) << "seq " << s << " pos " << p << " head " << h;
        }
      }
    }
  }
  // The new tokens' K/V landed in their slots.
  for (int tt = 0; tt < n; ++tt) {
    for (int h = 0; h < hk; ++h) {
      int64_t off = layout.k_slot_offset(slots[tt], layer, h);
      for (int i = 0; i < d; ++i) {
        EXPECT_EQ(pool[off + i], fused[tt * qkv_w + hq * d + h * d + i]);
        EXPECT_EQ(pool[off + layout.elems_per_page() + i], v_new[(tt * hk + h) * d + i]);
      }
    }
  }
}

TEST_P(CpuBackendTest, SampleGreedyAndDeterministic) {
  const int v = 11;
  std::vector<float> logits = randn(3 * v, 40, 2.0f);
  logits[1 * v + 4] = 50.0f;
  logits[1 * v + 7] = 50.0f;  // tie: lowest id wins
  std::vector<SamplingRow> rows(3);
  rows[0].temperature = 0.0f;
  rows[1].temperature = 0.0f;
  rows[2].temperature = 0.8f;
  rows[2].seed = 123;
  rows[2].step = 5;
  std::vector<int32_t> out(3);
  backend->sample(view(logits, {3, v}), rows, out);
  EXPECT_EQ(out[0], argmax_token(std::span<const float>(logits.data(), v)));
  EXPECT_EQ(out[1], 4);
  EXPECT_EQ(out[2], sample_token(std::span<const float>(logits.data() + 2 * v, v), rows[2]));
}

INSTANTIATE_TEST_SUITE_P(Threads, CpuBackendTest, ::testing::Values(1, 3));

// ---- reference sampling ----

TEST(CpuSampling, HashIsDocumentedSplitmix) {
  // splitmix64(0) of the standard generator seeded with 0 (first output).
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  uint64_t h = splitmix64(splitmix64(splitmix64(7) ^ 3) ^ 11);
  EXPECT_EQ(sampling_hash(7, 3, 11), h);
  EXPECT_FLOAT_EQ(uniform_from_hash(7, 3, 11), static_cast<float>((h >> 40) + 1) / 16777216.0f);
  for (int i = 0; i < 1000; ++i) {
    float u = uniform_from_hash(1, 2, i);
    EXPECT_GT(u, 0.0f);
    EXPECT_LE(u, 1.0f);
  }
}

TEST(CpuSampling, KeepMaskTopKTopPMinP) {
  std::vector<float> p = {0.05f, 0.4f, 0.1f, 0.3f, 0.15f};
  SamplingRow r;
  r.top_k = 2;
  EXPECT_EQ(sampling_keep_mask(p, r), (std::vector<uint8_t>{0, 1, 0, 1, 0}));
  r = SamplingRow{};
  r.top_p = 0.8f;  // 0.4 + 0.3 = 0.7 < 0.8, + 0.15 = 0.85 >= 0.8
  EXPECT_EQ(sampling_keep_mask(p, r), (std::vector<uint8_t>{0, 1, 0, 1, 1}));
  r = SamplingRow{};
  r.min_p = 0.3f;  // threshold 0.12
  EXPECT_EQ(sampling_keep_mask(p, r), (std::vector<uint8_t>{0, 1, 0, 1, 1}));
  r.top_k = 3;
  r.top_p = 0.5f;
  EXPECT_EQ(sampling_keep_mask(p, r), (std::vector<uint8_t>{0, 1, 0, 1, 0}));
}

TEST(CpuSampling, FrequenciesFollowSoftmax) {
  // Over many seeds, the empirical distribution matches softmax(logits / T) restricted to top_k.
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  SamplingRow r;
  r.temperature = 0.7f;
  r.top_k = 4;
  std::vector<double> p(5);
  double z = 0;
  for (int i = 0; i < 5; ++i) z += (p[i] = std::exp(logits[i] / 0.7));
  for (auto& x : p) x /= z;
  double kept = 1.0 - p[3];  // id 3 is the smallest: dropped by top_k
  std::vector<int> counts(5, 0);
  const int trials = 20000;
  for (int s = 0; s < trials; ++s) {
    r.seed = static_cast<uint64_t>(s);
    counts[sample_token(logits, r)]++;
  }
  EXPECT_EQ(counts[3], 0);
  for (int i : {0, 1, 2, 4}) EXPECT_NEAR(counts[i] / static_cast<double>(trials), p[i] / kept, 0.015) << i;
  // Same (seed, step) -> same token; a different step draws again.
  r.seed = 9;
  EXPECT_EQ(sample_token(logits, r), sample_token(logits, r));
}

}  // namespace
}  // namespace tandem
