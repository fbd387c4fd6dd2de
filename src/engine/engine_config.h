// EngineConfig: everything an engine instance is built from (the serve flags that concern the engine).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/status.h"
#include "model/model_config.h"
#include "tensor/dtype.h"

namespace tandem {

struct EngineConfig {
  std::filesystem::path model_dir;
  std::string load_format = "auto";  // auto | dummy
  Device device = Device::kCpu;
  int device_id = 0;
  uint64_t seed = 0;

  int block_size = 16;
  int max_model_len = 0;             // 0: min(max_position_embeddings, what fits)
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  bool enable_prefix_caching = true;
  double gpu_memory_utilization = 0.9;
  int64_t num_kv_blocks = 0;         // 0: from the memory plan; > 0 forces a pool size (tests)
  size_t cpu_kv_cache_bytes = 512ull << 20;  // KV pool size on the CPU backend when num_kv_blocks == 0
  int max_waiting_requests = 4096;   // add_request fails with kResourceExhausted beyond this
  int num_threads = 0;               // CPU backend threads; 0 = hardware concurrency
  bool enforce_eager = false;        // CUDA: no graphs
  // Overlap the host's scheduling of step N+1 with the device's step N (engine.cpp). Off: every step
  // samples synchronously.
  bool async_scheduling = true;

  // Disaggregation: the --kv-transfer-config (JSON text), empty when the engine is standalone.
  std::string kv_transfer_config_json;

  Status validate() const;
};

}  // namespace tandem
