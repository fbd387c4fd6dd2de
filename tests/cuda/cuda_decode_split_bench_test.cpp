// Benchmark, not a test (DISABLED_): the split-K decode attention kernel at Llama-3.1-8B shapes for
// several split counts, over 32 layers' worth of KV (so reads come from HBM, not L2), timed with CUDA
// events. Tells which split count decode_num_splits() should pick:
//   test_cuda --gtest_also_run_disabled_tests --gtest_filter='CudaDecodeSplitBench.*'
// Calls the kernels directly (CUDA runtime headers): built only with the CUDA backend.
#ifdef TANDEM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
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
  for (auto [batch, ctx] : {std::pair{1, 7500}, std::pair{32, 2048}}) {
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
    const int64_t max_entries = static_cast<int64_t>(batch) * hq * 64;
    auto po = device_tensor(gpu, DType::kF32, {max_entries * D});
    auto pml = device_tensor(gpu, DType::kF32, {max_entries * 2});
    KvCacheView kv{pool.view.data, num_blocks, layout, Device::kCuda};
    const int chosen = cuda::decode_num_splits(batch, hk, hq, sms);
    for (int splits : {1, 4, 8, 16, 32, 48, 64}) {
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
        cuda::launch_paged_decode(a, batch, splits, po.view.as<float>(), pml.view.as<float>(), stream);
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

}  // namespace
}  // namespace tandem

#endif  // TANDEM_HAVE_CUDA
