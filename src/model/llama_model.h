// LlamaModel: the Llama forward pass, written once against the Backend interface. It owns the weights
// (on the backend's device, in its compute dtype) and a workspace sized at construction, so a step
// allocates nothing. One forward handles a mixed batch (prefill chunks and decodes) and produces logits
// only for the rows that sample.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "common/status.h"
#include "model/model_config.h"

namespace tandem {

struct ModelLoadOptions {
  std::string load_format = "auto";  // auto: safetensors from the directory; dummy: random weights
  uint64_t seed = 0;                 // dummy weights
  int max_num_batched_tokens = 8192;  // workspace: tokens per forward
  int max_num_seqs = 256;             // workspace: sequences (and sampled rows) per forward
  int max_model_len = 8192;           // RoPE table length
  bool show_progress = false;         // progress bar on stderr while loading
};

// One forward's inputs. Device views are on the backend's device.
struct ForwardBatch {
  TensorView token_ids;     // i32 [num_tokens]
  AttentionMetadata attn;   // positions, slots, sequences (decodes first)
  TensorView sample_rows;   // i32 [num_sample]: token indices whose logits are wanted
  int num_sample = 0;
};

class LlamaModel {
 public:
  static Result<std::unique_ptr<LlamaModel>> load(const std::filesystem::path& model_dir, const ModelConfig& config,
                                                  const ModelLoadOptions& options, Backend& backend);
  virtual ~LlamaModel() = default;

  virtual const ModelConfig& config() const = 0;
  // Runs all layers; writes fp32 logits [batch.num_sample, vocab_size] into `logits` (on device).
  virtual void forward(const ForwardBatch& batch, const KvCacheView& kv, TensorView logits) = 0;
  virtual size_t weight_bytes() const = 0;
  virtual size_t workspace_bytes() const = 0;
};

}  // namespace tandem
