// Offline latency benchmark (`tandem bench latency`): times prefill of N tokens and decode steps at
// batch B and context C with the ModelRunner directly (no scheduler, no HTTP). The timed region is
// batch building + forward + greedy sampling, with the backend synchronized, so it runs unchanged on
// CPU and CUDA. Decode rows that ran as CUDA graphs also report the forward's device time (graph replayed
// back to back) and the resulting idle share of a step. KV contents are whatever the pool holds (timing does not depend on them).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine_config.h"

namespace tandem {

struct LatencyBenchOptions {
  EngineConfig engine;  // model_dir, load_format, device, num_threads, block_size, seed
  std::vector<int> prefill_lens{128, 1024};
  std::vector<int> decode_batches{1, 8, 32};
  std::vector<int> decode_contexts{512, 2048};
  int iters = 3;
  int warmup = 1;
  bool graphs = true;  // CUDA graphs for decode steps (where the backend has them)
};

struct LatencyRow {
  std::string kind;  // "prefill" | "decode"
  int batch = 1;
  int tokens = 0;  // prefill: prompt length; decode: context length
  double mean_ms = 0, min_ms = 0, max_ms = 0;
  double tokens_per_s = 0;  // prefill: prompt tokens/s; decode: generated tokens/s (batch / step time)
  // Decode steps that run as a CUDA graph: device time of the forward alone (the graph replayed back to
  // back), and the share of the step's wall time the device was idle, 1 - gpu_ms / mean_ms (an upper
  // bound: the sampling kernel counts as idle). 0 when not measured.
  double gpu_ms = 0, idle_pct = 0;
};

struct LatencyReport {
  std::string header;  // model, device, dtype, KV
  std::vector<LatencyRow> rows;
  std::string to_table() const;
};

Result<LatencyReport> run_latency_bench(const LatencyBenchOptions& options);

}  // namespace tandem
