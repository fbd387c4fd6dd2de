// The `tandem bench kv-transfer` figures: time and GB/s to move the KV of an N-token prompt (block-major
// layout, one descriptor per block unless blocks are contiguous on both sides) from one agent to
// another, for each available transport. Two agents in one process, or two processes (the producer
// side forked before any CUDA or thread is started).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "disagg/kv_transfer_config.h"
#include "tensor/dtype.h"

namespace tandem {

struct KvTransferBenchOptions {
  int num_tokens = 7500;
  int num_layers = 32;
  int num_kv_heads = 8;
  int head_dim = 128;
  int block_size = 16;
  DType dtype = DType::kBF16;  // only its size matters (host buffers hold raw bytes)
  Device device = Device::kCpu;
  int producer_device = 0;
  int consumer_device = 0;
  std::vector<TransportKind> transports;  // empty: every transport this build and device support
  bool two_processes = false;
  bool scattered = true;  // consumer blocks not consecutive: one descriptor per block (worst case)
  int iterations = 5;
};

struct KvTransferBenchResult {
  std::string transport;
  std::string mode;  // "one process, two agents" | "two processes"
  uint64_t bytes = 0;
  size_t num_blocks = 0;
  size_t num_descriptors = 0;
  double min_ms = 0, median_ms = 0;
  double gbps_at_min = 0;  // GB/s (1e9 bytes) at the fastest iteration
  bool verified = false;
};

Result<std::vector<KvTransferBenchResult>> run_kv_transfer_bench(const KvTransferBenchOptions& options);
std::string format_kv_transfer_bench(const KvTransferBenchOptions& options, const std::vector<KvTransferBenchResult>& results);

}  // namespace tandem
