// write_preset_model: a complete HF Llama directory with deterministic random weights (see model_writer.h).
#include "model/model_writer.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/safetensors_file.h"
#include "model/tokenizer_writer.h"
#include "model/weight_init.h"

namespace tandem {

Result<ModelConfig> preset_model_config(const std::string& preset, const ModelWriterOptions& o) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  if (preset == "tiny") {
    c.vocab_size = 512;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.max_position_embeddings = 2048;
  } else if (preset == "small") {
    c.vocab_size = 4096;
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_layers = 4;
    c.num_heads = 8;
    c.num_kv_heads = 4;
    c.max_position_embeddings = 4096;
  } else {
    return InvalidArgumentError("unknown model preset '{}' (tiny, small)", preset);
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  if (o.num_kv_heads > 0) {
    if (c.num_heads % o.num_kv_heads != 0) {
      return InvalidArgumentError("num_kv_heads {} does not divide the {} query heads", o.num_kv_heads, c.num_heads);
    }
    c.num_kv_heads = o.num_kv_heads;
  }
  if (o.num_layers < 0) return InvalidArgumentError("num_layers must be positive");
  if (o.num_layers > 0) c.num_layers = o.num_layers;
  const std::string rope = o.rope_scaling.empty() ? "llama3" : o.rope_scaling;
  if (rope == "none") {
    c.rope_scaling.type = RopeScalingType::kNone;
  } else if (rope == "linear") {
    c.rope_scaling.type = RopeScalingType::kLinear;
    c.rope_scaling.factor = o.rope_scaling_factor > 0 ? o.rope_scaling_factor : 2.0f;
  } else if (rope == "llama3") {
    // A short original context so that low, medium and high frequencies all occur at head_dim 16-32.
    c.rope_scaling.type = RopeScalingType::kLlama3;
    c.rope_scaling.factor = o.rope_scaling_factor > 0 ? o.rope_scaling_factor : 8.0f;
    c.rope_scaling.low_freq_factor = 1.0f;
    c.rope_scaling.high_freq_factor = 4.0f;
    c.rope_scaling.original_max_position_embeddings = 256;
  } else {
    return InvalidArgumentError("unknown rope scaling '{}' (none, linear, llama3)", rope);
  }
  c.tie_word_embeddings = o.tie_word_embeddings.value_or(false);
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16) {
    return InvalidArgumentError("model dtype must be float32, float16 or bfloat16");
  }
  c.torch_dtype = o.dtype;
  return c;
}

namespace {

SafetensorsWriteEntry random_tensor(const std::string& name, std::vector<int64_t> shape, float mean, float stddev,
                                    DType dtype, uint64_t seed) {
  SafetensorsWriteEntry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t s : e.shape) n *= s;
  e.bytes.resize(static_cast<size_t>(n) * dtype_size(dtype));
  fill_random_weights(seed, weight_stream_id(name), mean, stddev, dtype, e.bytes.data(), 0, n);
  return e;
}

Status write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return IoErrorError("cannot write {}", path.string());
  return Status::Ok();
}

}  // namespace

Status write_preset_model(const std::string& preset, const std::filesystem::path& out_dir, uint64_t seed,
                          const ModelWriterOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(ModelConfig c, preset_model_config(preset, options));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return IoErrorError("cannot create {}: {}", out_dir.string(), ec.message());

  // Tokenizer first: its special token ids go into config.json.
  WrittenTokenizer tok;
  if (options.write_tokenizer) {
    TANDEM_ASSIGN_OR_RETURN(tok, write_tokenizer_files(out_dir, c.vocab_size, c.max_position_embeddings));
  } else {
    tok.size = c.vocab_size;
    tok.begin_of_text_id = c.vocab_size - 5;
    tok.end_of_text_id = c.vocab_size - 4;
    tok.eot_id = c.vocab_size - 1;
  }
  c.bos_token_id = tok.begin_of_text_id;
  c.eos_token_ids = {tok.end_of_text_id, tok.eot_id};
  TANDEM_RETURN_IF_ERROR(write_text(out_dir / "config.json", c.to_json()));
  nlohmann::ordered_json gen;
  gen["bos_token_id"] = c.bos_token_id;
  gen["eos_token_id"] = c.eos_token_ids;
  TANDEM_RETURN_IF_ERROR(write_text(out_dir / "generation_config.json", gen.dump(2) + "\n"));

  const int64_t h = c.hidden_size, v = c.vocab_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t qd = c.num_heads * d, kd = c.num_kv_heads * d;
  const DType dt = c.torch_dtype;
  const float embed_std = 2.0f / std::sqrt(static_cast<float>(h));
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    return random_tensor(name, {out, in}, 0.0f, 1.0f / std::sqrt(static_cast<float>(in)), dt, seed);
  };
  auto norm = [&](const std::string& name) { return random_tensor(name, {h}, 1.0f, 0.1f, dt, seed); };
  std::vector<SafetensorsWriteEntry> entries;
  entries.push_back(random_tensor("model.embed_tokens.weight", {v, h}, 0.0f, embed_std, dt, seed));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    entries.push_back(norm(p + "input_layernorm.weight"));
    entries.push_back(linear(p + "self_attn.q_proj.weight", qd, h));
    entries.push_back(linear(p + "self_attn.k_proj.weight", kd, h));
    entries.push_back(linear(p + "self_attn.v_proj.weight", kd, h));
    entries.push_back(linear(p + "self_attn.o_proj.weight", h, qd));
    entries.push_back(norm(p + "post_attention_layernorm.weight"));
    entries.push_back(linear(p + "mlp.gate_proj.weight", inter, h));
    entries.push_back(linear(p + "mlp.up_proj.weight", inter, h));
    entries.push_back(linear(p + "mlp.down_proj.weight", h, inter));
  }
  entries.push_back(norm("model.norm.weight"));
  if (!c.tie_word_embeddings) entries.push_back(random_tensor("lm_head.weight", {v, h}, 0.0f, embed_std, dt, seed));
  return write_safetensors(out_dir / "model.safetensors", entries);
}

}  // namespace tandem
