// `tandem serve MODEL_DIR [flags]`: an engine instance behind the OpenAI-compatible HTTP API. Flags are
// named as in `vllm serve`. Unknown or inconsistent flags exit with code 2 and a message naming the flag.
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "backend/backend_factory.h"
#include "common/logging.h"
#include "server/serve_runner.h"
#include "tandem/commands.h"

namespace tandem::app {

namespace {

struct ServeFlags {
  std::string model_dir;
  std::string host = "0.0.0.0";
  std::string port = "8000";
  std::vector<std::string> served_model_name;
  std::string max_model_len = "0";
  std::string block_size = "16";
  std::string max_num_seqs = "256";
  std::string max_num_batched_tokens = "8192";
  bool enable_prefix_caching = false;
  bool no_enable_prefix_caching = false;
  std::string gpu_memory_utilization = "0.9";
  std::string load_format = "auto";
  std::string api_key;
  std::string kv_transfer_config;
  std::string device;
  std::string log_level = "info";
  std::string seed = "0";
  std::string chat_template;
  bool enforce_eager = false;
  bool no_async_scheduling = false;
  std::string num_kv_blocks = "0";
  std::string max_waiting_requests = "4096";
  std::string num_io_threads = "0";
  std::string shutdown_timeout = "10";
  std::string read_timeout = "60";
  std::string max_body_bytes = "33554432";
};

// Parses an integer flag in [lo, hi]; on error prints a message naming the flag.
template <typename T>
bool parse_int(const std::string& text, const char* flag, T lo, T hi, T& out) {
  T v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) {
    fmt::print(stderr, "tandem serve: error: {} must be an integer in [{}, {}], got '{}'\n", flag, lo, hi, text);
    return false;
  }
  out = v;
  return true;
}

bool parse_double(const std::string& text, const char* flag, double lo, double hi, double& out) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v >= lo && v <= hi)) {
    fmt::print(stderr, "tandem serve: error: {} must be a number in [{}, {}], got '{}'\n", flag, lo, hi, text);
    return false;
  }
  out = v;
  return true;
}

int run(CLI::App* cmd, const ServeFlags& f) {
  if (!cmd->remaining().empty()) {
    fmt::print(stderr, "tandem serve: error: unknown flag or extra argument '{}' (see tandem serve --help)\n",
               cmd->remaining().front());
    return 2;
  }
  if (f.model_dir.empty()) {
    fmt::print(stderr, "tandem serve: error: MODEL_DIR is required\n");
    return 2;
  }
  if (Status st = set_log_level(f.log_level); !st.ok()) {
    fmt::print(stderr, "tandem serve: error: --log-level: {}\n", st.message());
    return 2;
  }
  if (f.enable_prefix_caching && f.no_enable_prefix_caching) {
    fmt::print(stderr, "tandem serve: error: --enable-prefix-caching and --no-enable-prefix-caching contradict\n");
    return 2;
  }
  ServeSettings s;
  EngineConfig& e = s.engine;
  e.model_dir = f.model_dir;
  int port = 0, io_threads = 0, shutdown_s = 0, read_s = 0;
  int64_t max_body = 0;
  uint64_t seed = 0;
  bool ok = parse_int(f.port, "--port", 0, 65535, port) &&
            parse_int(f.max_model_len, "--max-model-len", 0, 1 << 24, e.max_model_len) &&
            parse_int(f.block_size, "--block-size", 1, 1024, e.block_size) &&
            parse_int(f.max_num_seqs, "--max-num-seqs", 1, 1 << 20, e.max_num_seqs) &&
            parse_int(f.max_num_batched_tokens, "--max-num-batched-tokens", 1, 1 << 24, e.max_num_batched_tokens) &&
            parse_double(f.gpu_memory_utilization, "--gpu-memory-utilization", 0.01, 1.0, e.gpu_memory_utilization) &&
            parse_int(f.seed, "--seed", uint64_t{0}, UINT64_MAX, seed) &&
            parse_int(f.num_kv_blocks, "--num-kv-blocks", int64_t{0}, int64_t{1} << 40, e.num_kv_blocks) &&
            parse_int(f.max_waiting_requests, "--max-waiting-requests", 1, 1 << 24, e.max_waiting_requests) &&
            parse_int(f.num_io_threads, "--num-io-threads", 0, 256, io_threads) &&
            parse_int(f.shutdown_timeout, "--shutdown-timeout", 0, 86400, shutdown_s) &&
            parse_int(f.read_timeout, "--http-read-timeout", 1, 86400, read_s) &&
            parse_int(f.max_body_bytes, "--max-request-body-bytes", int64_t{1024}, int64_t{1} << 34, max_body);
  if (!ok) return 2;
  if (f.load_format != "auto" && f.load_format != "dummy") {
    fmt::print(stderr, "tandem serve: error: --load-format must be auto or dummy, got '{}'\n", f.load_format);
    return 2;
  }
  e.load_format = f.load_format;
  e.seed = seed;
  e.enable_prefix_caching = !f.no_enable_prefix_caching;
  e.enforce_eager = f.enforce_eager;
  e.async_scheduling = !f.no_async_scheduling;
  const std::optional<Device> device = f.device.empty() ? std::optional<Device>(cuda_available() ? Device::kCuda : Device::kCpu)
                                                         : parse_device(f.device);
  if (!device) {
    fmt::print(stderr, "tandem serve: error: --device must be cpu or cuda, got '{}'\n", f.device);
    return 2;
  }
  if (*device == Device::kCuda && !cuda_available()) {
    fmt::print(stderr, "tandem serve: error: --device cuda, but this build has no CUDA backend or no GPU is visible\n");
    return 2;
  }
  e.device = *device;
  if (Status st = e.validate(); !st.ok()) {
    fmt::print(stderr, "tandem serve: error: {}\n", st.message());
    return 2;
  }
  s.served_model_names = f.served_model_name;
  if (s.served_model_names.empty()) s.served_model_names.push_back(f.model_dir);
  s.api_key = f.api_key;
  if (s.api_key.empty()) {
    if (const char* env = std::getenv("TANDEM_API_KEY")) s.api_key = env;
  }
  s.kv_transfer_config = f.kv_transfer_config;
  s.chat_template = f.chat_template;
  s.http.host = f.host;
  s.http.port = port;
  s.http.num_io_threads = io_threads > 0 ? io_threads : 2;
  s.http.read_timeout = std::chrono::seconds(read_s);
  s.http.max_body_bytes = static_cast<size_t>(max_body);
  s.shutdown_timeout = std::chrono::seconds(shutdown_s);

  block_termination_signals();
  Status st = run_serve(s);
  if (!st.ok()) {
    TLOG_ERROR("tandem serve: {}", st.to_string());
    // Bad configuration (flags, files) is a usage error; anything else a failure.
    return st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kNotFound ? 2 : 1;
  }
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model with an OpenAI-compatible HTTP API");
  cmd->allow_extras();
  cmd->add_option("model_dir", f->model_dir, "Model directory (Hugging Face layout)");
  cmd->add_option("--host", f->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", f->port, "Port (0: an ephemeral port, shown in the ready line)")->capture_default_str();
  cmd->add_option("--served-model-name", f->served_model_name, "Model name(s) in the API (default: MODEL_DIR)");
  cmd->add_option("--max-model-len", f->max_model_len, "Context length (0: the model's)")->capture_default_str();
  cmd->add_option("--block-size", f->block_size, "Tokens per KV block")->capture_default_str();
  cmd->add_option("--max-num-seqs", f->max_num_seqs, "Maximum running sequences")->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", f->max_num_batched_tokens, "Token budget per step")
      ->capture_default_str();
  cmd->add_flag("--enable-prefix-caching", f->enable_prefix_caching, "Enable prefix caching (default)");
  cmd->add_flag("--no-enable-prefix-caching", f->no_enable_prefix_caching, "Disable prefix caching");
  cmd->add_option("--gpu-memory-utilization", f->gpu_memory_utilization, "Fraction of GPU memory to use")
      ->capture_default_str();
  cmd->add_option("--load-format", f->load_format, "auto | dummy (random weights)")->capture_default_str();
  cmd->add_option("--api-key", f->api_key, "Require this key on /v1/* (also env TANDEM_API_KEY)");
  cmd->add_option("--kv-transfer-config", f->kv_transfer_config,
                  "Disaggregation config: JSON text or a YAML/JSON file");
  cmd->add_option("--device", f->device, "cpu | cuda (default: cuda when available)");
  cmd->add_option("--log-level", f->log_level, "trace | debug | info | warning | error")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Engine random seed")->capture_default_str();
  cmd->add_option("--chat-template", f->chat_template, "Chat template: a format name or a template file");
  cmd->add_flag("--enforce-eager", f->enforce_eager, "CUDA: no graphs");
  cmd->add_flag("--no-async-scheduling", f->no_async_scheduling,
                "Sample every step synchronously instead of scheduling step N+1 while the device runs step N");
  cmd->add_option("--num-kv-blocks", f->num_kv_blocks, "Force the KV pool size in blocks (0: planned)")
      ->capture_default_str();
  cmd->add_option("--max-waiting-requests", f->max_waiting_requests, "Waiting queue size; beyond it 503")
      ->capture_default_str();
  cmd->add_option("--num-io-threads", f->num_io_threads, "HTTP I/O threads (0: 2)")->capture_default_str();
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout, "Seconds to drain requests on SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->add_option("--http-read-timeout", f->read_timeout, "Seconds a client may take to send a request")
      ->capture_default_str();
  cmd->add_option("--max-request-body-bytes", f->max_body_bytes, "Largest accepted request body (413 beyond)")
      ->capture_default_str();
  cmd->callback([cmd, f, &exit_code] { exit_code = run(cmd, *f); });
}

}  // namespace tandem::app
