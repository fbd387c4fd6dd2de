// LlamaModel: load() (weights, RoPE table, workspace) and the forward pass of a mixed batch.
//
// Workspace (allocated once, sized by ModelLoadOptions): T = max_num_batched_tokens, S = max_num_seqs
//   residual [T, H]   the hidden state stream
//   normed   [T, H]   normed input of each block (o_proj and down_proj add into residual directly:
//                     Backend::matmul_add, so each norm reads the stream once); at the end, the residual
//                     rows that produce logits, gathered to its front and normed in place (any token may
//                     be sampled: teacher-forced logits and prompt logprobs want all of them)
//   wide     [T, max((Hq+2Hk)D, 2I)]   qkv, later gate_up
//   narrow   [T, max(Hq D, I)]          attention output, later silu_mul output
#include "model/llama_model.h"

#include <cmath>

#include "model/llama_weights.h"

namespace tandem {
namespace {

class LlamaModelImpl final : public LlamaModel {
 public:
  LlamaModelImpl(ModelConfig config, Backend& backend) : config_(std::move(config)), backend_(backend) {}

  Status init(const std::filesystem::path& model_dir, const ModelLoadOptions& opt) {
    const ModelConfig& c = config_;
    if (opt.max_num_batched_tokens <= 0 || opt.max_num_seqs <= 0) {
      return InvalidArgumentError("max_num_batched_tokens ({}) and max_num_seqs ({}) must be positive",
                                  opt.max_num_batched_tokens, opt.max_num_seqs);
    }
    TANDEM_ASSIGN_OR_RETURN(weights_, LlamaWeights::load(model_dir, c, opt.load_format, opt.seed, opt.show_progress, backend_));

    // RoPE cos/sin table, fp32 [P, D]: cos in [0, D/2), sin in [D/2, D), angle = float(pos) * inv_freq
    // (an fp32 product, as transformers computes it).
    max_positions_ = opt.max_model_len > 0 ? opt.max_model_len : c.max_position_embeddings;
    const int64_t d = c.head_dim, half = d / 2;
    std::vector<float> inv_freq = c.rope_inv_freq();
    std::vector<float> table(static_cast<size_t>(max_positions_) * d);
    for (int64_t p = 0; p < max_positions_; ++p) {
      for (int64_t i = 0; i < half; ++i) {
        float angle = static_cast<float>(p) * inv_freq[i];
        table[p * d + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        table[p * d + half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
    TANDEM_ASSIGN_OR_RETURN(cos_sin_buf_, backend_.allocate(table.size() * sizeof(float)));
    backend_.copy_to_device(cos_sin_buf_.data(), table.data(), table.size() * sizeof(float));
    cos_sin_ = TensorView(cos_sin_buf_.data(), DType::kF32, backend_.device(), {max_positions_, d});

    // Workspace.
    const DType dt = backend_.compute_dtype();
    const int64_t t = opt.max_num_batched_tokens, h = c.hidden_size;
    const int64_t qkv = (static_cast<int64_t>(c.num_heads) + 2 * c.num_kv_heads) * d;
    const int64_t wide = std::max<int64_t>(qkv, 2 * static_cast<int64_t>(c.intermediate_size));
    const int64_t narrow = std::max<int64_t>(static_cast<int64_t>(c.num_heads) * d, c.intermediate_size);
    const size_t esz = dtype_size(dt);
    auto round = [](size_t b) { return (b + 255) / 256 * 256; };
    const size_t sizes[] = {round(t * h * esz), round(t * h * esz), round(t * wide * esz), round(t * narrow * esz)};
    size_t total = 0;
    for (size_t b : sizes) total += b;
    TANDEM_ASSIGN_OR_RETURN(workspace_, backend_.allocate(total));
    uint8_t* base = static_cast<uint8_t*>(workspace_.data());
    auto carve = [&](size_t bytes, std::initializer_list<int64_t> shape) {
      TensorView v(base, dt, backend_.device(), shape);
      base += bytes;
      return v;
    };
    residual_ = carve(sizes[0], {t, h});
    normed_ = carve(sizes[1], {t, h});
    wide_ = carve(sizes[2], {t, wide});
    narrow_ = carve(sizes[3], {t, narrow});
    max_tokens_ = t;
    return Status::Ok();
  }

  const ModelConfig& config() const override { return config_; }
  size_t weight_bytes() const override { return weights_.bytes(); }
  size_t workspace_bytes() const override { return workspace_.size() + cos_sin_buf_.size(); }

  void forward(const ForwardBatch& batch, const KvCacheView& kv, TensorView logits) override {
    const ModelConfig& c = config_;
    const AttentionMetadata& md = batch.attn;
    const int64_t n = md.num_tokens;
    TANDEM_CHECK(n <= max_tokens_, "batch of {} tokens exceeds max_num_batched_tokens {}", n, max_tokens_);
    TANDEM_CHECK(batch.num_sample <= n || n == 0, "{} sampled rows for {} tokens", batch.num_sample, n);
    TANDEM_CHECK(kv.layout.num_layers == c.num_layers && kv.layout.num_kv_heads == c.num_kv_heads &&
                     kv.layout.head_dim == c.head_dim,
                 "KV layout does not match the model");
    if (n == 0) return;
    const int64_t d = c.head_dim;
    const int64_t qd = static_cast<int64_t>(c.num_heads) * d, kd = static_cast<int64_t>(c.num_kv_heads) * d;
    const int64_t inter = c.intermediate_size;
    const float eps = c.rms_norm_eps;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));

    Status st = backend_.prepare_attention(md, kv, c.num_heads);
    TANDEM_CHECK(st.ok(), "prepare_attention: {}", st.to_string());

    TensorView x = residual_.rows(0, n);
    TensorView normed = normed_.rows(0, n);
    // Matmul and silu outputs are contiguous views over the front of the shared buffers.
    TensorView qkv(wide_.data, wide_.dtype, wide_.device, {n, qd + 2 * kd});
    TensorView gate_up(wide_.data, wide_.dtype, wide_.device, {n, 2 * inter});
    TensorView attn_out(narrow_.data, narrow_.dtype, narrow_.device, {n, qd});
    TensorView act(narrow_.data, narrow_.dtype, narrow_.device, {n, inter});

    backend_.embedding(batch.token_ids, weights_.embed_tokens, x);
    for (int l = 0; l < c.num_layers; ++l) {
      const LlamaLayerWeights& L = weights_.layers[l];
      backend_.rms_norm(x, L.input_norm, eps, normed);
      backend_.matmul(normed, L.qkv, qkv);
      TensorView q = qkv.cols(0, qd), k = qkv.cols(qd, kd), v = qkv.cols(qd + kd, kd);
      backend_.rope_and_cache_write(q, k, v, cos_sin_, md, kv, l);
      backend_.attention(q, kv, l, md, scale, attn_out);
      backend_.matmul_add(attn_out, L.o_proj, x);
      backend_.rms_norm(x, L.post_norm, eps, normed);
      backend_.matmul(normed, L.gate_up, gate_up);
      backend_.silu_mul(gate_up, act);
      backend_.matmul_add(act, L.down_proj, x);
    }
    if (batch.num_sample == 0) return;
    // The final norm only for the rows that produce logits.
    TensorView sampled = normed_.rows(0, batch.num_sample);
    backend_.gather_rows(x, batch.sample_rows, sampled);
    backend_.rms_norm(sampled, weights_.final_norm, eps, sampled);
    backend_.matmul(sampled, weights_.lm_head, logits.rows(0, batch.num_sample));
  }

 private:
  ModelConfig config_;
  Backend& backend_;
  LlamaWeights weights_;
  Buffer cos_sin_buf_;
  TensorView cos_sin_;
  int64_t max_positions_ = 0;
  Buffer workspace_;
  TensorView residual_, normed_, wide_, narrow_;
  int64_t max_tokens_ = 0;
};

}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const std::filesystem::path& model_dir, const ModelConfig& config,
                                                     const ModelLoadOptions& options, Backend& backend) {
  auto model = std::make_unique<LlamaModelImpl>(config, backend);
  TANDEM_RETURN_IF_ERROR(model->init(model_dir, options));
  return std::unique_ptr<LlamaModel>(std::move(model));
}

}  // namespace tandem
