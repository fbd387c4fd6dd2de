// Test doubles for the OpenAI server: a byte-level tokenizer and an engine that "generates" one letter
// per step on its own thread, honouring max_tokens, aborts and a waiting-queue limit.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "server/serving_engine.h"
#include "tokenizer/tokenizer.h"

namespace tandem::testing {

// Token id = byte + 1; 0 is BOS, 257 is EOS.
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int32_t> ids;
    if (add_special_tokens) ids.push_back(0);
    for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 1);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string s;
    for (int32_t id : ids) {
      if (id >= 1 && id <= 256) s += static_cast<char>(id - 1);
      else if (!skip_special_tokens) s += id == 0 ? "<s>" : "</s>";
    }
    return s;
  }
  int32_t vocab_size() const override { return 258; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::optional<std::string> id_to_token(int32_t id) const override { return decode(std::span(&id, 1), false); }
  bool is_special(int32_t id) const override { return id == 0 || id == 257; }
  std::vector<int32_t> special_token_ids() const override { return {0, 257}; }
  std::optional<int32_t> bos_token_id() const override { return 0; }
  std::vector<int32_t> eos_token_ids() const override { return {257}; }
  int num_special_tokens_to_add() const override { return 1; }
  Result<std::string> apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt) const override {
    std::string s = "<s>";
    for (const auto& m : messages) s += "[" + m.role + "]" + m.content + "\n";
    if (add_generation_prompt) s += "[assistant]";
    return s;
  }
  std::string fingerprint() const override { return "byte"; }
};

class FakeEngine final : public ServingEngine {
 public:
  explicit FakeEngine(std::chrono::microseconds step = std::chrono::microseconds(1000), int max_live = 100000)
      : step_(step), max_live_(max_live), tok_(std::make_shared<ByteTokenizer>()) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeEngine() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<std::shared_ptr<OutputChannel>> add_request(EngineRequest request) override {
    std::lock_guard lock(mu_);
    if (static_cast<int>(live_.size()) >= max_live_) return ResourceExhaustedError("waiting queue is full");
    if (live_.count(request.request_id)) return AlreadyExistsError("duplicate request id {}", request.request_id);
    auto ch = std::make_shared<OutputChannel>();
    last_request_ = request;
    std::string id = request.request_id;
    live_[id] = Live{std::move(request), ch, 0, false};
    total_added_++;
    cv_.notify_all();
    return ch;
  }
  void abort_request(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.aborted = true;
    aborts_++;
  }
  EngineMetrics metrics() const override {
    std::lock_guard lock(mu_);
    EngineMetrics m;
    m.num_running = static_cast<int>(live_.size());
    m.num_used_blocks = static_cast<int64_t>(live_.size());
    m.num_total_blocks = 1000;
    m.num_free_blocks = 1000 - m.num_used_blocks;
    return m;
  }
  int32_t max_model_len() const override { return 256; }
  std::shared_ptr<const Tokenizer> tokenizer() const override { return tok_; }

  size_t live() const {
    std::lock_guard lock(mu_);
    return live_.size();
  }
  int aborts() const {
    std::lock_guard lock(mu_);
    return aborts_;
  }
  EngineRequest last_request() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }

 private:
  struct Live {
    EngineRequest req;
    std::shared_ptr<OutputChannel> ch;
    int generated = 0;
    bool aborted = false;
  };

  void loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, step_, [this] { return stop_ || !live_.empty(); });
      if (stop_) break;
      for (auto it = live_.begin(); it != live_.end();) {
        Live& l = it->second;
        RequestOutput out;
        out.prompt_tokens = static_cast<int32_t>(l.req.prompt_token_ids.size());
        if (l.aborted) {
          out.finish_reason = FinishReason::kAbort;
        } else {
          int32_t id = 'a' + (l.generated % 26) + 1;
          l.generated++;
          out.new_token_ids = {id};
          out.new_text = std::string(1, static_cast<char>(id - 1));
          if (l.req.sampling.logprobs) out.logprobs.push_back({id, -0.5f, {{id, -0.5f}}});
          if (l.generated >= l.req.sampling.max_tokens) out.finish_reason = FinishReason::kLength;
          if (out.finished() && l.req.kv_transfer_params_json) out.kv_transfer_params_json = R"({"echo": true})";
        }
        out.completion_tokens = l.generated;
        bool done = out.finished();
        l.ch->push(std::move(out));
        if (done) {
          l.ch->close();
          it = live_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      std::this_thread::sleep_for(step_);
      lock.lock();
    }
    for (auto& [id, l] : live_) {
      RequestOutput out;
      out.finish_reason = FinishReason::kAbort;
      l.ch->push(std::move(out));
      l.ch->close();
    }
  }

  std::chrono::microseconds step_;
  int max_live_;
  std::shared_ptr<ByteTokenizer> tok_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Live> live_;
  EngineRequest last_request_;
  int aborts_ = 0;
  int total_added_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tandem::testing
