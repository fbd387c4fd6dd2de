// `tandem bench kv-transfer`: time and GB/s to move an N-token prompt's KV between two agents (see
// src/disagg/kv_transfer_bench.h).
#include <cstdio>

#include "disagg/kv_transfer_bench.h"
#include "tandem/commands.h"

namespace tandem::app {

void register_bench_kv_transfer(CLI::App& bench, int& exit_code) {
  auto opts = std::make_shared<KvTransferBenchOptions>();
  auto dtype = std::make_shared<std::string>("bfloat16");
  auto device = std::make_shared<std::string>("cpu");
  auto transport = std::make_shared<std::string>("all");
  auto contiguous = std::make_shared<bool>(false);
  CLI::App* cmd = bench.add_subcommand("kv-transfer", "Time moving one prompt's KV cache between two transfer agents");
  cmd->add_option("--num-tokens", opts->num_tokens, "Prompt length in tokens")->capture_default_str();
  cmd->add_option("--num-layers", opts->num_layers, "Layers")->capture_default_str();
  cmd->add_option("--num-kv-heads", opts->num_kv_heads, "KV heads")->capture_default_str();
  cmd->add_option("--head-dim", opts->head_dim, "Head dimension")->capture_default_str();
  cmd->add_option("--block-size", opts->block_size, "Tokens per KV block")->capture_default_str();
  cmd->add_option("--dtype", *dtype, "KV element type (bfloat16, float16, float32)")->capture_default_str();
  cmd->add_option("--device", *device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--producer-device", opts->producer_device, "CUDA device of the producer pool")->capture_default_str();
  cmd->add_option("--consumer-device", opts->consumer_device, "CUDA device of the consumer pool")->capture_default_str();
  cmd->add_option("--transport", *transport, "all, tcp or cuda_ipc")->capture_default_str();
  cmd->add_option("--iterations", opts->iterations, "Timed iterations (after one warm-up)")->capture_default_str();
  cmd->add_flag("--two-processes", opts->two_processes, "Producer in a forked process (default: two agents in one process)");
  cmd->add_flag("--contiguous", *contiguous, "Consumer blocks consecutive (runs coalesce into few descriptors)");
  cmd->callback([opts, dtype, device, transport, contiguous, &exit_code] {
    auto dt = parse_dtype(*dtype);
    if (!dt.ok()) {
      std::fprintf(stderr, "error: --dtype: %s\n", dt.status().message().c_str());
      exit_code = 2;
      return;
    }
    opts->dtype = *dt;
    const std::optional<Device> dev = parse_device(*device);
    if (!dev) {
      std::fprintf(stderr, "error: --device must be cpu or cuda\n");
      exit_code = 2;
      return;
    }
    opts->device = *dev;
    if (*transport == "tcp") {
      opts->transports = {TransportKind::kTcp};
    } else if (*transport == "cuda_ipc") {
      opts->transports = {TransportKind::kCudaIpc};
    } else if (*transport != "all") {
      std::fprintf(stderr, "error: --transport must be all, tcp or cuda_ipc\n");
      exit_code = 2;
      return;
    }
    opts->scattered = !*contiguous;
    auto results = run_kv_transfer_bench(*opts);
    if (!results.ok()) {
      std::fprintf(stderr, "error: %s\n", results.status().to_string().c_str());
      exit_code = 1;
      return;
    }
    std::fputs(format_kv_transfer_bench(*opts, *results).c_str(), stdout);
    exit_code = 0;
  });
}

}  // namespace tandem::app
