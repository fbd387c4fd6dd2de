// Acceptance check of the CUDA backend against HF transformers at Llama-3.1-8B shape.
//
// tools/make_llama8b_reference.py (on the GPU machine) writes a random bf16 checkpoint with
// save_pretrained (sharded safetensors) into $TANDEM_HF_REF_DIR and, under reference/, HF's greedy
// continuations of a few random prompts plus HF's logits at the last positions of prompt + continuation.
// This test loads the checkpoint with the real loader (LlamaModel::load, load_format auto) on the CUDA
// backend, teacher-forces every sequence as one prefill (chunked when longer than the workspace, so the
// long prompt also exercises chunked prefill over a cached prefix), and requires, against HF's logits:
//   - cosine similarity >= 0.999 at every position,
//   - top-1 agreement >= 98% over all positions.
// It prints a per-sequence table, the noise floor the tool measured (HF bf16 vs HF fp32), tandem vs the
// fp32 logits when present, and the load throughput from the page cache (the files are read once first).
// Skips unless TANDEM_HF_REF_DIR is set and a CUDA device is visible (run by scripts/gpu-8b-check.sh).
// Env: TANDEM_HF_REF_CHUNK = tokens per forward (default 2048); TANDEM_HF_REF_BACKEND=cpu (see below).
// HfReferenceHarness checks the teacher-forcing harness itself on the CPU backend (runs everywhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "model/llama_model.h"
#include "model/model_config.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kMinCosine = 0.999;
constexpr double kMinTop1 = 0.98;
constexpr int kBlockSize = 16;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a whole raw float32 file; empty on any mismatch with the expected element count.
std::vector<float> read_f32(const fs::path& p, size_t expected_elems) {
  std::error_code ec;
  if (fs::file_size(p, ec) != expected_elems * sizeof(float) || ec) return {};
  std::vector<float> v(expected_elems);
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  if (!in) return {};
  return v;
}

// Reads every safetensors file once (so the timed load reads from the page cache); returns their bytes.
size_t warm_page_cache(const fs::path& dir, double* seconds) {
  auto t0 = Clock::now();
  size_t total = 0;
  std::vector<char> buf(64 << 20);
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    std::ifstream in(e.path(), std::ios::binary);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) total += in.gcount();
  }
  *seconds = seconds_since(t0);
  return total;
}

// Device i32 array uploaded from host.
struct DeviceInts {
  Buffer buffer;
  TensorView view;
  DeviceInts(Backend& be, const std::vector<int32_t>& host) {
    auto b = be.allocate(std::max<size_t>(1, host.size()) * sizeof(int32_t));
    TANDEM_CHECK(b.ok(), "{}", b.status().to_string());
    buffer = std::move(b).value();
    if (!host.empty()) be.copy_to_device(buffer.data(), host.data(), host.size() * sizeof(int32_t));
    view = TensorView(buffer.data(), DType::kI32, be.device(), {static_cast<int64_t>(host.size())});
  }
};

// Teacher-forces `ids` through the model (one sequence owning KV blocks 0, 1, ...), chunk by chunk, and
// returns fp32 logits [ids.size() - first, vocab] of positions first .. ids.size()-1. `prefill_ms` gets
// the summed forward time.
std::vector<float> teacher_forced_logits(LlamaModel& model, Backend& be, const KvCacheView& kv,
                                         const std::vector<int32_t>& ids, int first, int chunk, TensorView logits_dev,
                                         double* prefill_ms) {
  const int len = static_cast<int>(ids.size());
  const int64_t vocab = model.config().vocab_size;
  std::vector<float> out(static_cast<size_t>(len - first) * vocab);
  *prefill_ms = 0;
  for (int start = 0; start < len; start += chunk) {
    const int end = std::min(len, start + chunk), n = end - start;
    const int num_blocks = (end + kBlockSize - 1) / kBlockSize;
    std::vector<int32_t> tok(ids.begin() + start, ids.begin() + end), pos(n), slots(n), rows;
    for (int i = 0; i < n; ++i) {
      pos[i] = start + i;
      slots[i] = start + i;  // block b holds positions [b*16, b*16+16): slot == position
      if (start + i >= first) rows.push_back(i);
    }
    std::vector<int32_t> qstart = {0, n}, ctx = {end}, table(num_blocks);
    for (int b = 0; b < num_blocks; ++b) table[b] = b;
    DeviceInts d_tok(be, tok), d_pos(be, pos), d_slots(be, slots), d_qstart(be, qstart), d_ctx(be, ctx),
        d_table(be, table), d_rows(be, rows);

    ForwardBatch batch;
    batch.token_ids = d_tok.view;
    AttentionMetadata& md = batch.attn;
    md.num_seqs = 1;
    md.num_tokens = n;
    md.num_decode_seqs = n == 1 ? 1 : 0;
    md.max_blocks_per_seq = num_blocks;
    md.positions = d_pos.view;
    md.slot_mapping = d_slots.view;
    md.query_start = d_qstart.view;
    md.context_lens = d_ctx.view;
    md.block_tables = d_table.view.reshape({1, num_blocks});
    md.h_positions = pos.data();
    md.h_slot_mapping = slots.data();
    md.h_query_start = qstart.data();
    md.h_context_lens = ctx.data();
    md.h_block_tables = table.data();
    batch.sample_rows = d_rows.view;
    batch.num_sample = static_cast<int>(rows.size());

    be.synchronize();
    auto t0 = Clock::now();
    model.forward(batch, kv, logits_dev);
    be.synchronize();
    *prefill_ms += 1e3 * seconds_since(t0);
    if (!rows.empty()) {
      const size_t offset = static_cast<size_t>(start + rows[0] - first) * vocab;
      be.copy_to_host(out.data() + offset, logits_dev.data, rows.size() * vocab * sizeof(float));
    }
  }
  return out;
}

struct RowStats {
  double cos = 0;
  double max_abs = 0;
  bool top1_match = false;
  bool finite = true;
  float ref_gap = 0;  // on a top-1 mismatch: ref[ref_top] - ref[our_top] (how near a tie it was for HF)
};

int argmax(const float* x, int64_t n) {
  int best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = static_cast<int>(i);
  }
  return best;
}

RowStats compare_row(const float* got, const float* ref, int64_t n) {
  RowStats s;
  double dot = 0, ng = 0, nr = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) s.finite = false;
    dot += static_cast<double>(got[i]) * ref[i];
    ng += static_cast<double>(got[i]) * got[i];
    nr += static_cast<double>(ref[i]) * ref[i];
    s.max_abs = std::max(s.max_abs, std::fabs(static_cast<double>(got[i]) - ref[i]));
  }
  s.cos = (ng > 0 && nr > 0) ? dot / std::sqrt(ng * nr) : 0.0;
  if (!s.finite) s.cos = 0.0;
  const int ours = argmax(got, n), theirs = argmax(ref, n);
  s.top1_match = ours == theirs;
  if (!s.top1_match) s.ref_gap = ref[theirs] - ref[ours];
  return s;
}

struct Summary {
  double cos_min = 1e9, cos_sum = 0, max_abs = 0;
  int rows = 0, top1 = 0, below = 0, non_finite = 0;
  float worst_mismatch_gap = 0;
  void add(const RowStats& r) {
    cos_min = std::min(cos_min, r.cos);
    cos_sum += r.cos;
    max_abs = std::max(max_abs, r.max_abs);
    ++rows;
    top1 += r.top1_match ? 1 : 0;
    below += r.cos < kMinCosine ? 1 : 0;
    non_finite += r.finite ? 0 : 1;
    if (!r.top1_match) worst_mismatch_gap = std::max(worst_mismatch_gap, r.ref_gap);
  }
  double top1_rate() const { return rows ? static_cast<double>(top1) / rows : 0.0; }
};

TEST(HfReference, Llama8BShapeMatchesTransformers) {
  const char* env = std::getenv("TANDEM_HF_REF_DIR");
  if (!env || !*env) {
    GTEST_SKIP() << "TANDEM_HF_REF_DIR is not set: this acceptance check needs a reference written by "
                    "tools/make_llama8b_reference.py (scripts/gpu-8b-check.sh does both)";
  }
  // TANDEM_HF_REF_BACKEND=cpu runs the same check on the CPU backend (for a small reference, to try the
  // harness on a machine without a GPU); the acceptance check is the CUDA default.
  const char* backend_env = std::getenv("TANDEM_HF_REF_BACKEND");
  const bool on_cpu = backend_env && std::string(backend_env) == "cpu";
  if (!on_cpu && cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible: the HF reference check needs a GPU";
  const fs::path dir(env);
  const fs::path manifest_path = dir / "reference" / "manifest.json";
  ASSERT_TRUE(fs::exists(manifest_path)) << manifest_path << " not found: the reference is missing or incomplete "
                                            "(rerun tools/make_llama8b_reference.py with --force)";
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_text(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    FAIL() << manifest_path << ": " << e.what();
  }
  auto config = ModelConfig::from_file(dir / "config.json");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  const int64_t vocab = config->vocab_size;
  ASSERT_EQ(vocab, manifest.at("vocab_size").get<int64_t>()) << "config.json and the reference disagree on vocab_size";

  int chunk = 2048;
  if (const char* c = std::getenv("TANDEM_HF_REF_CHUNK")) chunk = std::max(1, std::atoi(c));
  int max_len = 0, max_positions = 0;
  for (const auto& s : manifest.at("sequences")) {
    max_len = std::max(max_len, s.at("num_tokens").get<int>());
    max_positions = std::max(max_positions, s.at("num_positions").get<int>());
  }

  auto backend_or = on_cpu ? make_cpu_backend(0) : make_cuda_backend(0);
  ASSERT_TRUE(backend_or.ok()) << backend_or.status().to_string();
  Backend& be = **backend_or;

  // Load throughput from the page cache: read the files once, then time LlamaModel::load.
  double warm_s = 0;
  const size_t ckpt_bytes = warm_page_cache(dir, &warm_s);
  ASSERT_GT(ckpt_bytes, 0u) << "no .safetensors files in " << dir;
  ModelLoadOptions lo;
  lo.load_format = "auto";
  lo.max_num_batched_tokens = chunk;
  lo.max_num_seqs = std::max(1, max_positions);
  lo.max_model_len = (max_len + kBlockSize - 1) / kBlockSize * kBlockSize;
  auto t_load = Clock::now();
  auto model_or = LlamaModel::load(dir, *config, lo, be);
  be.synchronize();
  const double load_s = seconds_since(t_load);
  ASSERT_TRUE(model_or.ok()) << model_or.status().to_string();
  LlamaModel& model = **model_or;
  std::printf("[hf-ref] backend %s; %zu sequences; %d tokens per forward (TANDEM_HF_REF_CHUNK)\n", be.name().c_str(),
              manifest.at("sequences").size(), chunk);
  std::printf("[hf-ref] checkpoint %.2f GB: first read %.2f s (%.2f GB/s); LlamaModel::load from the page cache "
              "%.2f s = %.2f GB/s (target >= 5 GB/s); weights on device %.2f GB, workspace %.1f MB\n",
              ckpt_bytes / 1e9, warm_s, ckpt_bytes / 1e9 / warm_s, load_s, ckpt_bytes / 1e9 / load_s,
              model.weight_bytes() / 1e9, model.workspace_bytes() / 1e6);

  // KV pool for the longest sequence; every sequence starts over at block 0.
  KvCacheView kv;
  kv.layout = KvLayout{config->num_layers, config->num_kv_heads, config->head_dim, kBlockSize, be.compute_dtype()};
  kv.num_blocks = (max_len + kBlockSize - 1) / kBlockSize;
  kv.device = be.device();
  auto kv_buf = be.allocate(kv.layout.block_bytes() * kv.num_blocks);
  ASSERT_TRUE(kv_buf.ok()) << kv_buf.status().to_string();
  kv.base = kv_buf->data();
  auto logits_buf = be.allocate(static_cast<size_t>(max_positions) * vocab * sizeof(float));
  ASSERT_TRUE(logits_buf.ok()) << logits_buf.status().to_string();
  TensorView logits_dev(logits_buf->data(), DType::kF32, be.device(), {max_positions, vocab});

  Summary all, all_fp32;
  std::printf("[hf-ref] %-6s %6s %6s %10s %10s %7s %9s %11s | %-34s | %s\n", "seq", "tokens", "rows", "cos_min",
              "cos_mean", "top1%", "max|diff|", "prefill_ms", "tandem vs HF fp32 (cos_min/top1%)",
              "HF bf16 vs HF fp32 (cos_min/top1%)");
  for (const auto& s : manifest.at("sequences")) {
    const std::string name = s.at("name").get<std::string>();
    SCOPED_TRACE(name);
    auto tokens = nlohmann::json::parse(read_text(dir / "reference" / s.at("tokens_file").get<std::string>()));
    auto ids = tokens.at("token_ids").get<std::vector<int32_t>>();
    const int first = s.at("first_position").get<int>(), rows = s.at("num_positions").get<int>();
    ASSERT_EQ(first + rows, static_cast<int>(ids.size())) << "reference positions must be the last ones";
    auto ref = read_f32(dir / "reference" / s.at("logits_file").get<std::string>(), static_cast<size_t>(rows) * vocab);
    ASSERT_FALSE(ref.empty()) << name << ": logits file missing or not " << rows << " x " << vocab << " float32";

    double prefill_ms = 0;
    auto got = teacher_forced_logits(model, be, kv, ids, first, chunk, logits_dev, &prefill_ms);
    Summary seq;
    for (int r = 0; r < rows; ++r) {
      RowStats st = compare_row(got.data() + static_cast<size_t>(r) * vocab, ref.data() + static_cast<size_t>(r) * vocab, vocab);
      seq.add(st);
      all.add(st);
      if (st.cos < kMinCosine && seq.below <= 5) {  // name the first few; the total is asserted below
        ADD_FAILURE() << name << " position " << first + r << ": cosine " << st.cos << " < " << kMinCosine;
      }
    }
    std::string vs_fp32 = "-", floor = "-";
    if (s.contains("fp32_logits_file")) {
      auto ref32 = read_f32(dir / "reference" / s.at("fp32_logits_file").get<std::string>(), static_cast<size_t>(rows) * vocab);
      if (!ref32.empty()) {
        Summary s32;
        for (int r = 0; r < rows; ++r) {
          RowStats st = compare_row(got.data() + static_cast<size_t>(r) * vocab, ref32.data() + static_cast<size_t>(r) * vocab, vocab);
          s32.add(st);
          all_fp32.add(st);
        }
        vs_fp32 = fmt::format("{:.6f} / {:.1f}", s32.cos_min, 100 * s32.top1_rate());
      }
    }
    if (s.contains("hf_checks") && s["hf_checks"].contains("hf_bf16_vs_hf_fp32")) {
      const auto& f = s["hf_checks"]["hf_bf16_vs_hf_fp32"];
      floor = fmt::format("{:.6f} / {:.1f}", f.value("cos_min", 0.0), 100 * f.value("top1", 0.0));
    }
    std::printf("[hf-ref] %-6s %6zu %6d %10.6f %10.6f %7.1f %9.4f %11.1f | %-34s | %s%s\n", name.c_str(), ids.size(), rows,
                seq.cos_min, seq.cos_sum / rows, 100 * seq.top1_rate(), seq.max_abs, prefill_ms, vs_fp32.c_str(),
                floor.c_str(), static_cast<int>(ids.size()) > chunk ? "  (chunked)" : "");
    if (seq.top1 < seq.rows) {
      std::printf("[hf-ref]        %d top-1 mismatch(es); largest HF logit gap between HF's and tandem's top token: %.4f\n",
                  seq.rows - seq.top1, seq.worst_mismatch_gap);
    }
    EXPECT_EQ(seq.non_finite, 0) << name << ": non-finite logits";
  }
  std::printf("[hf-ref] overall: %d positions, cos_min %.6f, cos_mean %.6f, top-1 %.2f%% (need >= %.0f%%), "
              "positions below cos %.3f: %d\n",
              all.rows, all.cos_min, all.cos_sum / std::max(1, all.rows), 100 * all.top1_rate(), 100 * kMinTop1,
              kMinCosine, all.below);
  if (all_fp32.rows > 0) {
    std::printf("[hf-ref] tandem vs HF fp32 forward: cos_min %.6f, top-1 %.2f%% (info: HF bf16 itself is in the "
                "table's last column)\n",
                all_fp32.cos_min, 100 * all_fp32.top1_rate());
  }
  ASSERT_GT(all.rows, 0) << "the reference has no positions";
  EXPECT_EQ(all.below, 0) << "positions with cosine < " << kMinCosine;
  EXPECT_GE(all.top1_rate(), kMinTop1) << "top-1 agreement with HF over " << all.rows << " positions";
}

// The harness on the CPU backend with a tiny random model: chunked teacher forcing (chunks that split the
// kept positions, and one-token chunks that run as decodes) must give the logits of one forward.
TEST(HfReferenceHarness, ChunkedTeacherForcingMatchesOneForwardOnCpu) {
  auto be = make_cpu_backend(2).value();
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  ModelLoadOptions lo;
  lo.load_format = "dummy";
  lo.seed = 7;
  lo.max_num_batched_tokens = 64;
  lo.max_num_seqs = 64;
  lo.max_model_len = 64;
  auto model = LlamaModel::load("", c, lo, *be);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  std::vector<int32_t> ids(53);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 31 + 5) % c.vocab_size);
  const int first = 20, rows = static_cast<int>(ids.size()) - first;
  KvCacheView kv;
  kv.layout = KvLayout{c.num_layers, c.num_kv_heads, c.head_dim, kBlockSize, be->compute_dtype()};
  kv.num_blocks = 4;
  kv.device = be->device();
  auto kv_buf = be->allocate(kv.layout.block_bytes() * kv.num_blocks);
  ASSERT_TRUE(kv_buf.ok());
  kv.base = kv_buf->data();
  auto logits_buf = be->allocate(static_cast<size_t>(rows) * c.vocab_size * sizeof(float));
  ASSERT_TRUE(logits_buf.ok());
  TensorView logits(logits_buf->data(), DType::kF32, be->device(), {rows, c.vocab_size});
  double ms = 0;
  auto whole = teacher_forced_logits(**model, *be, kv, ids, first, 64, logits, &ms);
  for (int chunk : {25, 7, 1}) {
    SCOPED_TRACE(chunk);
    auto chunked = teacher_forced_logits(**model, *be, kv, ids, first, chunk, logits, &ms);
    ASSERT_EQ(chunked.size(), whole.size());
    Summary sum;
    for (int r = 0; r < rows; ++r) {
      sum.add(compare_row(chunked.data() + static_cast<size_t>(r) * c.vocab_size,
                          whole.data() + static_cast<size_t>(r) * c.vocab_size, c.vocab_size));
    }
    EXPECT_EQ(sum.top1, rows);
    EXPECT_LE(sum.max_abs, 1e-4);
    EXPECT_GE(sum.cos_min, 0.999999);
  }
}

}  // namespace
}  // namespace tandem
