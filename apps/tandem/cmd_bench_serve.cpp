// `tandem bench serve`: vLLM's `vllm bench serve` for an OpenAI-compatible server (flags, dataset,
// arrivals, printed block and result JSON as vLLM's). Thin: parses flags and calls src/bench.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "bench/custom_dataset.h"
#include "bench/random_dataset.h"
#include "bench/serve_benchmark.h"
#include "bench/serve_metrics.h"
#include "net/http_client.h"
#include "tandem/commands.h"
#include "tokenizer/tokenizer.h"

namespace tandem::app {

namespace {

struct BenchServeFlags {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string base_url;
  std::string endpoint;
  std::string backend = "openai";
  std::string model;
  std::string served_model_name;
  std::string tokenizer;
  std::string dataset_name = "random";
  std::string dataset_path;
  int random_input_len = 1024;
  int random_output_len = 128;
  double random_range_ratio = 0.0;
  int random_prefix_len = 0;
  int custom_output_len = 256;
  bool skip_chat_template = false;
  std::optional<int> input_len, output_len;
  int num_prompts = 1000;
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  std::optional<int> max_concurrency;
  int64_t seed = 0;
  bool ignore_eos = false;
  std::optional<int> logprobs;
  int num_warmups = 0;
  std::string percentile_metrics = "ttft,tpot,itl";
  std::string metric_percentiles = "99";
  std::vector<std::string> goodput;
  bool save_result = false;
  bool save_detailed = false;
  std::string result_dir;
  std::string result_filename;
  bool disable_tqdm = false;
  std::string label;
  std::vector<std::string> metadata;
  std::string request_id_prefix;
  double request_timeout_s = 6 * 3600;
};

std::string now_compact() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string random_hex8() {
  uint64_t x = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               (static_cast<uint64_t>(::getpid()) << 32);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return fmt::format("{:08x}", static_cast<uint32_t>(x));
}

Status run_bench_serve(BenchServeFlags f) {
  using namespace tandem::bench;
  // Where to send requests.
  std::string endpoint = f.endpoint;
  if (endpoint.empty()) endpoint = f.backend == "openai-chat" ? "/v1/chat/completions" : "/v1/completions";
  ServeBenchmarkOptions o;
  if (!f.base_url.empty()) {
    std::string base = f.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    TANDEM_ASSIGN_OR_RETURN(net::HttpUrl url, net::HttpUrl::parse(base + endpoint));
    o.host = url.host;
    o.port = url.port;
    o.endpoint = url.target;
  } else {
    if (f.port <= 0 || f.port > 65535) return InvalidArgumentError("--port {} is out of range", f.port);
    o.host = f.host;
    o.port = static_cast<uint16_t>(f.port);
    o.endpoint = endpoint;
  }
  o.backend = f.backend;

  // Model: the first one the server lists when --model is not given.
  std::string model_id = f.model;
  std::string model_name = f.served_model_name;
  if (model_id.empty()) {
    std::cout << "Model not specified, fetching first model from server..." << std::endl;
    net::HttpClientRequest req;
    req.method = "GET";
    req.target = "/v1/models";
    req.total_timeout = std::chrono::seconds(60);
    auto fetched = net::http_fetch(o.host, o.port, req);
    if (!fetched.ok()) return fetched.status().with_context("fetching /v1/models (pass --model)");
    auto j = nlohmann::json::parse(fetched->body, nullptr, false);
    if (fetched->head.status != 200 || j.is_discarded() || !j.contains("data") || !j["data"].is_array() ||
        j["data"].empty() || !j["data"][0].contains("id")) {
      return UnavailableError("no models found on the server at {}:{} (HTTP {}); pass --model", o.host, o.port,
                              fetched->head.status);
    }
    model_name = j["data"][0]["id"].get<std::string>();
    model_id = j["data"][0].value("root", model_name);
    std::cout << fmt::format("First model name: {}, first model id: {}", model_name, model_id) << std::endl;
  }
  o.model = model_name.empty() ? model_id : model_name;
  const std::string tokenizer_id = f.tokenizer.empty() ? model_id : f.tokenizer;
  auto tok_result = Tokenizer::load(tokenizer_id);
  if (!tok_result.ok()) {
    return tok_result.status().with_context(fmt::format("loading the tokenizer from '{}' (set --tokenizer)", tokenizer_id));
  }
  std::shared_ptr<Tokenizer> tok = std::move(tok_result).value();

  if (f.input_len) f.random_input_len = *f.input_len;
  if (f.output_len) {
    f.random_output_len = *f.output_len;
    f.custom_output_len = *f.output_len;
  }
  if (f.request_id_prefix.empty()) f.request_id_prefix = "bench-" + random_hex8() + "-";
  if (f.seed < 0) return InvalidArgumentError("--seed must be >= 0");

  std::vector<SampleRequest> requests;
  if (f.dataset_name == "random") {
    if (!f.dataset_path.empty()) {
      return InvalidArgumentError("cannot use the 'random' dataset with --dataset-path; use --dataset-name custom");
    }
    RandomDatasetOptions ro{.num_prompts = f.num_prompts, .input_len = f.random_input_len,
                            .output_len = f.random_output_len, .range_ratio = f.random_range_ratio,
                            .prefix_len = f.random_prefix_len, .seed = static_cast<uint64_t>(f.seed),
                            .request_id_prefix = f.request_id_prefix};
    TANDEM_ASSIGN_OR_RETURN(RandomDataset ds, make_random_dataset(*tok, ro));
    if (ds.token_mismatch_total != 0) {
      std::cout << fmt::format(
                       "WARNING: Across all generated prompts, there were {} {} tokens than expected after "
                       "decoding and re-encoding.",
                       std::llabs(ds.token_mismatch_total), ds.token_mismatch_total > 0 ? "more" : "fewer")
                << std::endl;
    }
    requests = std::move(ds.requests);
    f.ignore_eos = true;  // vLLM: random datasets ignore EOS so generation runs to the requested length
  } else if (f.dataset_name == "custom") {
    if (f.dataset_path.empty()) return InvalidArgumentError("--dataset-name custom needs --dataset-path FILE.jsonl");
    CustomDatasetOptions co{.path = f.dataset_path, .num_prompts = f.num_prompts, .output_len = f.custom_output_len,
                            .skip_chat_template = f.skip_chat_template, .disable_shuffle = false,
                            .seed = static_cast<uint64_t>(f.seed), .request_id_prefix = f.request_id_prefix};
    TANDEM_ASSIGN_OR_RETURN(requests, load_custom_dataset(*tok, co));
  } else {
    return InvalidArgumentError("--dataset-name '{}': supported datasets are random and custom", f.dataset_name);
  }

  TANDEM_ASSIGN_OR_RETURN(auto goodput, parse_goodput(f.goodput));
  TANDEM_ASSIGN_OR_RETURN(auto metrics_sel, parse_percentile_metrics(f.percentile_metrics));
  TANDEM_ASSIGN_OR_RETURN(auto percentiles, parse_metric_percentiles(f.metric_percentiles));

  o.request_rate = f.request_rate;
  o.burstiness = f.burstiness;
  o.max_concurrency = f.max_concurrency;
  o.seed = static_cast<uint64_t>(f.seed);
  o.ignore_eos = f.ignore_eos;
  o.logprobs = f.logprobs;
  o.num_warmups = f.num_warmups;
  o.progress_bar = !f.disable_tqdm && ::isatty(STDERR_FILENO);
  if (const char* key = std::getenv("OPENAI_API_KEY")) o.api_key = key;
  if (!(f.request_timeout_s > 0)) return InvalidArgumentError("--request-timeout must be positive");
  o.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.request_timeout_s * 1000));

  std::cout << "Skipping endpoint ready check." << std::endl;
  std::fflush(stdout);
  // Messages go to stdout as vLLM's print(); the progress bar to stderr as tqdm's.
  TANDEM_ASSIGN_OR_RETURN(ServeBenchmarkRun run, run_serve_benchmark(o, requests, stdout));
  if (o.progress_bar) std::fflush(stderr);

  auto count_tokens = [&](const std::string& text) {
    return static_cast<int>(tok->encode(text, /*add_special_tokens=*/false).size());
  };
  ServeMetrics m = compute_serve_metrics(run.outputs, run.duration_s, percentiles, goodput, count_tokens);
  ServeReportOptions ro{.max_concurrency = f.max_concurrency, .request_rate = f.request_rate,
                        .goodput = !goodput.empty(), .percentile_metrics = metrics_sel};
  std::cout << render_failed_requests(run.outputs);
  std::cout << render_serve_report(m, run.duration_s, ro) << std::flush;

  if (f.save_result) {
    const std::string date = now_compact();
    nlohmann::ordered_json header;
    header["date"] = date;
    header["endpoint_type"] = f.backend;
    header["backend"] = f.backend;
    header["label"] = f.label.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.label);
    header["model_id"] = model_id;
    header["tokenizer_id"] = tokenizer_id;
    header["num_prompts"] = f.num_prompts;
    for (const auto& item : f.metadata) {
      size_t eq = item.find('=');
      if (eq == std::string::npos) {
        return InvalidArgumentError("--metadata '{}': invalid metadata format, please use KEY=VALUE", item);
      }
      auto trim = [](std::string s) {
        s.erase(0, s.find_first_not_of(" \t"));
        s.erase(s.find_last_not_of(" \t") + 1);
        return s;
      };
      header[trim(item.substr(0, eq))] = trim(item.substr(eq + 1));
    }
    header["request_rate"] =
        std::isinf(f.request_rate) ? nlohmann::ordered_json("inf") : nlohmann::ordered_json(f.request_rate);
    header["burstiness"] = f.burstiness;
    header["max_concurrency"] =
        f.max_concurrency ? nlohmann::ordered_json(*f.max_concurrency) : nlohmann::ordered_json(nullptr);
    auto j = serve_result_json(std::move(header), m, run.duration_s, run.outputs, ro, f.save_detailed);

    std::string base_model = model_id;
    while (!base_model.empty() && base_model.back() == '/') base_model.pop_back();
    base_model = base_model.substr(base_model.find_last_of('/') == std::string::npos ? 0 : base_model.find_last_of('/') + 1);
    std::string label = f.label.empty() ? f.backend : f.label;
    std::string conc = f.max_concurrency ? fmt::format("-concurrency{}", *f.max_concurrency) : "";
    std::string file = f.result_filename.empty()
                           ? fmt::format("{}-{}qps{}-{}-{}.json", label, python_float_str(f.request_rate), conc,
                                         base_model, date)
                           : f.result_filename;
    std::filesystem::path path = file;
    if (!f.result_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(f.result_dir, ec);
      if (ec) return IoErrorError("cannot create --result-dir '{}': {}", f.result_dir, ec.message());
      path = std::filesystem::path(f.result_dir) / file;
    }
    std::ofstream out(path);
    if (!out) return IoErrorError("cannot write the result file '{}'", path.string());
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (!out.flush()) return IoErrorError("writing the result file '{}' failed", path.string());
    std::cout << "Saved the result to " << path.string() << std::endl;
  }
  return Status::Ok();
}

}  // namespace

void register_bench_serve(CLI::App& bench, int& exit_code) {
  auto flags = std::make_shared<BenchServeFlags>();
  CLI::App* cmd = bench.add_subcommand("serve", "Benchmark an OpenAI-compatible server (as vllm bench serve)");
  auto& f = *flags;
  cmd->add_option("--host", f.host, "Server host")->capture_default_str();
  cmd->add_option("--port", f.port, "Server port")->capture_default_str();
  cmd->add_option("--base-url", f.base_url, "Server or API base URL (http://host:port[/prefix]) instead of --host/--port");
  cmd->add_option("--endpoint", f.endpoint,
                  "API endpoint (default /v1/completions; /v1/chat/completions for --backend openai-chat)");
  cmd->add_option("--backend", f.backend, "openai (completions) or openai-chat")
      ->check(CLI::IsMember({"openai", "openai-chat"}))
      ->capture_default_str();
  cmd->add_option("--model", f.model, "Model directory or name (default: the server's first model)");
  cmd->add_option("--served-model-name", f.served_model_name, "Model name sent in requests (default: --model)");
  cmd->add_option("--tokenizer", f.tokenizer, "Tokenizer path (tokenizer.json or model directory; default --model)");
  cmd->add_option("--dataset-name", f.dataset_name, "random or custom")->capture_default_str();
  cmd->add_option("--dataset-path", f.dataset_path, "JSONL file for --dataset-name custom");
  cmd->add_option("--random-input-len", f.random_input_len, "Input tokens per request (special tokens included)")
      ->capture_default_str();
  cmd->add_option("--random-output-len", f.random_output_len, "Output tokens per request")->capture_default_str();
  cmd->add_option("--random-range-ratio", f.random_range_ratio, "Length range ratio in [0, 1)")->capture_default_str();
  cmd->add_option("--random-prefix-len", f.random_prefix_len, "Shared prefix tokens before each random prompt")
      ->capture_default_str();
  cmd->add_option("--custom-output-len", f.custom_output_len, "Output tokens for custom prompts without output_tokens")
      ->capture_default_str();
  cmd->add_flag("--skip-chat-template", f.skip_chat_template, "Custom dataset: send prompts without the chat template");
  cmd->add_option("--input-len", f.input_len, "Alias of --random-input-len");
  cmd->add_option("--output-len", f.output_len, "Alias of --random-output-len / --custom-output-len");
  cmd->add_option("--num-prompts", f.num_prompts, "Number of prompts to process")->capture_default_str();
  cmd->add_option("--request-rate", f.request_rate, "Requests per second (inf: all at once)")->capture_default_str();
  cmd->add_option("--burstiness", f.burstiness, "Gamma shape of the arrival gaps (1 = Poisson)")->capture_default_str();
  cmd->add_option("--max-concurrency", f.max_concurrency, "Maximum concurrent requests");
  cmd->add_option("--seed", f.seed, "Random seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", f.ignore_eos, "Send ignore_eos (always on for the random dataset)");
  cmd->add_option("--logprobs", f.logprobs, "logprobs to request per token");
  cmd->add_option("--num-warmups", f.num_warmups, "Warmup requests before the measured run")->capture_default_str();
  cmd->add_option("--percentile-metrics", f.percentile_metrics,
                  "Comma-separated metrics to report: ttft,tpot,itl,e2el,client_queue_time,e2el_including_client_queue")
      ->capture_default_str();
  cmd->add_option("--metric-percentiles", f.metric_percentiles, "Comma-separated percentiles, e.g. 25,50,99")
      ->capture_default_str();
  cmd->add_option("--goodput", f.goodput, "SLOs as KEY:VALUE (ms) pairs, keys ttft, tpot, e2el");
  cmd->add_flag("--save-result", f.save_result, "Save the results to a JSON file");
  cmd->add_flag("--save-detailed", f.save_detailed, "Include per-request arrays in the saved JSON");
  cmd->add_option("--result-dir", f.result_dir, "Directory for the result file");
  cmd->add_option("--result-filename", f.result_filename, "Result file name");
  cmd->add_flag("--disable-tqdm", f.disable_tqdm, "No progress bar");
  cmd->add_option("--label", f.label, "Label (prefix) of the result file (default: --backend)");
  cmd->add_option("--metadata", f.metadata, "KEY=VALUE pairs saved in the result JSON");
  cmd->add_option("--request-id-prefix", f.request_id_prefix, "Prefix of x-request-id (default bench-<hex>-)");
  cmd->add_option("--request-timeout", f.request_timeout_s, "Per-request timeout in seconds")->capture_default_str();
  cmd->callback([flags, &exit_code] {
    Status st = run_bench_serve(*flags);
    if (!st.ok()) {
      std::cerr << "tandem bench serve: " << st.to_string() << std::endl;
      exit_code = 1;
    }
  });
}

}  // namespace tandem::app
