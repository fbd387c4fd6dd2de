// `tandem bench latency`: offline prefill and decode-step timings through the ModelRunner.
#include <cstdio>
#include <sstream>

#include "engine/latency_bench.h"
#include "tandem/commands.h"

namespace tandem::app {

namespace {

bool parse_int_list(const std::string& s, std::vector<int>* out) {
  out->clear();
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int v = std::stoi(item, &used);
      if (used != item.size()) return false;
      out->push_back(v);
    } catch (...) {
      return false;
    }
  }
  return true;
}

}  // namespace

void register_bench_latency(CLI::App& bench, int& exit_code) {
  struct Flags {
    std::string model, load_format = "auto", device = "cpu";
    std::string prefill = "128,1024", batches = "1,8,32", contexts = "512,2048";
    int iters = 3, warmup = 1, threads = 0, block_size = 16;
    bool enforce_eager = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = bench.add_subcommand("latency", "Offline prefill / decode-step latency through the model runner");
  cmd->add_option("--model", f->model, "Model directory (HF format)")->required();
  cmd->add_option("--load-format", f->load_format, "auto | dummy (random weights)")->capture_default_str();
  cmd->add_option("--device", f->device, "cpu | cuda")->capture_default_str();
  cmd->add_option("--prefill-lens", f->prefill, "Prompt lengths to time, comma separated")->capture_default_str();
  cmd->add_option("--decode-batches", f->batches, "Decode batch sizes, comma separated")->capture_default_str();
  cmd->add_option("--decode-contexts", f->contexts, "Decode context lengths, comma separated")->capture_default_str();
  cmd->add_option("--iters", f->iters, "Timed iterations per point")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed iterations per point")->capture_default_str();
  cmd->add_flag("--enforce-eager", f->enforce_eager, "No CUDA graphs for decode steps");
  cmd->add_option("--num-threads", f->threads, "CPU backend threads (0: all cores)")->capture_default_str();
  cmd->add_option("--block-size", f->block_size, "KV block size")->capture_default_str();
  cmd->callback([f, &exit_code] {
    LatencyBenchOptions o;
    o.engine.model_dir = f->model;
    o.engine.load_format = f->load_format;
    o.engine.num_threads = f->threads;
    o.engine.block_size = f->block_size;
    const std::optional<Device> device = parse_device(f->device);
    if (!device) {
      std::fprintf(stderr, "error: --device must be cpu or cuda, got '%s'\n", f->device.c_str());
      exit_code = 2;
      return;
    }
    o.engine.device = *device;
    if (!parse_int_list(f->prefill, &o.prefill_lens) || !parse_int_list(f->batches, &o.decode_batches) ||
        !parse_int_list(f->contexts, &o.decode_contexts)) {
      std::fprintf(stderr, "error: --prefill-lens, --decode-batches and --decode-contexts take comma-separated integers\n");
      exit_code = 2;
      return;
    }
    o.iters = f->iters;
    o.warmup = f->warmup;
    o.graphs = !f->enforce_eager;
    auto rep = run_latency_bench(o);
    if (!rep.ok()) {
      std::fprintf(stderr, "error: %s\n", rep.status().to_string().c_str());
      exit_code = 1;
      return;
    }
    std::fputs(rep->to_table().c_str(), stdout);
  });
}

}  // namespace tandem::app
