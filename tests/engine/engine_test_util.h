// Shared helpers for the engine tests: a tiny model written once per process into a temp dir, engine
// construction, and running a request to completion.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/model_writer.h"

namespace tandem::testing {

inline const std::filesystem::path& tiny_model_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("tandem_engine_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    Status st = write_preset_model("tiny", d, 1234);
    TANDEM_CHECK(st.ok(), "write_preset_model: {}", st.to_string());
    return d;
  }();
  return dir;
}

inline EngineConfig tiny_config() {
  EngineConfig c;
  c.model_dir = tiny_model_dir();
  c.device = Device::kCpu;
  c.num_threads = 2;
  c.num_kv_blocks = 128;
  c.max_num_batched_tokens = 512;
  c.max_num_seqs = 16;
  c.max_model_len = 512;
  return c;
}

inline std::unique_ptr<Engine> make_engine(const EngineConfig& c, std::unique_ptr<KvConnector> conn = nullptr) {
  auto e = Engine::create(c, std::move(conn));
  TANDEM_CHECK(e.ok(), "Engine::create: {}", e.status().to_string());
  return std::move(e).value();
}

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::optional<FinishReason> finish;
  std::optional<std::string> stop_reason;
  RequestOutput last;
  int num_outputs = 0;
  bool timed_out = false;
};

inline Collected collect(OutputChannel& ch, std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  Collected c;
  RequestOutput o;
  while (true) {
    auto st = ch.pop(o, timeout);
    if (st == OutputChannel::RecvStatus::kTimeout) {
      c.timed_out = true;
      break;
    }
    if (st == OutputChannel::RecvStatus::kClosed) break;
    ++c.num_outputs;
    c.tokens.insert(c.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
    c.text += o.new_text;
    c.logprobs.insert(c.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
    if (o.finished()) {
      c.finish = o.finish_reason;
      c.stop_reason = o.stop_reason;
    }
    c.last = o;
  }
  return c;
}

inline std::vector<int32_t> prompt_of(int n, int salt = 0) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = 3 + (i * 37 + salt * 101) % 500;
  return p;
}

inline EngineRequest greedy_request(const std::string& id, std::vector<int32_t> prompt, int max_tokens) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

inline Collected run_one(Engine& e, EngineRequest r) {
  auto ch = e.add_request(std::move(r));
  TANDEM_CHECK(ch.ok(), "add_request: {}", ch.status().to_string());
  return collect(**ch);
}

}  // namespace tandem::testing
