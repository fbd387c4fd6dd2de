// EngineConfig::validate.
#include "engine/engine_config.h"

namespace tandem {

Status EngineConfig::validate() const {
  if (model_dir.empty()) return InvalidArgumentError("model directory is not set");
  if (load_format != "auto" && load_format != "dummy")
    return InvalidArgumentError("load_format must be 'auto' or 'dummy', got '{}'", load_format);
  if (block_size <= 0 || block_size > 1024 || (block_size & (block_size - 1)) != 0)
    return InvalidArgumentError("block_size must be a power of two in [1, 1024], got {}", block_size);
  if (max_model_len < 0) return InvalidArgumentError("max_model_len must be >= 0, got {}", max_model_len);
  if (max_num_seqs <= 0) return InvalidArgumentError("max_num_seqs must be positive, got {}", max_num_seqs);
  if (max_num_batched_tokens <= 0)
    return InvalidArgumentError("max_num_batched_tokens must be positive, got {}", max_num_batched_tokens);
  if (!(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0))
    return InvalidArgumentError("gpu_memory_utilization must be in (0, 1], got {}", gpu_memory_utilization);
  if (num_kv_blocks < 0) return InvalidArgumentError("num_kv_blocks must be >= 0, got {}", num_kv_blocks);
  if (max_waiting_requests <= 0)
    return InvalidArgumentError("max_waiting_requests must be positive, got {}", max_waiting_requests);
  if (num_threads < 0) return InvalidArgumentError("num_threads must be >= 0, got {}", num_threads);
  if (device_id < 0) return InvalidArgumentError("device_id must be >= 0, got {}", device_id);
  return Status::Ok();
}

}  // namespace tandem
