// Deterministic test-model writer: a complete Hugging Face Llama directory (config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json) from a preset and a
// seed. Used by `tandem make-model`, the tests, the golden fixtures and the no-GPU demo.
//
// Presets: "tiny"  hidden 64, 2 layers, 4 q heads / 2 kv heads (head_dim 16), intermediate 128, vocab 512;
//          "small" hidden 256, 4 layers, 8 q heads / 4 kv heads (head_dim 32), intermediate 688, vocab 4096.
// Weights: linear layers ~N(0, 1/in_features), embeddings and lm_head ~N(0, 4/hidden), norms ~1 + N(0, 0.1^2)
// (large enough that attention is far from uniform and greedy argmax gaps are wide).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/status.h"
#include "model/model_config.h"
#include "tensor/dtype.h"

namespace tandem {

struct ModelWriterOptions {
  std::string rope_scaling;                 // "" = preset default (llama3); "none" | "linear" | "llama3"
  float rope_scaling_factor = 0.0f;         // 0 = default (linear 2, llama3 8)
  std::optional<bool> tie_word_embeddings;  // default: false
  int num_kv_heads = 0;                     // 0 = preset default; must divide the q heads
  int num_layers = 0;                       // 0 = preset default
  DType dtype = DType::kBF16;               // weight dtype in model.safetensors (f32, f16, bf16)
  bool write_tokenizer = true;
};

// The config a preset + options describe (what write_preset_model writes as config.json).
Result<ModelConfig> preset_model_config(const std::string& preset, const ModelWriterOptions& options = {});

Status write_preset_model(const std::string& preset, const std::filesystem::path& out_dir, uint64_t seed,
                          const ModelWriterOptions& options = {});

}  // namespace tandem
