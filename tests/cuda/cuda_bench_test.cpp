// Timings of the CUDA attention kernels and cuBLASLt GEMMs at Llama-3.1-8B shapes. A benchmark, not a
// test: DISABLED_ so ctest never runs it; run it with
//   test_cuda --gtest_also_run_disabled_tests --gtest_filter='CudaBench.*'
// It prints figures only (median of repeated timed batches, host clock around synchronize()).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>

#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

double median_ms(Backend& gpu, int iters, const std::function<void()>& fn) {
  fn();
  gpu.synchronize();
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    gpu.synchronize();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct AttnBench {
  int batch, ctx, q_len;
};

TEST(CudaBench, DISABLED_AttentionAndGemm) {
  TANDEM_SKIP_WITHOUT_CUDA();
  auto gpu_r = make_cuda_backend(0);
  ASSERT_TRUE(gpu_r.ok());
  Backend& gpu = **gpu_r;
  std::mt19937 rng(1);
  const int hq = 32, hk = 8, D = 128, bs = 16;
  std::printf("%-44s %10s %12s\n", "case", "ms/call", "x32 layers");
  for (AttnBench b : {AttnBench{1, 7500, 1}, AttnBench{32, 2048, 1}, AttnBench{1, 7500, 7500}, AttnBench{1, 2048, 2048}}) {
    const int blocks_per_seq = (b.ctx + bs - 1) / bs;
    const int64_t num_blocks = static_cast<int64_t>(blocks_per_seq) * b.batch;
    KvLayout layout{1, hk, D, bs, DType::kBF16};
    auto pool = device_tensor(gpu, DType::kBF16, {num_blocks * layout.elems_per_block()});
    {
      std::vector<float> pattern = random_bf16(1 << 20, rng);
      auto p = upload_bf16(gpu, pattern, {1 << 20});
      const int64_t total = num_blocks * layout.elems_per_block();
      for (int64_t off = 0; off < total; off += 1 << 20)
        gpu.copy_device(static_cast<uint16_t*>(pool.view.data) + off, p.view.data,
                        std::min<int64_t>(1 << 20, total - off) * 2);
      gpu.synchronize();
    }
    std::vector<int32_t> qs{0}, ctx, tables(num_blocks);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), rng);
    for (int s = 0; s < b.batch; ++s) {
      qs.push_back(qs.back() + b.q_len);
      ctx.push_back(b.ctx);
    }
    const int T = qs.back();
    auto d_qs = upload_raw(gpu, qs, DType::kI32, {b.batch + 1});
    auto d_ctx = upload_raw(gpu, ctx, DType::kI32, {b.batch});
    auto d_bt = upload_raw(gpu, tables, DType::kI32, {b.batch, blocks_per_seq});
    AttentionMetadata md;
    md.num_seqs = b.batch;
    md.num_tokens = T;
    md.num_decode_seqs = b.q_len == 1 ? b.batch : 0;
    md.max_blocks_per_seq = blocks_per_seq;
    md.query_start = d_qs.view;
    md.context_lens = d_ctx.view;
    md.block_tables = d_bt.view;
    md.h_query_start = qs.data();
    md.h_context_lens = ctx.data();
    md.h_block_tables = tables.data();
    KvCacheView kv{pool.view.data, num_blocks, layout, Device::kCuda};
    auto q = upload_bf16(gpu, random_bf16(static_cast<size_t>(T) * hq * D, rng), {T, hq * D});
    auto out = device_tensor(gpu, DType::kBF16, {T, hq * D});
    ASSERT_TRUE(gpu.prepare_attention(md, kv, hq).ok());
    const double ms = median_ms(gpu, b.q_len == 1 ? 50 : 3, [&] { gpu.attention(q.view, kv, 0, md, 0.088f, out.view); });
    char name[64];
    std::snprintf(name, sizeof(name), "attention b=%d ctx=%d q=%d", b.batch, b.ctx, b.q_len);
    std::printf("%-44s %10.4f %12.3f\n", name, ms, 32 * ms);
    if (b.q_len > 1) {
      const double flops = 4.0 * hq * D * (static_cast<double>(b.q_len) * b.q_len / 2);
      std::printf("%-44s %10.1f TFLOP/s\n", "  (causal prefill rate)", flops / (ms * 1e9));
    }
  }
  struct G {
    const char* name;
    int n, k;
    DType out;
  };
  const G gemms[] = {{"qkv", 6144, 4096, DType::kBF16}, {"o_proj", 4096, 4096, DType::kBF16},
                     {"gate_up", 28672, 4096, DType::kBF16}, {"down", 4096, 14336, DType::kBF16},
                     {"lm_head", 128256, 4096, DType::kF32}};
  for (int m : {1, 32, 7500}) {
    double layer_ms = 0, head_ms = 0;
    for (const G& g : gemms) {
      auto x = upload_bf16(gpu, random_bf16(static_cast<size_t>(m) * g.k, rng), {m, g.k});
      auto w = upload_bf16(gpu, random_bf16(static_cast<size_t>(g.n) * g.k, rng, 0.02f), {g.n, g.k});
      auto o = device_tensor(gpu, g.out, {m, g.n});
      const int mm = g.out == DType::kF32 && m > 32 ? 1 : m;  // logits only for the last token in prefill
      TensorView xv = x.view.rows(0, mm), ov = o.view.rows(0, mm);
      const double ms = median_ms(gpu, m == 7500 ? 3 : 50, [&] { gpu.matmul(xv, w.view, ov); });
      const double tflops = 2.0 * mm * g.n * g.k / (ms * 1e9);
      const double gbs = (2.0 * g.n * g.k) / (ms * 1e6);
      char name[64];
      std::snprintf(name, sizeof(name), "gemm %s m=%d n=%d k=%d", g.name, mm, g.n, g.k);
      std::printf("%-44s %10.4f   %7.1f TFLOP/s %7.0f GB/s(w)\n", name, ms, tflops, gbs);
      if (g.out == DType::kF32) head_ms += ms;
      else layer_ms += ms;
    }
    std::printf("%-44s %10.3f\n", ("gemms per step m=" + std::to_string(m) + " (32 layers + head)").c_str(),
                32 * layer_ms + head_ms);
  }
}

}  // namespace
}  // namespace tandem
