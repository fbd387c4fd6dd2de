// LlamaWeights: every weight of a Llama model in one backend allocation, in the backend's compute
// dtype, with q/k/v fused into one [(Hq+2Hk)*D, H] matrix and gate/up into one [2I, H] matrix so each
// is a single GEMM. Loaded from safetensors (any of f32/f16/bf16, converted) or generated ("dummy").
#pragma once

#include <filesystem>
#include <vector>

#include "backend/backend.h"
#include "model/model_config.h"

namespace tandem {

struct LlamaLayerWeights {
  TensorView input_norm;  // [H]
  TensorView qkv;         // [(Hq + 2Hk) * D, H]: rows q_proj, then k_proj, then v_proj
  TensorView o_proj;      // [H, Hq * D]
  TensorView post_norm;   // [H]
  TensorView gate_up;     // [2I, H]: rows gate_proj, then up_proj
  TensorView down_proj;   // [H, I]
};

struct LlamaWeights {
  Buffer storage;
  TensorView embed_tokens;  // [V, H]
  std::vector<LlamaLayerWeights> layers;
  TensorView final_norm;    // [H]
  TensorView lm_head;       // [V, H]; the same memory as embed_tokens when tied

  size_t bytes() const { return storage.size(); }

  // load_format "auto"/"safetensors": reads model_dir; "dummy": deterministic random weights from seed
  // (std 0.02, norms 1), no file read.
  static Result<LlamaWeights> load(const std::filesystem::path& model_dir, const ModelConfig& config,
                                   const std::string& load_format, uint64_t seed, bool show_progress, Backend& backend);
};

}  // namespace tandem
