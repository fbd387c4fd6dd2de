// The split-K decode attention kernel (launch_paged_decode) called directly with explicit split counts,
// against an fp64 reference over the same bf16 pool: contexts shorter than a split, empty splits, ctx 1,
// contexts across block boundaries, GQA 1/4/8, head dims 64/128/256, q rows strided like a fused qkv
// buffer. Every launch must leave the split counters at zero (graph replays rely on it), so each case
// launches twice with different contexts through the same scratch. GQA 2..8 at head_dim 64 / 128 run
// the tensor-core kernel (grids up to the SM count on its deep ring, larger ones on its wide ring: both
// occur below), the other shapes the CUDA-core kernel.
// Thresholds as in cuda_attention_test.cpp: NMSE <= 1e-4, max-abs <= 0.03 (bf16 output).
// Calls the kernels directly (CUDA runtime headers): built only with the CUDA backend.
#ifdef TANDEM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/cuda/cuda_kernels.h"
#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

struct DecodeCase {
  int hq, hk, d, block_size;
  std::vector<int> splits;
};

// softmax(q k^T * scale) v per (seq, head) in fp64 from the pool's bf16 values.
std::vector<float> reference(const std::vector<float>& pool, const KvLayout& layout, int layer,
                             const std::vector<float>& q, int64_t q_stride, const std::vector<int32_t>& ctxs,
                             const std::vector<int32_t>& tables, int max_blocks, int hq, float scale) {
  const int hk = layout.num_kv_heads, D = layout.head_dim, G = hq / hk;
  std::vector<float> out(ctxs.size() * hq * D);
  for (size_t s = 0; s < ctxs.size(); ++s) {
    for (int h = 0; h < hq; ++h) {
      const int kvh = h / G;
      std::vector<double> sc(ctxs[s]);
      double mx = -1e300;
      for (int j = 0; j < ctxs[s]; ++j) {
        const int64_t slot = static_cast<int64_t>(tables[s * max_blocks + j / layout.block_size]) * layout.block_size +
                             j % layout.block_size;
        const int64_t ko = layout.k_slot_offset(slot, layer, kvh);
        double dot = 0;
        for (int e = 0; e < D; ++e) dot += static_cast<double>(q[s * q_stride + h * D + e]) * pool[ko + e];
        sc[j] = dot * scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0;
      for (double& v : sc) sum += (v = std::exp(v - mx));
      for (int e = 0; e < D; ++e) {
        double o = 0;
        for (int j = 0; j < ctxs[s]; ++j) {
          const int64_t slot = static_cast<int64_t>(tables[s * max_blocks + j / layout.block_size]) * layout.block_size +
                               j % layout.block_size;
          o += sc[j] * pool[layout.k_slot_offset(slot, layer, kvh) + layout.elems_per_page() + e];
        }
        out[(s * hq + h) * D + e] = static_cast<float>(o / sum);
      }
    }
  }
  return out;
}

void run_decode_case(const DecodeCase& c, const std::vector<std::vector<int32_t>>& ctx_rounds, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "hq " << c.hq << " hk " << c.hk << " d " << c.d << " bs " << c.block_size);
  auto gpu_r = make_cuda_backend(0);
  ASSERT_TRUE(gpu_r.ok()) << gpu_r.status().to_string();
  Backend& gpu = **gpu_r;
  std::mt19937 rng(seed);
  const int B = static_cast<int>(ctx_rounds[0].size());
  int max_ctx = 1;
  for (const auto& r : ctx_rounds) max_ctx = std::max(max_ctx, *std::max_element(r.begin(), r.end()));
  const int max_blocks = (max_ctx + c.block_size - 1) / c.block_size;
  const KvLayout layout{2, c.hk, c.d, c.block_size, DType::kBF16};
  const int64_t num_blocks = static_cast<int64_t>(B) * max_blocks + 2;
  std::vector<int32_t> ids(num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> tables(ids.begin(), ids.begin() + static_cast<int64_t>(B) * max_blocks);
  const std::vector<float> pool = random_bf16(static_cast<size_t>(num_blocks * layout.elems_per_block()), rng);
  auto d_pool = upload_bf16(gpu, pool, {num_blocks * layout.elems_per_block()});
  const int64_t q_stride = static_cast<int64_t>(c.hq + 2 * c.hk) * c.d;  // q as the first columns of fused qkv rows
  const std::vector<float> q = random_bf16(static_cast<size_t>(B) * q_stride, rng);
  auto d_q = upload_bf16(gpu, q, {B, q_stride});
  std::vector<int32_t> qs(B + 1);
  std::iota(qs.begin(), qs.end(), 0);
  auto d_qs = upload_raw(gpu, qs, DType::kI32, {B + 1});
  auto d_bt = upload_raw(gpu, tables, DType::kI32, {B, max_blocks});
  auto d_ctx = device_tensor(gpu, DType::kI32, {B});
  auto d_out = device_tensor(gpu, DType::kBF16, {B, c.hq * c.d});
  const int max_splits = *std::max_element(c.splits.begin(), c.splits.end());
  const int64_t entries = static_cast<int64_t>(B) * c.hq * max_splits;
  auto d_po = device_tensor(gpu, DType::kF32, {entries * c.d});
  auto d_pml = device_tensor(gpu, DType::kF32, {entries * 2});
  const int counters = cuda::decode_split_counters(B, c.hk, c.hq);
  ASSERT_GT(counters, 0);
  std::vector<int32_t> zeros(counters, 0);
  auto d_counters = upload_raw(gpu, zeros, DType::kI32, {counters});
  cuda::DecodeScratch scratch{d_po.view.as<float>(), d_pml.view.as<float>(), d_counters.view.as<int32_t>()};

  cuda::PagedAttentionArgs a;
  a.q = d_q.view.data;
  a.q_stride = q_stride;
  a.out = d_out.view.data;
  a.kv.base = d_pool.view.data;
  a.kv.layer_offset = layout.elems_per_layer_block();  // layer 1
  a.kv.elems_per_block = layout.elems_per_block();
  a.kv.elems_per_page = layout.elems_per_page();
  a.kv.block_size = c.block_size;
  a.kv.num_kv_heads = c.hk;
  a.kv.head_dim = c.d;
  a.query_start = d_qs.view.as<int32_t>();
  a.context_lens = d_ctx.view.as<int32_t>();
  a.block_tables = d_bt.view.as<int32_t>();
  a.max_blocks_per_seq = max_blocks;
  a.num_q_heads = c.hq;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  std::vector<float> qv(q.size());
  for (int splits : c.splits) {
    for (size_t r = 0; r < ctx_rounds.size(); ++r) {
      SCOPED_TRACE(::testing::Message() << "splits " << splits << " round " << r);
      std::vector<int32_t> ctxs = ctx_rounds[r];
      gpu.copy_to_device(d_ctx.view.data, ctxs.data(), ctxs.size() * 4);
      poison(gpu, d_out.view);
      cuda::launch_paged_decode(a, B, splits, scratch, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto ref = reference(pool, layout, 1, q, q_stride, ctxs, tables, max_blocks, c.hq, a.scale);
      TANDEM_EXPECT_CLOSE(download(gpu, d_out.view), ref, 1e-4, 0.03);
      std::vector<int32_t> left(counters, -1);
      gpu.copy_to_host(left.data(), d_counters.view.data, left.size() * 4);
      EXPECT_EQ(std::count(left.begin(), left.end(), 0), counters) << "split counters not reset";
    }
  }
}

TEST(CudaDecode, Llama8BShapesSplits) {
  TANDEM_SKIP_WITHOUT_CUDA();
  // ctx 1 (one split holds the token, the rest are empty), contexts shorter than a split, around the
  // block size and long ones; the second round grows them as a decode step would.
  run_decode_case({32, 8, 128, 16, {1, 2, 3, 7, 64, 128}}, {{1, 15, 16, 17, 300, 2051}, {2, 16, 17, 18, 301, 4099}}, 31);
}

TEST(CudaDecode, Gqa8HeadDim64) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_decode_case({16, 2, 64, 16, {1, 5, 64}}, {{1, 33, 1000}, {40, 34, 1001}}, 32);
}

TEST(CudaDecode, NoGqaHeadDim256) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_decode_case({4, 4, 256, 16, {1, 4, 33}}, {{7, 129, 700}, {8, 130, 1}}, 33);
}

TEST(CudaDecode, Gqa2BlockSize8AndOddBlockSize) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_decode_case({8, 4, 128, 8, {1, 9, 128}}, {{3, 100, 513}, {4, 101, 514}}, 34);
  run_decode_case({6, 2, 64, 12, {1, 6}}, {{5, 25, 250}, {6, 26, 251}}, 35);  // G 3, block size not a power of 2
}

TEST(CudaDecode, SplitCountIsBoundedAndShapeOnly) {
  for (int sms : {1, 78, 132}) {
    for (int b : {1, 2, 4, 32, 256}) {
      const int s = cuda::decode_num_splits(b, 8, 32, sms);
      EXPECT_GE(s, 1);
      EXPECT_LE(s, cuda::kMaxDecodeSplits);
      if (s > 1) EXPECT_LE(cuda::decode_split_counters(b, 8, 32), cuda::kDecodeSplitBlocksPerSm * sms);
    }
  }
}

}  // namespace
}  // namespace tandem

#endif  // TANDEM_HAVE_CUDA
