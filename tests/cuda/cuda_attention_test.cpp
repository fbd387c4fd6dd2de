// CUDA rope_and_cache_write + paged attention against the CPU reference: mixed decode + prefill
// batches, prefixes around the block size, GQA ratios 1/2/3/4/8, head dims 256/128/64/40/16/12 (40 and 12
// take the scalar RoPE path; 12 also the non-vector attention path, where decodes go through the prefill
// kernel), q/k/v as row-strided slices of a fused qkv buffer, and CUDA-graph replay after a new prepare_attention() with grown contexts.
// Thresholds: pool and rotated q/k NMSE <= 1e-5, max-abs <= 0.04 (bf16 storage of values up to ~5);
// attention out NMSE <= 1e-4, max-abs <= 0.03 (bf16 q after RoPE, bf16 probabilities in P.V).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

struct SeqSpec {
  int prefix;
  int q_len;
};

struct AttnCase {
  const char* name;
  int hq, hk, d, block_size;
  int num_decode;  // the first num_decode specs have q_len 1
  std::vector<SeqSpec> seqs;
};

std::vector<float> make_cos_sin(int max_pos, int d, float theta) {
  std::vector<float> cs(static_cast<size_t>(max_pos) * d);
  const int half = d / 2;
  for (int p = 0; p < max_pos; ++p) {
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(static_cast<double>(theta), -2.0 * i / d);
      cs[static_cast<size_t>(p) * d + i] = static_cast<float>(std::cos(p * inv_freq));
      cs[static_cast<size_t>(p) * d + half + i] = static_cast<float>(std::sin(p * inv_freq));
    }
  }
  return cs;
}

// Host metadata plus its device copies (kept at fixed addresses for graph tests).
struct Batch {
  std::vector<int32_t> positions, slots, query_start, context_lens, block_tables;
  int max_blocks = 0, num_tokens = 0, max_ctx = 0;  // max_ctx sizes the tests' cos/sin table
  DeviceTensor d_positions, d_slots, d_query_start, d_context_lens, d_block_tables;

  void build(const std::vector<SeqSpec>& seqs, int block_size, const std::vector<std::vector<int32_t>>& tables,
             int max_blocks_per_seq) {
    positions.clear();
    slots.clear();
    query_start = {0};
    context_lens.clear();
    max_blocks = max_blocks_per_seq;
    block_tables.assign(seqs.size() * max_blocks, 0);
    max_ctx = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const int ctx = seqs[s].prefix + seqs[s].q_len;
      for (int i = 0; i < seqs[s].q_len; ++i) {
        const int pos = seqs[s].prefix + i;
        positions.push_back(pos);
        slots.push_back(tables[s][pos / block_size] * block_size + pos % block_size);
      }
      query_start.push_back(static_cast<int32_t>(positions.size()));
      context_lens.push_back(ctx);
      std::copy(tables[s].begin(), tables[s].end(), block_tables.begin() + s * max_blocks);
      max_ctx = std::max(max_ctx, ctx);
    }
    num_tokens = static_cast<int>(positions.size());
  }
  void upload(Backend& gpu) {
    auto put = [&](DeviceTensor& t, std::vector<int32_t>& v) {
      if (!t.buffer.data() || t.view.numel() < static_cast<int64_t>(v.size())) {
        t = device_tensor(gpu, DType::kI32, {static_cast<int64_t>(std::max<size_t>(v.size(), 1))});
      }
      gpu.copy_to_device(t.view.data, v.data(), v.size() * 4);
    };
    put(d_positions, positions);
    put(d_slots, slots);
    put(d_query_start, query_start);
    put(d_context_lens, context_lens);
    put(d_block_tables, block_tables);
  }
  AttentionMetadata md(bool device, int num_decode) {
    AttentionMetadata m;
    m.num_seqs = static_cast<int>(context_lens.size());
    m.num_tokens = num_tokens;
    m.num_decode_seqs = num_decode;
    m.max_blocks_per_seq = max_blocks;
    m.h_positions = positions.data();
    m.h_slot_mapping = slots.data();
    m.h_query_start = query_start.data();
    m.h_context_lens = context_lens.data();
    m.h_block_tables = block_tables.data();
    if (device) {
      m.positions = d_positions.view;
      m.slot_mapping = d_slots.view;
      m.query_start = d_query_start.view;
      m.context_lens = d_context_lens.view;
      m.block_tables = d_block_tables.view;
    } else {
      m.positions = host_view_i32(positions, {num_tokens});
      m.slot_mapping = host_view_i32(slots, {num_tokens});
      m.query_start = host_view_i32(query_start, {m.num_seqs + 1});
      m.context_lens = host_view_i32(context_lens, {m.num_seqs});
      m.block_tables = host_view_i32(block_tables, {m.num_seqs, max_blocks});
    }
    return m;
  }
};

// A KV pool on both backends with identical random contents, and per-sequence block tables drawn
// from a shuffled block list (so pages are not contiguous).
struct Pools {
  KvLayout layout;
  int64_t num_blocks = 0;
  std::vector<float> cpu;
  DeviceTensor gpu;
  std::vector<std::vector<int32_t>> tables;
  int max_blocks = 0;

  void init(Backends& be, int hk, int d, int block_size, const std::vector<int>& max_ctx_per_seq, std::mt19937& rng) {
    layout = KvLayout{2, hk, d, block_size, DType::kF32};
    int64_t needed = 0;
    max_blocks = 1;
    for (int c : max_ctx_per_seq) {
      const int nb = (c + block_size - 1) / block_size;
      needed += nb;
      max_blocks = std::max(max_blocks, nb);
    }
    num_blocks = needed + 3;
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    tables.clear();
    size_t next = 0;
    for (int c : max_ctx_per_seq) {
      const int nb = (c + block_size - 1) / block_size;
      tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
      next += nb;
    }
    cpu = random_bf16(static_cast<size_t>(num_blocks * layout.elems_per_block()), rng);
    gpu = upload_bf16(*be.gpu, cpu, {num_blocks * layout.elems_per_block()});
  }
  KvCacheView cpu_view() {
    return KvCacheView{cpu.data(), num_blocks, layout, Device::kCpu};
  }
  KvCacheView gpu_view() {
    KvLayout l = layout;
    l.dtype = DType::kBF16;
    return KvCacheView{gpu.view.data, num_blocks, l, Device::kCuda};
  }
};

void run_case(const AttnCase& c, uint32_t seed) {
  SCOPED_TRACE(c.name);
  Backends be = make_backends();
  std::mt19937 rng(seed);
  std::vector<int> ctxs;
  for (const SeqSpec& s : c.seqs) ctxs.push_back(s.prefix + s.q_len);
  Pools pools;
  pools.init(be, c.hk, c.d, c.block_size, ctxs, rng);
  Batch batch;
  batch.build(c.seqs, c.block_size, pools.tables, pools.max_blocks);
  batch.upload(*be.gpu);
  const int T = batch.num_tokens, D = c.d;
  const int width = (c.hq + 2 * c.hk) * D;

  // Fused qkv [T, (Hq + 2Hk) D]; q, k, v are strided column slices of it.
  std::vector<float> qkv = random_bf16(static_cast<size_t>(T) * width, rng);
  auto d_qkv = upload_bf16(*be.gpu, qkv, {T, width});
  auto slices = [&](const TensorView& all, TensorView* q, TensorView* k, TensorView* v) {
    *q = all.cols(0, c.hq * D);
    *k = all.cols(c.hq * D, c.hk * D);
    *v = all.cols((c.hq + c.hk) * D, c.hk * D);
  };
  std::vector<float> cos_sin = make_cos_sin(batch.max_ctx + 1, D, 500000.0f);
  auto d_cos_sin = upload_raw(*be.gpu, cos_sin, DType::kF32, {batch.max_ctx + 1, D});

  const int layer = 1;
  AttentionMetadata md_cpu = batch.md(false, c.num_decode);
  AttentionMetadata md_gpu = batch.md(true, c.num_decode);
  {
    TensorView q, k, v;
    slices(host_view(qkv, {T, width}), &q, &k, &v);
    be.cpu->rope_and_cache_write(q, k, v, host_view(cos_sin, {batch.max_ctx + 1, D}), md_cpu, pools.cpu_view(), layer);
    slices(d_qkv.view, &q, &k, &v);
    be.gpu->rope_and_cache_write(q, k, v, d_cos_sin.view, md_gpu, pools.gpu_view(), layer);
  }
  TANDEM_EXPECT_CLOSE(download(*be.gpu, d_qkv.view), qkv, 1e-5, 0.04);
  TANDEM_EXPECT_CLOSE(download(*be.gpu, pools.gpu.view), pools.cpu, 1e-5, 0.04);

  std::vector<float> ref(static_cast<size_t>(T) * c.hq * D);
  auto d_out = device_tensor(*be.gpu, DType::kBF16, {T, c.hq * D});
  poison(*be.gpu, d_out.view);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  {
    TensorView q, k, v;
    slices(host_view(qkv, {T, width}), &q, &k, &v);
    ASSERT_TRUE(be.cpu->prepare_attention(md_cpu, pools.cpu_view(), c.hq).ok());
    be.cpu->attention(q, pools.cpu_view(), layer, md_cpu, scale, host_view(ref, {T, c.hq * D}));
    // Use the CPU's rotated q (rounded to bf16) so the comparison isolates the attention kernel.
    std::vector<float> qkv_rot(qkv.size());
    for (size_t i = 0; i < qkv.size(); ++i) qkv_rot[i] = bf16_to_f32(f32_to_bf16(qkv[i]));
    auto d_qkv_rot = upload_bf16(*be.gpu, qkv_rot, {T, width});
    slices(d_qkv_rot.view, &q, &k, &v);
    Status st = be.gpu->prepare_attention(md_gpu, pools.gpu_view(), c.hq);
    ASSERT_TRUE(st.ok()) << st.to_string();
    be.gpu->attention(q, pools.gpu_view(), layer, md_gpu, scale, d_out.view);
  }
  TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-4, 0.03);
}

TEST(CudaAttention, Llama8BShapesMixedBatch) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd128 gqa4", 32, 8, 128, 16, 6,
            {{0, 1}, {14, 1}, {15, 1}, {16, 1}, {299, 1}, {1000, 1}, {0, 37}, {16, 16}, {33, 100}, {250, 65}, {15, 2}}},
           11);
}

TEST(CudaAttention, Gqa3HeadDim64) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd64 gqa3", 12, 4, 64, 16, 3, {{5, 1}, {31, 1}, {47, 1}, {0, 130}, {17, 15}, {64, 64}}}, 12);
}

TEST(CudaAttention, HeadDim40NoGqa) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd40 mha", 6, 6, 40, 16, 2, {{100, 1}, {0, 1}, {7, 9}, {32, 70}}}, 13);
}

TEST(CudaAttention, TinyHeadDim16Gqa8) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd16 gqa8", 16, 2, 16, 8, 2, {{3, 1}, {200, 1}, {0, 5}, {9, 33}}}, 14);
}

TEST(CudaAttention, HeadDim12TakesScalarPath) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd12", 4, 1, 12, 16, 2, {{20, 1}, {1, 1}, {0, 19}, {16, 3}}}, 15);
}

TEST(CudaAttention, HeadDim256Gqa2) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"hd256 gqa2", 8, 4, 256, 16, 3, {{100, 1}, {0, 1}, {16, 1}, {5, 40}, {0, 17}}}, 18);
}

TEST(CudaAttention, PrefillOnlyLongPrefix) {
  TANDEM_SKIP_WITHOUT_CUDA();
  run_case({"prefill only", 32, 8, 128, 16, 0, {{1500, 200}, {0, 1}, {31, 33}}}, 16);
}

TEST(CudaAttention, ManyDecodesNoSplit) {
  TANDEM_SKIP_WITHOUT_CUDA();
  std::vector<SeqSpec> seqs;
  std::mt19937 rng(7);
  for (int i = 0; i < 70; ++i) seqs.push_back({static_cast<int>(rng() % 300), 1});
  run_case({"70 decodes", 32, 8, 128, 16, 70, seqs}, 17);
}

// Captures attention for a decode batch, then grows the contexts, re-plans and replays: the graph must
// read the new metadata from the same buffers and match the CPU on the new contexts.
TEST(CudaAttention, GraphReplayAfterReplan) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  ASSERT_TRUE(be.gpu->supports_graphs());
  std::mt19937 rng(21);
  const int hq = 32, hk = 8, D = 128, bs = 16;
  std::vector<SeqSpec> step1 = {{99, 1}, {699, 1}, {32, 1}}, step2 = {{399, 1}, {1499, 1}, {33, 1}};
  Pools pools;
  pools.init(be, hk, D, bs, {400, 1500, 34}, rng);
  Batch batch;
  const int T = 3;
  std::vector<float> q = random_bf16(static_cast<size_t>(T) * hq * D, rng);
  auto d_q = upload_bf16(*be.gpu, q, {T, hq * D});
  auto d_out = device_tensor(*be.gpu, DType::kBF16, {T, hq * D});
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  int graph = -1;
  for (int step = 0; step < 2; ++step) {
    batch.build(step == 0 ? step1 : step2, bs, pools.tables, pools.max_blocks);
    batch.upload(*be.gpu);  // same buffers: sizes do not change between the steps
    AttentionMetadata md_gpu = batch.md(true, T), md_cpu = batch.md(false, T);
    ASSERT_TRUE(be.gpu->prepare_attention(md_gpu, pools.gpu_view(), hq).ok());
    if (step == 0) {
      ASSERT_TRUE(be.gpu->begin_capture().ok());
      be.gpu->attention(d_q.view, pools.gpu_view(), 0, md_gpu, scale, d_out.view);
      auto id = be.gpu->end_capture();
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      graph = *id;
    }
    poison(*be.gpu, d_out.view);
    ASSERT_TRUE(be.gpu->replay_graph(graph).ok());
    std::vector<float> ref(static_cast<size_t>(T) * hq * D);
    be.cpu->attention(host_view(q, {T, hq * D}), pools.cpu_view(), 0, md_cpu, scale, host_view(ref, {T, hq * D}));
    SCOPED_TRACE(step);
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-4, 0.03);
  }
  EXPECT_FALSE(be.gpu->replay_graph(graph + 1).ok());
}

TEST(CudaAttention, RejectsUnsupportedShapes) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  Batch batch;
  batch.build({{0, 1}}, 16, {{0}}, 1);
  batch.upload(*be.gpu);
  auto pool = device_tensor(*be.gpu, DType::kBF16, {2 * 2 * 16 * 512});
  KvCacheView kv{pool.view.data, 1, KvLayout{1, 1, 512, 16, DType::kBF16}, Device::kCuda};
  EXPECT_FALSE(be.gpu->prepare_attention(batch.md(true, 1), kv, 4).ok());  // head_dim 512
  kv.layout = KvLayout{1, 3, 64, 16, DType::kBF16};
  EXPECT_FALSE(be.gpu->prepare_attention(batch.md(true, 1), kv, 4).ok());  // 4 q heads over 3 kv heads
}

}  // namespace
}  // namespace tandem
