// CUDA prefill attention on the FA3 path (FlashInfer's sm90 kernel, backend/cuda/prefill_attention_fa3.h),
// forced with TANDEM_CUDA_PREFILL_ATTENTION=fa3 (and the same cases forced to fa2), against the CPU
// reference: several requests per batch, lengths that are not multiples of the block (16), the q tile (128) or the KV tile (96), cached prefixes
// (chunked prefill: q rows only for the new tokens), GQA 4 and 8, a 1-token prompt, decodes mixed into
// the batch (they stay on the decode kernel), q as a row-strided slice of a fused qkv buffer, and a
// CUDA-graph replay after a re-plan. Thresholds as for FA2: NMSE <= 1e-4 and max-abs <= 0.03 (bf16
// q/K/V/P/output); outputs are poisoned with NaN first, so an unwritten row fails.
// Skips without a GPU, or where FA3 is not compiled in (no CUTLASS headers) or the device is not sm_90.
#ifdef TANDEM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <string>

#include "backend/cuda/prefill_attention_fa3.h"
#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

#define TANDEM_SKIP_WITHOUT_FA3()                                                                       \
  do {                                                                                                  \
    TANDEM_SKIP_WITHOUT_CUDA();                                                                         \
    if (::tandem::cuda::fa3_prefill_available(0) != cudaSuccess)                                        \
      GTEST_SKIP() << (::tandem::cuda::fa3_prefill_compiled() ? "device 0 is not sm_90 (FA3 needs wgmma) or the kernel does not load" \
                                                              : "FA3 not compiled in (no CUTLASS headers)"); \
  } while (0)

// Sets an environment variable for the lifetime of the object (restores the previous value).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::unique_ptr<Backend> make_gpu_with_prefill(const char* path) {
  ScopedEnv env("TANDEM_CUDA_PREFILL_ATTENTION", path);
  auto gpu = make_cuda_backend(0);
  EXPECT_TRUE(gpu.ok()) << gpu.status().to_string();
  return gpu.ok() ? std::move(gpu).value() : nullptr;
}

struct Seq {
  int prefix;
  int q_len;
};

// One batch: pool contents identical on both backends, shuffled block tables, metadata mirrors.
struct Batch {
  int hq, hk, d = 128, bs = 16;
  KvLayout layout;
  int64_t num_blocks = 0;
  int max_blocks = 1;
  std::vector<float> pool_cpu;
  DeviceTensor pool_gpu;
  std::vector<int32_t> query_start{0}, context_lens, block_tables;
  DeviceTensor d_qs, d_ctx, d_bt;

  // Pool sized for `max_blocks` blocks per sequence (at least what `seqs` need) of seqs.size() sequences.
  Batch(Backend& gpu, int hq_, int hk_, int bs_, const std::vector<Seq>& seqs, std::mt19937& rng, int min_blocks = 1)
      : hq(hq_), hk(hk_), bs(bs_) {
    layout = KvLayout{2, hk, d, bs, DType::kF32};
    max_blocks = min_blocks;
    for (const Seq& s : seqs) max_blocks = std::max(max_blocks, (s.prefix + s.q_len + bs - 1) / bs);
    num_blocks = static_cast<int64_t>(seqs.size()) * max_blocks + 3;
    pool_cpu = random_bf16(static_cast<size_t>(num_blocks * layout.elems_per_block()), rng);
    pool_gpu = upload_bf16(gpu, pool_cpu, {num_blocks * layout.elems_per_block()});
    const int64_t n = static_cast<int64_t>(seqs.size());
    d_qs = device_tensor(gpu, DType::kI32, {n + 1});
    d_ctx = device_tensor(gpu, DType::kI32, {n});
    d_bt = device_tensor(gpu, DType::kI32, {n * max_blocks});
    set(gpu, seqs, rng);
  }
  // New lengths and shuffled block tables for the same number of sequences, written into the same
  // device tensors (so a captured graph reads them).
  void set(Backend& gpu, const std::vector<Seq>& seqs, std::mt19937& rng) {
    TANDEM_CHECK(d_ctx.view.numel() == static_cast<int64_t>(seqs.size()));
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    query_start = {0};
    context_lens.clear();
    block_tables.assign(seqs.size() * max_blocks, 0);
    for (size_t s = 0; s < seqs.size(); ++s) {
      TANDEM_CHECK((seqs[s].prefix + seqs[s].q_len + bs - 1) / bs <= max_blocks);
      query_start.push_back(query_start.back() + seqs[s].q_len);
      context_lens.push_back(seqs[s].prefix + seqs[s].q_len);
      for (int b = 0; b < max_blocks; ++b) block_tables[s * max_blocks + b] = ids[s * max_blocks + b];
    }
    gpu.copy_to_device(d_qs.view.data, query_start.data(), query_start.size() * 4);
    gpu.copy_to_device(d_ctx.view.data, context_lens.data(), context_lens.size() * 4);
    gpu.copy_to_device(d_bt.view.data, block_tables.data(), block_tables.size() * 4);
  }
  int num_tokens() const { return query_start.back(); }
  AttentionMetadata md(bool device, int num_decode) {
    AttentionMetadata m;
    m.num_seqs = static_cast<int>(context_lens.size());
    m.num_tokens = num_tokens();
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

// Runs one batch (decodes first) through the CPU reference and the GPU backend forced to FA3, then to
// FA2 (with FA3 the default on sm_90, this keeps FA2 checked on the same shapes).
void run_fa3_case(int hq, int hk, int bs, int num_decode, const std::vector<Seq>& seqs, bool strided_q,
                  uint32_t seed) {
  auto cpu = make_cpu_backend(4);
  ASSERT_TRUE(cpu.ok());
  std::unique_ptr<Backend> gpus[2] = {make_gpu_with_prefill("fa3"), make_gpu_with_prefill("fa2")};
  ASSERT_TRUE(gpus[0] && gpus[1]);
  std::mt19937 rng(seed);
  Batch b(*gpus[0], hq, hk, bs, seqs, rng);
  const int T = b.num_tokens(), D = b.d;
  const int width = strided_q ? (hq + 2 * hk) * D : hq * D;
  std::vector<float> qbuf = random_bf16(static_cast<size_t>(T) * width, rng);
  auto d_qbuf = upload_bf16(*gpus[0], qbuf, {T, width});
  const TensorView q_cpu = host_view(qbuf, {T, width}).cols(0, hq * D);
  const TensorView q_gpu = d_qbuf.view.cols(0, hq * D);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  std::vector<float> ref(static_cast<size_t>(T) * hq * D);
  AttentionMetadata md_cpu = b.md(false, num_decode), md_gpu = b.md(true, num_decode);
  ASSERT_TRUE((*cpu)->prepare_attention(md_cpu, b.cpu_view(), hq).ok());
  (*cpu)->attention(q_cpu, b.cpu_view(), 1, md_cpu, scale, host_view(ref, {T, hq * D}));

  for (int p = 0; p < 2; ++p) {
    SCOPED_TRACE(p == 0 ? "fa3" : "fa2");
    Backend& gpu = *gpus[p];
    auto d_out = device_tensor(gpu, DType::kBF16, {T, hq * D});
    poison(gpu, d_out.view);
    Status st = gpu.prepare_attention(md_gpu, b.gpu_view(), hq);
    ASSERT_TRUE(st.ok()) << st.to_string();
    gpu.attention(q_gpu, b.gpu_view(), 1, md_gpu, scale, d_out.view);
    TANDEM_EXPECT_CLOSE(download(gpu, d_out.view), ref, 1e-4, 0.03);
  }
}

TEST(CudaPrefillFa3, OddLengthsAndPrefixesGqa4) {
  TANDEM_SKIP_WITHOUT_FA3();
  run_fa3_case(32, 8, 16, 0,
               {{0, 1}, {0, 7}, {15, 17}, {16, 33}, {17, 129}, {31, 255}, {1, 1000}, {47, 3}, {0, 16}, {0, 96},
                {0, 97}, {0, 128}, {5, 191}},
               false, 201);
}

TEST(CudaPrefillFa3, OneTokenPrompt) {
  TANDEM_SKIP_WITHOUT_FA3();
  run_fa3_case(32, 8, 16, 0, {{0, 1}}, false, 202);
}

TEST(CudaPrefillFa3, LongChunkAfterLongPrefixStridedQ) {
  TANDEM_SKIP_WITHOUT_FA3();
  run_fa3_case(32, 8, 16, 0, {{2999, 301}, {5452, 200}}, true, 203);
}

TEST(CudaPrefillFa3, Gqa8MixedWithDecodes) {
  TANDEM_SKIP_WITHOUT_FA3();
  run_fa3_case(32, 4, 16, 3, {{9, 1}, {200, 1}, {700, 1}, {0, 1}, {7, 9}, {8, 120}, {0, 513}, {130, 77}}, true, 204);
}

TEST(CudaPrefillFa3, Gqa8FewHeadsBlock8) {
  TANDEM_SKIP_WITHOUT_FA3();
  run_fa3_case(16, 2, 8, 0, {{3, 250}, {0, 1}, {64, 64}, {100, 333}}, false, 205);
}

TEST(CudaPrefillFa3, ManySequencesOfDifferentLengths) {
  TANDEM_SKIP_WITHOUT_FA3();
  std::mt19937 rng(9);
  std::vector<Seq> seqs;
  for (int i = 0; i < 40; ++i) seqs.push_back({static_cast<int>(rng() % 600), 1 + static_cast<int>(rng() % 300)});
  run_fa3_case(32, 8, 16, 0, seqs, true, 206);
}

// Captures FA3 prefill attention, then re-plans the same batch shape (same sequences and token counts,
// other prefixes, lengths and block tables) and replays: the graph must read the new plan.
TEST(CudaPrefillFa3, GraphReplayAfterReplan) {
  TANDEM_SKIP_WITHOUT_FA3();
  auto cpu = make_cpu_backend(4);
  ASSERT_TRUE(cpu.ok());
  std::unique_ptr<Backend> gpu = make_gpu_with_prefill("fa3");
  ASSERT_TRUE(gpu && gpu->supports_graphs());
  const int hq = 32, hk = 8, D = 128;
  std::mt19937 rng(207);
  // Both steps: 1 decode + 2 prefills, 258 tokens, one pool.
  const std::vector<Seq> step1 = {{0, 1}, {0, 200}, {16, 57}}, step2 = {{40, 1}, {333, 100}, {0, 157}};
  Batch b(*gpu, hq, hk, 16, step1, rng, /*min_blocks=*/(433 + 15) / 16);
  const int T = b.num_tokens();
  std::vector<float> q = random_bf16(static_cast<size_t>(T) * hq * D, rng);
  auto d_q = upload_bf16(*gpu, q, {T, hq * D});
  auto d_out = device_tensor(*gpu, DType::kBF16, {T, hq * D});
  const float scale = 0.0883883f;
  int graph = -1;
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE(step);
    if (step == 1) b.set(*gpu, step2, rng);
    ASSERT_EQ(b.num_tokens(), T);
    AttentionMetadata md_gpu = b.md(true, 1), md_cpu = b.md(false, 1);
    ASSERT_TRUE(gpu->prepare_attention(md_gpu, b.gpu_view(), hq).ok());
    if (step == 0) {
      ASSERT_TRUE(gpu->begin_capture().ok());
      gpu->attention(d_q.view, b.gpu_view(), 0, md_gpu, scale, d_out.view);
      auto id = gpu->end_capture();
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      graph = *id;
    }
    poison(*gpu, d_out.view);
    ASSERT_TRUE(gpu->replay_graph(graph).ok());
    std::vector<float> ref(static_cast<size_t>(T) * hq * D);
    (*cpu)->attention(host_view(q, {T, hq * D}), b.cpu_view(), 0, md_cpu, scale, host_view(ref, {T, hq * D}));
    TANDEM_EXPECT_CLOSE(download(*gpu, d_out.view), ref, 1e-4, 0.03);
  }
}

TEST(CudaPrefillFa3, RejectsUnknownPathName) {
  TANDEM_SKIP_WITHOUT_CUDA();
  ScopedEnv env("TANDEM_CUDA_PREFILL_ATTENTION", "fa4");
  auto gpu = make_cuda_backend(0);
  ASSERT_FALSE(gpu.ok());
  EXPECT_NE(gpu.status().to_string().find("TANDEM_CUDA_PREFILL_ATTENTION"), std::string::npos)
      << gpu.status().to_string();
}

}  // namespace
}  // namespace tandem
#endif  // TANDEM_HAVE_CUDA
