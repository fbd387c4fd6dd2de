// ModelConfig: the parts of a Hugging Face config.json that the Llama forward needs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"
#include "tensor/dtype.h"

namespace tandem {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  float factor = 1.0f;
  // llama3 only
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // hidden_size / num_heads unless config.json sets head_dim
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::kBF16;
  std::vector<int> eos_token_ids;  // from config.json eos_token_id (int or list); may be empty
  int bos_token_id = -1;

  // Parses config.json text; `source` names the file in error messages.
  static Result<ModelConfig> from_json(const std::string& text, const std::string& source);
  static Result<ModelConfig> from_file(const std::filesystem::path& config_json);
  std::string to_json() const;  // an HF-compatible config.json

  // RoPE inverse frequencies [head_dim / 2] after scaling, as HF computes them.
  std::vector<float> rope_inv_freq() const;
  // Stable text identifying the architecture-relevant fields (used in compatibility fingerprints).
  std::string fingerprint() const;
  int64_t num_params() const;
};

}  // namespace tandem
