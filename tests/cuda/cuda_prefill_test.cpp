// CUDA prefill attention (FlashInfer path at head_dim 128, backend/cuda/prefill_attention_fi.h) against
// the CPU reference: odd chunk lengths, cached prefixes around the block size, several sequences of
// different lengths in one batch, decodes mixed into the same batch, GQA 4 with 32/8 and 8/2 heads,
// q as a row-strided slice of a fused qkv buffer, and a CUDA-graph replay after a re-plan.
// Thresholds: NMSE <= 1e-4 and max-abs <= 0.03 (bf16 q/K/V, bf16 probabilities in P.V, bf16 output of
// values up to ~4); outputs are poisoned with NaN first, so an unwritten row fails.
// Also a benchmark, FA2 vs FA3 (DISABLED_, run with --gtest_also_run_disabled_tests
// --gtest_filter='CudaBench.*Prefill*').
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

#include "cuda/cuda_test_util.h"
#ifdef TANDEM_HAVE_CUDA
#include "backend/cuda/prefill_attention_fa3.h"
#endif

namespace tandem {
namespace {

using namespace cuda_test;

struct Seq {
  int prefix;
  int q_len;
};

// Pool with identical random contents on both backends, shuffled block tables, and the batch metadata
// (host mirrors + device copies).
struct PrefillFixture {
  int hq = 32, hk = 8, d = 128, bs = 16;
  KvLayout layout;
  int64_t num_blocks = 0;
  int max_blocks = 1;
  std::vector<float> pool_cpu;
  DeviceTensor pool_gpu;
  std::vector<int32_t> query_start, context_lens, block_tables;
  DeviceTensor d_qs, d_ctx, d_bt;
  int num_tokens = 0;

  // Block tables drawn from `ids` in order (the same ids for the same sequence index across calls).
  void set_batch(Backend& gpu, const std::vector<Seq>& seqs, const std::vector<int32_t>& ids) {
    query_start = {0};
    context_lens.clear();
    block_tables.assign(seqs.size() * max_blocks, 0);
    size_t next = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const int ctx = seqs[s].prefix + seqs[s].q_len;
      query_start.push_back(query_start.back() + seqs[s].q_len);
      context_lens.push_back(ctx);
      for (int b = 0; b < max_blocks; ++b) block_tables[s * max_blocks + b] = ids[next + b];
      next += max_blocks;
    }
    num_tokens = query_start.back();
    auto put = [&](DeviceTensor& t, const std::vector<int32_t>& v) {
      if (!t.buffer.data()) t = device_tensor(gpu, DType::kI32, {static_cast<int64_t>(v.size())});
      ASSERT_EQ(t.view.numel(), static_cast<int64_t>(v.size()));
      gpu.copy_to_device(t.view.data, v.data(), v.size() * 4);
    };
    put(d_qs, query_start);
    put(d_ctx, context_lens);
    put(d_bt, block_tables);
  }
  AttentionMetadata md(bool device, int num_decode) {
    AttentionMetadata m;
    m.num_seqs = static_cast<int>(context_lens.size());
    m.num_tokens = num_tokens;
    m.num_decode_seqs = num_decode;
    m.max_blocks_per_seq = max_blocks;
    m.h_query_start = query_start.data();
    m.h_context_lens = context_lens.data();
    m.h_block_tables = block_tables.data();
    if (device) {
      m.query_start = d_qs.view;
      m.context_lens = d_ctx.view;
      m.block_tables = d_bt.view;
    } else {
      m.query_start = host_view_i32(query_start, {m.num_seqs + 1});
      m.context_lens = host_view_i32(context_lens, {m.num_seqs});
      m.block_tables = host_view_i32(block_tables, {m.num_seqs, max_blocks});
    }
    return m;
  }
  KvCacheView cpu_view() { return KvCacheView{pool_cpu.data(), num_blocks, layout, Device::kCpu}; }
  KvCacheView gpu_view() {
    KvLayout l = layout;
    l.dtype = DType::kBF16;
    return KvCacheView{pool_gpu.view.data, num_blocks, l, Device::kCuda};
  }
};

std::vector<int32_t> shuffled_ids(int64_t n, std::mt19937& rng) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

// Runs one batch (decodes first) through both backends; q is a column slice of a wider buffer when
// `strided_q` (as the model's fused qkv output is).
void run_prefill_case(int hq, int hk, int bs, int num_decode, const std::vector<Seq>& seqs, bool strided_q,
                      uint32_t seed) {
  Backends be = make_backends();
  ASSERT_TRUE(be.gpu && be.cpu);
  std::mt19937 rng(seed);
  PrefillFixture f;
  f.hq = hq;
  f.hk = hk;
  f.bs = bs;
  {
    // init() with one block list per sequence of max_blocks each.
    f.layout = KvLayout{2, hk, f.d, bs, DType::kF32};
    for (const Seq& s : seqs) f.max_blocks = std::max(f.max_blocks, (s.prefix + s.q_len + bs - 1) / bs);
    f.num_blocks = static_cast<int64_t>(seqs.size()) * f.max_blocks + 3;
    f.pool_cpu = random_bf16(static_cast<size_t>(f.num_blocks * f.layout.elems_per_block()), rng);
    f.pool_gpu = upload_bf16(*be.gpu, f.pool_cpu, {f.num_blocks * f.layout.elems_per_block()});
    f.set_batch(*be.gpu, seqs, shuffled_ids(f.num_blocks, rng));
  }
  const int T = f.num_tokens, D = f.d;
  const int width = strided_q ? (hq + 2 * hk) * D : hq * D;
  std::vector<float> qbuf = random_bf16(static_cast<size_t>(T) * width, rng);
  auto d_qbuf = upload_bf16(*be.gpu, qbuf, {T, width});
  const TensorView q_cpu = host_view(qbuf, {T, width}).cols(0, hq * D);
  const TensorView q_gpu = d_qbuf.view.cols(0, hq * D);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  std::vector<float> ref(static_cast<size_t>(T) * hq * D);
  AttentionMetadata md_cpu = f.md(false, num_decode), md_gpu = f.md(true, num_decode);
  ASSERT_TRUE(be.cpu->prepare_attention(md_cpu, f.cpu_view(), hq).ok());
  be.cpu->attention(q_cpu, f.cpu_view(), 1, md_cpu, scale, host_view(ref, {T, hq * D}));

  auto d_out = device_tensor(*be.gpu, DType::kBF16, {T, hq * D});
  poison(*be.gpu, d_out.view);
  Status st = be.gpu->prepare_attention(md_gpu, f.gpu_view(), hq);
  ASSERT_TRUE(st.ok()) << st.to_string();
  be.gpu->attention(q_gpu, f.gpu_view(), 1, md_gpu, scale, d_out.view);
  TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-4, 0.03);
}

TEST(CudaPrefill, OddLengthsPrefixesAroundBlockSize) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_prefill_case(32, 8, 16, 0,
                   {{0, 1}, {0, 7}, {15, 17}, {16, 33}, {17, 129}, {31, 255}, {1, 1000}, {47, 3}, {0, 16}}, false, 101);
}

TEST(CudaPrefill, SingleLongChunkAfterLongPrefix) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_prefill_case(32, 8, 16, 0, {{2999, 301}}, true, 102);
}

TEST(CudaPrefill, MixedWithDecodesStridedQ) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_prefill_case(32, 8, 16, 5, {{0, 1}, {15, 1}, {16, 1}, {700, 1}, {33, 1}, {0, 77}, {16, 16}, {129, 63}, {5, 2}},
                   true, 103);
}

TEST(CudaPrefill, Gqa4SmallHeadCountBlock8) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_prefill_case(8, 2, 8, 2, {{9, 1}, {200, 1}, {7, 9}, {8, 120}, {0, 513}}, false, 104);
}

TEST(CudaPrefill, ManySequencesOfDifferentLengths) {
  TANDEM_SKIP_WITHOUT_CUDA();
  std::mt19937 rng(9);
  std::vector<Seq> seqs;
  for (int i = 0; i < 24; ++i) seqs.push_back({static_cast<int>(rng() % 400), 1 + static_cast<int>(rng() % 90)});
  run_prefill_case(32, 8, 16, 0, seqs, true, 105);
}

// Captures prefill attention, then re-plans the same batch shape (same sequences and token counts,
// different prefixes and block tables) and replays: the graph must read the new plan.
TEST(CudaPrefill, GraphReplayAfterReplan) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  ASSERT_TRUE(be.gpu && be.cpu && be.gpu->supports_graphs());
  std::mt19937 rng(106);
  PrefillFixture f;
  const std::vector<Seq> step1 = {{0, 1}, {0, 100}, {16, 57}}, step2 = {{40, 1}, {333, 100}, {0, 57}};
  f.layout = KvLayout{2, f.hk, f.d, f.bs, DType::kF32};
  f.max_blocks = (433 + f.bs - 1) / f.bs;
  f.num_blocks = 3 * f.max_blocks + 2;
  f.pool_cpu = random_bf16(static_cast<size_t>(f.num_blocks * f.layout.elems_per_block()), rng);
  f.pool_gpu = upload_bf16(*be.gpu, f.pool_cpu, {f.num_blocks * f.layout.elems_per_block()});
  const int T = 158, hq = f.hq, D = f.d;
  std::vector<float> q = random_bf16(static_cast<size_t>(T) * hq * D, rng);
  auto d_q = upload_bf16(*be.gpu, q, {T, hq * D});
  auto d_out = device_tensor(*be.gpu, DType::kBF16, {T, hq * D});
  const float scale = 0.0883883f;
  int graph = -1;
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE(step);
    f.set_batch(*be.gpu, step == 0 ? step1 : step2, shuffled_ids(f.num_blocks, rng));
    AttentionMetadata md_gpu = f.md(true, 1), md_cpu = f.md(false, 1);
    ASSERT_EQ(md_gpu.num_tokens, T);
    ASSERT_TRUE(be.gpu->prepare_attention(md_gpu, f.gpu_view(), hq).ok());
    if (step == 0) {
      ASSERT_TRUE(be.gpu->begin_capture().ok());
      be.gpu->attention(d_q.view, f.gpu_view(), 0, md_gpu, scale, d_out.view);
      auto id = be.gpu->end_capture();
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      graph = *id;
    }
    poison(*be.gpu, d_out.view);
    ASSERT_TRUE(be.gpu->replay_graph(graph).ok());
    std::vector<float> ref(static_cast<size_t>(T) * hq * D);
    be.cpu->attention(host_view(q, {T, hq * D}), f.cpu_view(), 0, md_cpu, scale, host_view(ref, {T, hq * D}));
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-4, 0.03);
  }
}

// Prefill attention per layer at Llama-3.1-8B shapes (median of 20 single launches, after 3 warm-ups),
// FA2 and FA3 side by side (TANDEM_CUDA_PREFILL_ATTENTION forced per backend; FA3 only where compiled in
// and on sm_90). The two outputs are compared (NMSE) as a sanity check at lengths the tests do not cover.
TEST(CudaBench, DISABLED_PrefillAttention) {
  TANDEM_SKIP_WITHOUT_CUDA();
  struct Path {
    const char* name;
    std::unique_ptr<Backend> backend;
  };
  std::vector<Path> paths;
#ifdef TANDEM_HAVE_CUDA
  const bool have_fa3 = cuda::fa3_prefill_available(0) == cudaSuccess;
  const bool fa3_compiled = cuda::fa3_prefill_compiled();
#else
  const bool have_fa3 = false, fa3_compiled = false;
#endif
  for (const char* name : {"fa2", "fa3"}) {
    if (std::string(name) == "fa3" && !have_fa3) continue;
    const char* old = std::getenv("TANDEM_CUDA_PREFILL_ATTENTION");
    const std::string saved = old ? old : "";
    setenv("TANDEM_CUDA_PREFILL_ATTENTION", name, 1);
    auto be = make_cuda_backend(0);
    if (old) setenv("TANDEM_CUDA_PREFILL_ATTENTION", saved.c_str(), 1);
    else unsetenv("TANDEM_CUDA_PREFILL_ATTENTION");
    ASSERT_TRUE(be.ok()) << be.status().to_string();
    paths.push_back({name, std::move(be).value()});
  }
  if (!have_fa3) std::printf("(FA3 unavailable: %s)\n", fa3_compiled ? "not sm_90" : "not compiled in");
  Backend& gpu = *paths[0].backend;
  std::mt19937 rng(1);
  std::printf("%-32s %9s %8s %9s %8s %8s %10s\n", "prefill attn (hq32 hk8 d128)", "fa2 ms", "TFLOP/s", "fa3 ms",
              "TFLOP/s", "fa2/fa3", "nmse");
  for (Seq s : {Seq{0, 7500}, Seq{0, 2048}, Seq{5452, 2048}, Seq{0, 512}}) {
    const int bs = 16, hq = 32, hk = 8, D = 128;
    const int ctx = s.prefix + s.q_len;
    const int nb = (ctx + bs - 1) / bs;
    KvLayout layout{1, hk, D, bs, DType::kBF16};
    auto pool = upload_bf16(gpu, random_bf16(static_cast<size_t>(nb * layout.elems_per_block()), rng),
                            {nb * layout.elems_per_block()});
    std::vector<int32_t> qs{0, s.q_len}, cl{ctx}, bt = shuffled_ids(nb, rng);
    auto d_qs = upload_raw(gpu, qs, DType::kI32, {2});
    auto d_cl = upload_raw(gpu, cl, DType::kI32, {1});
    auto d_bt = upload_raw(gpu, bt, DType::kI32, {1, nb});
    AttentionMetadata md;
    md.num_seqs = 1;
    md.num_tokens = s.q_len;
    md.max_blocks_per_seq = nb;
    md.query_start = d_qs.view;
    md.context_lens = d_cl.view;
    md.block_tables = d_bt.view;
    md.h_query_start = qs.data();
    md.h_context_lens = cl.data();
    md.h_block_tables = bt.data();
    KvCacheView kv{pool.view.data, nb, layout, Device::kCuda};
    auto q = upload_bf16(gpu, random_bf16(static_cast<size_t>(s.q_len) * hq * D, rng), {s.q_len, hq * D});
    // Causal FLOPs: 4 * hq * D * sum over query rows of the keys it sees.
    const double pairs = static_cast<double>(s.q_len) * s.prefix + static_cast<double>(s.q_len) * (s.q_len + 1) / 2;
    double ms[2] = {0, 0};
    std::vector<float> outs[2];
    for (size_t p = 0; p < paths.size(); ++p) {
      Backend& be = *paths[p].backend;
      auto out = device_tensor(be, DType::kBF16, {s.q_len, hq * D});
      ASSERT_TRUE(be.prepare_attention(md, kv, hq).ok());
      for (int i = 0; i < 3; ++i) be.attention(q.view, kv, 0, md, 0.0883883f, out.view);
      be.synchronize();
      std::vector<float> times;
      for (int r = 0; r < 20; ++r) {
        // One launch of ~0.1 ms or more: a host clock around synchronize() adds only microseconds.
        auto t0 = std::chrono::steady_clock::now();
        be.attention(q.view, kv, 0, md, 0.0883883f, out.view);
        be.synchronize();
        times.push_back(std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(times.begin(), times.end());
      ms[p] = times[times.size() / 2];
      outs[p] = download(be, out.view);
      EXPECT_TRUE(std::all_of(outs[p].begin(), outs[p].end(), [](float x) { return std::isfinite(x); }))
          << paths[p].name;
    }
    auto tflops = [&](double t) { return t > 0 ? 4.0 * hq * D * pairs / (t * 1e9) : 0.0; };
    char name[64];
    std::snprintf(name, sizeof(name), "prefix %d + chunk %d", s.prefix, s.q_len);
    double nmse = 0;
    if (paths.size() == 2) {
      nmse = compare(outs[1], outs[0]).nmse;
      EXPECT_LE(nmse, 1e-4) << name << ": FA3 output differs from FA2";
    }
    std::printf("%-32s %9.4f %8.1f %9.4f %8.1f %8.2f %10.2e\n", name, ms[0], tflops(ms[0]), ms[1], tflops(ms[1]),
                ms[1] > 0 ? ms[0] / ms[1] : 0.0, nmse);
  }
}

}  // namespace
}  // namespace tandem
