// Benchmarks, not tests (DISABLED_): the split-K decode attention kernel (merge fused in) at Llama-3.1-8B
// shapes for several split counts, over 32 layers' worth of KV (so reads come from HBM, not L2), timed
// with CUDA events, which tells which split count decode_num_splits() should pick; and the fused RoPE +
// KV-cache write for decode- and prefill-sized token counts:
//   test_cuda --gtest_also_run_disabled_tests --gtest_filter='CudaDecodeSplitBench.*'
// Calls the kernels directly (CUDA runtime headers): built only with the CUDA backend.
#ifdef TANDEM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

TEST(CudaDecodeSplitBench, DISABLED_SplitSweep) {
  TANDEM_SKIP_WITHOUT_CUDA();
  auto gpu_r = make_cuda_backend(0);
  ASSERT_TRUE(gpu_r.ok());
  Backend& gpu = **gpu_r;
  std::mt19937 rng(3);
  const int hq = 32, hk = 8, D = 128, bs = 16, layers = 32;
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::printf("%6s %6s %7s %10s %8s %10s\n", "batch", "ctx", "splits", "us/layer", "TB/s", "x32 ms");
  for (auto [batch, ctx] : {std::pair{1, 2048}, std::pair{1, 7500}, std::pair{2, 7500}, std::pair{4, 2048},
                            std::pair{4, 7500}, std::pair{32, 2048}}) {
    const int blocks_per_seq = (ctx + bs - 1) / bs;
    const int64_t num_blocks = static_cast<int64_t>(blocks_per_seq) * batch;
    KvLayout layout{layers, hk, D, bs, DType::kBF16};
    const int64_t total = num_blocks * layout.elems_per_block();
    auto pool = device_tensor(gpu, DType::kBF16, {total});
    {
      std::vector<float> pattern = random_bf16(1 << 20, rng);
      auto p = upload_bf16(gpu, pattern, {1 << 20});
      for (int64_t off = 0; off < total; off += 1 << 20)
        gpu.copy_device(static_cast<uint16_t*>(pool.view.data) + off, p.view.data,
                        std::min<int64_t>(1 << 20, total - off) * 2);
      gpu.synchronize();
    }
    std::vector<int32_t> qs(batch + 1), ctxs(batch, ctx), tables(num_blocks);
    std::iota(qs.begin(), qs.end(), 0);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), rng);
    auto d_qs = upload_raw(gpu, qs, DType::kI32, {batch + 1});
    auto d_ctx = upload_raw(gpu, ctxs, DType::kI32, {batch});
    auto d_bt = upload_raw(gpu, tables, DType::kI32, {batch, blocks_per_seq});
    auto q = upload_bf16(gpu, random_bf16(static_cast<size_t>(batch) * hq * D, rng), {batch, hq * D});
    auto out = device_tensor(gpu, DType::kBF16, {batch, hq * D});
    gpu.synchronize();
    const int64_t max_entries = static_cast<int64_t>(batch) * hq * cuda::kMaxDecodeSplits;
    auto po = device_tensor(gpu, DType::kF32, {max_entries * D});
    auto pml = device_tensor(gpu, DType::kF32, {max_entries * 2});
    std::vector<int32_t> zeros(batch * hq, 0);
    auto counters = upload_raw(gpu, zeros, DType::kI32, {batch * hq});
    const cuda::DecodeScratch scratch{po.view.as<float>(), pml.view.as<float>(), counters.view.as<int32_t>()};
    KvCacheView kv{pool.view.data, num_blocks, layout, Device::kCuda};
    const int chosen = cuda::decode_num_splits(batch, hk, hq, sms);
    std::vector<int> sweep = batch >= 32 ? std::vector<int>{1, 2, 3, 4, 8}
                                          : std::vector<int>{4, 8, 12, 16, 24, 32, 48, 64, 96, 128};
    if (std::find(sweep.begin(), sweep.end(), chosen) == sweep.end()) sweep.push_back(chosen);
    for (int splits : sweep) {
      cuda::PagedAttentionArgs a;
      a.q = q.view.data;
      a.q_stride = hq * D;
      a.out = out.view.data;
      a.query_start = d_qs.view.as<int32_t>();
      a.context_lens = d_ctx.view.as<int32_t>();
      a.block_tables = d_bt.view.as<int32_t>();
      a.max_blocks_per_seq = blocks_per_seq;
      a.num_q_heads = hq;
      a.scale = 0.088f;
      auto run_layer = [&](int l) {
        a.kv.base = kv.base;
        a.kv.layer_offset = static_cast<int64_t>(l) * layout.elems_per_layer_block();
        a.kv.elems_per_block = layout.elems_per_block();
        a.kv.elems_per_page = layout.elems_per_page();
        a.kv.block_size = bs;
        a.kv.num_kv_heads = hk;
        a.kv.head_dim = D;
        cuda::launch_paged_decode(a, batch, splits, scratch, stream);
      };
      for (int l = 0; l < layers; ++l) run_layer(l);
      std::vector<float> t;
      for (int r = 0; r < 5; ++r) {
        cudaEventRecord(e0, stream);
        for (int l = 0; l < layers; ++l) run_layer(l);
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        t.push_back(ms / layers);
      }
      ASSERT_EQ(cudaGetLastError(), cudaSuccess);
      std::sort(t.begin(), t.end());
      const double ms = t[t.size() / 2];
      const double bytes = 2.0 * batch * ctx * hk * D * 2;
      std::printf("%6d %6d %7d %10.1f %8.2f %10.3f%s\n", batch, ctx, splits, ms * 1000, bytes / (ms * 1e9), 32 * ms,
                  splits == chosen ? "  <- decode_num_splits" : "");
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
}

// RoPE + KV-cache write at Llama-3.1-8B shapes (q/k/v as column slices of fused qkv rows), us per call
// and GB/s of bytes moved (q and k read and written, v read, k and v written to the pool).
TEST(CudaDecodeSplitBench, DISABLED_RopeCacheWrite) {
  TANDEM_SKIP_WITHOUT_CUDA();
  auto gpu_r = make_cuda_backend(0);
  ASSERT_TRUE(gpu_r.ok());
  Backend& gpu = **gpu_r;
  std::mt19937 rng(5);
  const int hq = 32, hk = 8, D = 128, bs = 16, max_pos = 8192;
  const int width = (hq + 2 * hk) * D;
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> cs(static_cast<size_t>(max_pos) * D);
  for (size_t i = 0; i < cs.size(); ++i) cs[i] = std::cos(0.001f * static_cast<float>(i));
  auto d_cs = upload_raw(gpu, cs, DType::kF32, {max_pos, D});
  std::printf("%8s %10s %8s\n", "tokens", "us/call", "GB/s");
  for (int n : {1, 2, 8, 32, 512, 7500}) {
    const int blocks = (n + bs - 1) / bs + 1;
    KvLayout layout{1, hk, D, bs, DType::kBF16};
    auto pool = device_tensor(gpu, DType::kBF16, {blocks * layout.elems_per_block()});
    auto qkv = upload_bf16(gpu, random_bf16(static_cast<size_t>(n) * width, rng), {n, width});
    std::vector<int32_t> pos(n), slots(n);
    for (int i = 0; i < n; ++i) pos[i] = (i * 7 + 3) % max_pos;
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);
    auto d_pos = upload_raw(gpu, pos, DType::kI32, {n});
    auto d_slots = upload_raw(gpu, slots, DType::kI32, {n});
    cuda::KvPoolLayer kv;
    kv.base = pool.view.data;
    kv.elems_per_block = layout.elems_per_block();
    kv.elems_per_page = layout.elems_per_page();
    kv.block_size = bs;
    kv.num_kv_heads = hk;
    kv.head_dim = D;
    auto* base = static_cast<uint16_t*>(qkv.view.data);
    auto run = [&] {
      cuda::launch_rope_and_cache_write(base, width, base + hq * D, width, base + (hq + hk) * D, width, d_cs.view.as<float>(),
                                        d_pos.view.as<int32_t>(), d_slots.view.as<int32_t>(), n, hq, kv, stream);
    };
    const int iters = 32;
    for (int i = 0; i < iters; ++i) run();
    std::vector<float> t;
    for (int r = 0; r < 5; ++r) {
      cudaEventRecord(e0, stream);
      for (int i = 0; i < iters; ++i) run();
      cudaEventRecord(e1, stream);
      cudaEventSynchronize(e1);
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      t.push_back(ms / iters);
    }
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    std::sort(t.begin(), t.end());
    const double ms = t[t.size() / 2];
    const double bytes = static_cast<double>(n) * (2.0 * (hq + hk) * D * 2 + hk * D * 2 + 2.0 * hk * D * 2);
    std::printf("%8d %10.2f %8.0f\n", n, ms * 1000, bytes / (ms * 1e6));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace tandem

#endif  // TANDEM_HAVE_CUDA
