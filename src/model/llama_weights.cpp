// LlamaWeights loading: plans every destination view in one allocation, then fills each from its
// Hugging Face tensor(s) (shape-checked, dtype-converted) or from the deterministic generator.
#include "model/llama_weights.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "model/safetensors_checkpoint.h"
#include "model/weight_init.h"

namespace tandem {
namespace {

// One HF tensor copied into rows [row_offset, row_offset + rows) of a destination weight.
struct Source {
  std::string name;
  std::vector<int64_t> shape;
  int64_t row_offset = 0;
  bool is_norm = false;
};

struct Planned {
  TensorView* dst = nullptr;
  std::vector<int64_t> shape;  // destination shape
  std::vector<Source> sources;
  size_t offset_bytes = 0;
};

class ProgressBar {
 public:
  ProgressBar(bool enabled, size_t total) : enabled_(enabled && isatty(STDERR_FILENO)), total_(std::max<size_t>(1, total)) {}
  void advance(size_t bytes) {
    done_ += bytes;
    if (!enabled_) return;
    int pct = static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_));
    if (pct == last_pct_) return;
    last_pct_ = pct;
    int filled = pct * 30 / 100;
    std::fprintf(stderr, "\rLoading weights [%.*s%*s] %3d%% (%zu / %zu MiB)", filled, "##############################",
                 30 - filled, "", pct, done_ >> 20, total_ >> 20);
    if (done_ >= total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  size_t total_;
  size_t done_ = 0;
  int last_pct_ = -1;
};

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t numel_of(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Fills n elements of dst (device memory of element size dsz) chunk by chunk: fill(out, first, count)
// writes elements [first, first + count) to host memory `out`, in parallel pieces; the chunk then goes
// through the staging buffer to the device (on the CPU backend fill writes into dst directly).
template <typename Fill>
void upload_chunked(Backend& backend, void* dst, size_t dsz, int64_t n, int64_t chunk, std::vector<uint8_t>& staging,
                    const Fill& fill) {
  for (int64_t b = 0; b < n; b += chunk) {
    const int64_t cnt = std::min(chunk, n - b);
    uint8_t* out = backend.device() == Device::kCpu ? static_cast<uint8_t*>(dst) + b * dsz : nullptr;
    if (!out) {
      staging.resize(static_cast<size_t>(cnt) * dsz);
      out = staging.data();
    }
    parallel_chunks(cnt, 1 << 16, 0, [&](int64_t s, int64_t e) { fill(out + s * dsz, b + s, e - s); });
    if (backend.device() != Device::kCpu) {
      backend.copy_to_device(static_cast<uint8_t*>(dst) + b * dsz, out, cnt * dsz);
      backend.synchronize();  // the staging buffer is refilled next
    }
  }
}

// Copies host data of type `src_type` into device memory dst (compute dtype), converting on the way.
void upload_converted(Backend& backend, const void* src, DType src_type, void* dst, DType dst_type, int64_t n,
                      std::vector<uint8_t>& staging) {
  const size_t dsz = dtype_size(dst_type), ssz = dtype_size(src_type);
  upload_chunked(backend, dst, dsz, n, int64_t{8} << 20, staging, [&](uint8_t* out, int64_t first, int64_t count) {
    Status st = convert_host(static_cast<const uint8_t*>(src) + first * ssz, src_type, out, dst_type,
                             static_cast<size_t>(count));
    TANDEM_CHECK(st.ok(), "{}", st.to_string());  // float types only, checked by the caller
  });
}

void upload_random(Backend& backend, uint64_t seed, const Source& src, void* dst, DType dtype, std::vector<uint8_t>& staging) {
  const uint64_t stream = weight_stream_id(src.name);
  const float mean = src.is_norm ? 1.0f : 0.0f, stddev = src.is_norm ? 0.0f : 0.02f;
  upload_chunked(backend, dst, dtype_size(dtype), numel_of(src.shape), int64_t{16} << 20, staging,
                 [&](uint8_t* out, int64_t first, int64_t count) {
                   fill_random_weights(seed, stream, mean, stddev, dtype, out, first, count);
                 });
}

}  // namespace

Result<LlamaWeights> LlamaWeights::load(const std::filesystem::path& model_dir, const ModelConfig& c,
                                        const std::string& load_format, uint64_t seed, bool show_progress,
                                        Backend& backend) {
  const bool dummy = load_format == "dummy";
  if (!dummy && load_format != "auto" && load_format != "safetensors") {
    return InvalidArgumentError("unsupported load_format '{}' (auto, safetensors, dummy)", load_format);
  }
  const DType dt = backend.compute_dtype();
  const int64_t h = c.hidden_size, v = c.vocab_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t qd = static_cast<int64_t>(c.num_heads) * d, kd = static_cast<int64_t>(c.num_kv_heads) * d;

  LlamaWeights w;
  w.layers.resize(c.num_layers);
  std::vector<Planned> plan;
  auto add = [&](TensorView* dst, std::vector<int64_t> shape, std::vector<Source> sources) {
    plan.push_back(Planned{dst, std::move(shape), std::move(sources), 0});
  };
  add(&w.embed_tokens, {v, h}, {{"model.embed_tokens.weight", {v, h}, 0, false}});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LlamaLayerWeights& L = w.layers[l];
    add(&L.input_norm, {h}, {{p + "input_layernorm.weight", {h}, 0, true}});
    add(&L.qkv, {qd + 2 * kd, h},
        {{p + "self_attn.q_proj.weight", {qd, h}, 0, false},
         {p + "self_attn.k_proj.weight", {kd, h}, qd, false},
         {p + "self_attn.v_proj.weight", {kd, h}, qd + kd, false}});
    add(&L.o_proj, {h, qd}, {{p + "self_attn.o_proj.weight", {h, qd}, 0, false}});
    add(&L.post_norm, {h}, {{p + "post_attention_layernorm.weight", {h}, 0, true}});
    add(&L.gate_up, {2 * inter, h},
        {{p + "mlp.gate_proj.weight", {inter, h}, 0, false}, {p + "mlp.up_proj.weight", {inter, h}, inter, false}});
    add(&L.down_proj, {h, inter}, {{p + "mlp.down_proj.weight", {h, inter}, 0, false}});
  }
  add(&w.final_norm, {h}, {{"model.norm.weight", {h}, 0, true}});
  if (!c.tie_word_embeddings) add(&w.lm_head, {v, h}, {{"lm_head.weight", {v, h}, 0, false}});

  // Check the checkpoint before allocating anything.
  std::unique_ptr<SafetensorsCheckpoint> ckpt;
  if (!dummy) {
    TANDEM_ASSIGN_OR_RETURN(ckpt, SafetensorsCheckpoint::open_dir(model_dir));
    for (const auto& pl : plan) {
      for (const auto& s : pl.sources) {
        TANDEM_ASSIGN_OR_RETURN(const SafetensorsTensor* t, ckpt->get(s.name));
        if (t->shape != s.shape) {
          return InvalidArgumentError("{}: tensor '{}' has shape {}, expected {} for this config.json",
                                      ckpt->file_of(s.name), s.name, t->shape_string(), shape_str(s.shape));
        }
        if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
          return InvalidArgumentError("{}: tensor '{}' has unsupported dtype {}", ckpt->file_of(s.name), s.name,
                                      dtype_name(t->dtype));
        }
      }
    }
  }

  size_t total = 0;
  for (auto& pl : plan) {
    pl.offset_bytes = total;
    total += (static_cast<size_t>(numel_of(pl.shape)) * dtype_size(dt) + 255) / 256 * 256;
  }
  TANDEM_ASSIGN_OR_RETURN(w.storage, backend.allocate(total));
  for (auto& pl : plan) {
    TensorView tv;
    tv.data = static_cast<uint8_t*>(w.storage.data()) + pl.offset_bytes;
    tv.dtype = dt;
    tv.device = backend.device();
    tv.ndim = static_cast<int>(pl.shape.size());
    for (int i = 0; i < tv.ndim; ++i) tv.shape[i] = pl.shape[i];
    *pl.dst = tv;
  }
  if (c.tie_word_embeddings) w.lm_head = w.embed_tokens;

  ProgressBar progress(show_progress, total);
  std::vector<uint8_t> staging;
  for (const auto& pl : plan) {
    for (const auto& s : pl.sources) {
      const int64_t row_elems = pl.shape.size() == 2 ? pl.shape[1] : 0;
      void* dst = static_cast<uint8_t*>(pl.dst->data) + static_cast<size_t>(s.row_offset * row_elems) * dtype_size(dt);
      if (dummy) {
        upload_random(backend, seed, s, dst, dt, staging);
      } else {
        const SafetensorsTensor* t = ckpt->get(s.name).value();
        upload_converted(backend, t->data, t->dtype, dst, dt, t->numel(), staging);
      }
      progress.advance(static_cast<size_t>(numel_of(s.shape)) * dtype_size(dt));
    }
  }
  backend.synchronize();
  return w;
}

}  // namespace tandem
