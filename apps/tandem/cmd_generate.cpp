// `tandem generate`: one offline request through a full Engine; streams the text to stdout and prints
// a summary (tokens, time, tokens/s) to stderr.
#include <chrono>
#include <cstdio>
#include <sstream>

#include "common/clock.h"
#include "engine/engine.h"
#include "tandem/commands.h"
#include "tokenizer/tokenizer.h"

namespace tandem::app {

void register_generate(CLI::App& app, int& exit_code) {
  struct Flags {
    std::string model, prompt, prompt_ids, device = "cpu", load_format = "auto";
    int max_tokens = 64, top_k = 0, threads = 0, max_model_len = 0;
    float temperature = 0.0f, top_p = 1.0f;
    std::optional<uint64_t> seed;
    bool ignore_eos = false, print_ids = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text for one prompt offline (no server)");
  cmd->add_option("--model", f->model, "Model directory (HF format)")->required();
  auto* p1 = cmd->add_option("--prompt", f->prompt, "Prompt text (tokenized with the model's tokenizer)");
  auto* p2 = cmd->add_option("--prompt-ids", f->prompt_ids, "Prompt token ids, comma separated");
  p1->excludes(p2);
  cmd->add_option("--max-tokens", f->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", f->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", f->top_p)->capture_default_str();
  cmd->add_option("--top-k", f->top_k, "0 = disabled")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Sampling seed");
  cmd->add_option("--device", f->device, "cpu | cuda")->capture_default_str();
  cmd->add_option("--load-format", f->load_format, "auto | dummy (random weights)")->capture_default_str();
  cmd->add_option("--num-threads", f->threads, "CPU backend threads (0: all cores)");
  cmd->add_option("--max-model-len", f->max_model_len, "0: the model's max_position_embeddings (capped by the KV pool)");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past EOS");
  cmd->add_flag("--print-ids", f->print_ids, "Also print the generated token ids");
  cmd->callback([f, &exit_code] {
    auto fail = [&](int code, const std::string& msg) {
      std::fprintf(stderr, "error: %s\n", msg.c_str());
      exit_code = code;
    };
    if (f->prompt.empty() == f->prompt_ids.empty()) return fail(2, "give exactly one of --prompt and --prompt-ids");
    EngineConfig c;
    c.model_dir = f->model;
    c.load_format = f->load_format;
    c.num_threads = f->threads;
    c.max_model_len = f->max_model_len;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 4096;
    const std::optional<Device> device = parse_device(f->device);
    if (!device) return fail(2, "--device must be cpu or cuda, got '" + f->device + "'");
    c.device = *device;
    EngineRequest req;
    req.request_id = "generate-0";
    if (!f->prompt_ids.empty()) {
      std::stringstream ss(f->prompt_ids);
      std::string item;
      while (std::getline(ss, item, ',')) {
        try {
          size_t used = 0;
          long v = std::stol(item, &used);
          if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
          req.prompt_token_ids.push_back(static_cast<int32_t>(v));
        } catch (...) {
          return fail(2, "--prompt-ids: '" + item + "' is not a token id");
        }
      }
    }
    auto engine = Engine::create(c);
    if (!engine.ok()) return fail(1, engine.status().to_string());
    auto tok = (*engine)->tokenizer();
    if (!f->prompt.empty()) {
      if (!tok) return fail(2, "the model directory has no tokenizer.json; use --prompt-ids");
      req.prompt_token_ids = tok->encode(f->prompt, /*add_special_tokens=*/true);
    }
    req.sampling.max_tokens = f->max_tokens;
    req.sampling.temperature = f->temperature;
    req.sampling.top_p = f->top_p;
    req.sampling.top_k = f->top_k;
    req.sampling.seed = f->seed;
    req.sampling.ignore_eos = f->ignore_eos;
    const auto t0 = Clock::now();
    auto ch = (*engine)->add_request(std::move(req));
    if (!ch.ok()) return fail(2, ch.status().to_string());
    std::vector<int32_t> ids;
    RequestOutput out, last;
    while (true) {
      auto st = (*ch)->pop(out, std::chrono::minutes(10));
      if (st == OutputChannel::RecvStatus::kTimeout) return fail(1, "timed out waiting for the engine");
      if (st == OutputChannel::RecvStatus::kClosed) break;
      std::fputs(out.new_text.c_str(), stdout);
      std::fflush(stdout);
      ids.insert(ids.end(), out.new_token_ids.begin(), out.new_token_ids.end());
      last = out;
    }
    std::fputs("\n", stdout);
    const double secs = seconds_between(t0, Clock::now());
    if (f->print_ids) {
      std::string s;
      for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
      std::printf("ids: %s\n", s.c_str());
    }
    if (last.finish_reason == FinishReason::kError) return fail(1, last.error.to_string());
    std::fprintf(stderr,
                 "[generate] prompt %d tokens, generated %d tokens in %.3f s (%.1f tokens/s, first token %.3f s), "
                 "finish %s\n",
                 last.prompt_tokens, last.completion_tokens, secs, secs > 0 ? last.completion_tokens / secs : 0.0,
                 last.first_token_time_s,
                 last.finish_reason ? std::string(finish_reason_name(*last.finish_reason)).c_str() : "none");
    (*engine)->shutdown(std::chrono::milliseconds(0));
  });
}

}  // namespace tandem::app
