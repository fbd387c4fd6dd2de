// Engine and Engine::Impl: model + tokenizer loading, memory planning, the engine thread's step loop
// (inbox -> connector events -> schedule -> forward -> sample -> emit) and request bookkeeping.
//
// The step loop overlaps the host with the device (EngineConfig::async_scheduling): step N samples on the
// device and its ids are copied back asynchronously; while the device still runs step N, the host
// schedules and launches step N+1, whose decodes take their input tokens straight from step N's sampled
// ids on the device (Request::pending_rows, ModelRunner's pending inputs); only then does it read step
// N's tokens back, emit them and check stop conditions. Consequences handled here:
//   - a request that stops on a token (EOS, stop string) is seen one step late: its row in step N+1 is
//     discarded; requests that stop by count (max_tokens, max_model_len, a producer's single token) are
//     not scheduled past their last token (Request::stop_after_pending);
//   - a request finished or aborted while a launched step still holds it keeps its Request object until
//     that step has completed (retired_); its blocks are freed at once: later device work is ordered
//     after the step on the same stream, and
//   - remote KV loads (other streams, other processes) start only once the previous step is complete, so
//     no block freed meanwhile (a finish, an abort, a preemption) is still written by the device.
// Steps that need host-side logits (penalties, logprobs, min_tokens masks, a forced first token) sample
// synchronously, as does everything when async_scheduling is off.
//
// Threads: callers touch only the inbox, the abort list, the live-id set and the metrics snapshot (all
// under mu_). Everything else (scheduler, blocks, requests, connector) belongs to the engine thread.
// An idle engine waits on cv_ (or in KvConnector::wait_for_events while transfers or leases are
// pending); it never spins.
#include "engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "backend/backend_factory.h"
#include "common/clock.h"
#include "common/logging.h"
#include "engine/kv_connector.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/text_stream.h"
#include "kv/block_manager.h"
#include "kv/kv_pool.h"
#include "model/llama_model.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

namespace {

// A request as the engine thread tracks it: scheduling state plus its output side.
struct LiveRequest {
  Request req;
  std::shared_ptr<OutputChannel> channel;
  std::unique_ptr<TextStream> text;
  bool skip_first_output = false;  // consumer: the producer already returned the first token
};

}  // namespace

class Engine::Impl {
 public:
  Impl(const EngineConfig& config, std::unique_ptr<KvConnector> connector)
      : config_(config), connector_(std::move(connector)), seed_gen_(config.seed) {}
  ~Impl() { shutdown(std::chrono::milliseconds(0)); }

  Status init();
  Result<std::shared_ptr<OutputChannel>> add_request(EngineRequest request);
  void abort_request(const std::string& id);
  EngineMetrics metrics() const {
    std::lock_guard lock(mu_);
    return metrics_;
  }
  void shutdown(std::chrono::milliseconds deadline);

  EngineConfig config_;
  ModelConfig model_config_;
  std::shared_ptr<const Tokenizer> tokenizer_;

 private:
  void loop();
  bool step();  // false: nothing was scheduled
  void drain_inbox();
  void handle_connector_events();
  // A step that sampled on the device; its ids come back in token_host_[id % 2].
  struct LaunchedStep {
    uint64_t id = 0;
    std::vector<Request*> sample_reqs;
    // For the debug step log (log_step): batch shape and host-side times.
    int64_t num_tokens = 0;
    int num_decodes = 0;
    TimePoint begin{}, launched{};
  };
  // One debug line per step: tokens, decodes, host time to schedule and launch, launch -> tokens on host.
  static void log_step(const LaunchedStep& s);
  // A request finished while a launched step still has its Request* (in sample_reqs): kept until step
  // `step` has completed.
  struct Retired {
    uint64_t step = 0;
    std::unique_ptr<LiveRequest> lr;
  };
  void start_remote_loads(std::vector<RemoteLoad>& loads);
  // Reads back the in-flight step's tokens and processes them.
  void complete_inflight();
  // Appends sampled tokens to their requests and emits them (rows of finished requests are dropped).
  void process_tokens(std::span<Request* const> reqs, const int32_t* tokens,
                      std::vector<std::optional<TokenLogprob>>* logprobs, bool from_device);
  void count_step(const SchedulerOutput& out);
  void release_retired();
  // The stop rules that depend only on counts (max_tokens, max_model_len, a producer's single token), for
  // a request with `num_tokens` tokens.
  bool stops_by_count(const Request& r, int64_t num_tokens) const;
  // Appends-side handling of a new token of `lr` (already in req.tokens). Returns true when finished.
  void on_token(LiveRequest& lr, int32_t token, std::optional<TokenLogprob> logprob, bool emit);
  void finish(LiveRequest& lr, FinishReason reason, std::optional<std::string> stop_reason, Status error,
              RequestOutput out);
  void finish_all(FinishReason reason, const Status& error);
  RequestOutput make_output(const LiveRequest& lr) const;
  void publish_metrics();
  void mark_dead(const Status& st);

  std::unique_ptr<KvConnector> connector_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<KvPool> pool_;
  std::unique_ptr<BlockManager> bm_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Sampler> sampler_;
  std::vector<int32_t> eos_ids_;
  std::string engine_id_;

  // Shared with callers.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<LiveRequest>> inbox_;
  std::vector<std::string> aborts_;
  std::unordered_set<std::string> live_ids_;
  size_t num_queued_ = 0;  // inbox + scheduler waiting, for the max_waiting_requests check
  bool accepting_ = true;
  bool draining_ = false;
  bool stop_now_ = false;
  TimePoint drain_deadline_{};
  std::mt19937_64 seed_gen_;
  EngineMetrics metrics_;
  std::thread thread_;

  // Engine thread only.
  std::unordered_map<std::string, std::unique_ptr<LiveRequest>> requests_;
  std::vector<RunnerSeq> runner_seqs_;
  std::vector<int32_t> sampled_;
  std::vector<std::optional<TokenLogprob>> sampled_logprobs_;
  uint64_t num_steps_ = 0, prompt_tokens_ = 0, generation_tokens_ = 0;
  bool dead_ = false;
  // Overlapped loop.
  std::optional<LaunchedStep> inflight_;  // sampled on the device, tokens not read back yet
  uint64_t next_step_id_ = 1;
  uint64_t completed_step_id_ = 0;  // every step up to this id has finished on the device
  Buffer token_host_[2];            // read-back of a step's sampled ids, by step parity
  std::unique_ptr<DeviceMarker> token_ready_[2];
  std::vector<Retired> retired_;
};

// How long the host waits for one step's results before declaring the device stuck.
constexpr std::chrono::seconds kStepTimeout{120};

Status Engine::Impl::init() {
  TANDEM_RETURN_IF_ERROR(config_.validate());
  const auto& dir = config_.model_dir;
  TANDEM_ASSIGN_OR_RETURN(model_config_, ModelConfig::from_file(dir / "config.json"));
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    auto tok = Tokenizer::load(dir);
    if (!tok.ok()) return tok.status().with_context("loading the tokenizer");
    tokenizer_ = std::move(tok).value();
  }
  eos_ids_ = model_config_.eos_token_ids;
  if (tokenizer_) {
    for (int32_t id : tokenizer_->eos_token_ids())
      if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
  }

  TANDEM_ASSIGN_OR_RETURN(backend_, create_backend({config_.device, config_.device_id, config_.num_threads}));
  const int max_pos = model_config_.max_position_embeddings;
  if (config_.max_model_len > max_pos) {
    return InvalidArgumentError("max_model_len {} exceeds the model's max_position_embeddings {}", config_.max_model_len,
                                max_pos);
  }
  int max_len = config_.max_model_len > 0 ? config_.max_model_len : max_pos;
  ModelLoadOptions lo;
  lo.load_format = config_.load_format;
  lo.seed = config_.seed;
  lo.max_num_batched_tokens = config_.max_num_batched_tokens;
  lo.max_num_seqs = config_.max_num_seqs;
  lo.max_model_len = max_len;
  lo.show_progress = true;  // drawn only when stderr is a terminal
  TANDEM_ASSIGN_OR_RETURN(model_, LlamaModel::load(dir, model_config_, lo, *backend_));

  // Memory plan.
  KvLayout layout{model_config_.num_layers, model_config_.num_kv_heads, model_config_.head_dim, config_.block_size,
                  backend_->compute_dtype()};
  int64_t num_blocks = config_.num_kv_blocks;
  ModelRunnerOptions ro{config_.max_num_seqs, config_.max_num_batched_tokens, max_len};
  ro.use_graphs = !config_.enforce_eager;
  if (num_blocks == 0) {
    if (backend_->device() == Device::kCpu) {
      num_blocks = static_cast<int64_t>(config_.cpu_kv_cache_bytes / layout.block_bytes());
    } else {
      // Budget = gpu_memory_utilization x total, minus what THIS engine uses (its weights and workspace, the
      // runner's buffers, a margin for the CUDA context and library workspaces). Other processes on the same
      // GPU (a prefill and a decode instance sharing one, possibly loading at the same moment) are not
      // charged to us, but we never plan beyond what is actually free now.
      size_t free_b = 0, total_b = 0;
      backend_->memory_info(&free_b, &total_b);
      const double own = static_cast<double>(model_->weight_bytes() + model_->workspace_bytes());
      const double runner_bytes =
          static_cast<double>(ModelRunner::device_bytes(ro, config_.block_size, model_config_.vocab_size));
      const double margin = 768.0 * 1048576.0;
      const double by_budget = config_.gpu_memory_utilization * static_cast<double>(total_b) - own - runner_bytes - margin;
      const double by_free = static_cast<double>(free_b) - runner_bytes - margin;
      const double budget = std::min(by_budget, by_free);
      num_blocks = budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(layout.block_bytes())) : 0;
      TLOG_INFO("memory plan: total {:.2f} GiB, this engine after load {:.2f} GiB (weights {:.2f} GiB), free {:.2f} GiB, "
                "KV {} blocks",
                total_b / 1073741824.0, own / 1073741824.0, model_->weight_bytes() / 1073741824.0,
                free_b / 1073741824.0, num_blocks);
    }
  }
  if (num_blocks <= 0) {
    return ResourceExhaustedError("no memory left for the KV cache (block of {} bytes); lower max_num_seqs or raise "
                                  "the memory budget",
                                  layout.block_bytes());
  }
  const int64_t pool_tokens = num_blocks * config_.block_size;
  if (config_.max_model_len > 0 && config_.max_model_len > pool_tokens) {
    return ResourceExhaustedError("max_model_len {} needs more KV than the pool holds ({} tokens in {} blocks)",
                                  config_.max_model_len, pool_tokens, num_blocks);
  }
  max_len = static_cast<int>(std::min<int64_t>(max_len, pool_tokens));
  config_.max_model_len = max_len;
  ro.max_model_len = max_len;
  if (num_blocks > INT32_MAX / 2) num_blocks = INT32_MAX / 2;
  TANDEM_ASSIGN_OR_RETURN(pool_, KvPool::create(*backend_, layout, num_blocks));
  bm_ = std::make_unique<BlockManager>(static_cast<int32_t>(num_blocks), config_.block_size, config_.enable_prefix_caching);
  sched_ = std::make_unique<Scheduler>(SchedulerConfig{config_.max_num_seqs, config_.max_num_batched_tokens}, *bm_,
                                       connector_.get());
  TANDEM_ASSIGN_OR_RETURN(runner_, ModelRunner::create(*backend_, *model_, pool_->view(), ro));
  if (backend_->device() != Device::kCpu) {
    const TimePoint t0 = Clock::now();
    TANDEM_RETURN_IF_ERROR(runner_->warm_up(num_blocks).with_context("warming up the model runner"));
    TLOG_INFO("warm-up: a {}-token prefill and {} decode graphs in {:.2f} s", std::min<int64_t>(config_.max_num_batched_tokens, max_len),
              runner_->num_graphs(), seconds_between(t0, Clock::now()));
  }
  sampler_ = std::make_unique<Sampler>(*backend_, model_config_.vocab_size, eos_ids_);
  for (int i = 0; i < 2; ++i) {
    TANDEM_ASSIGN_OR_RETURN(token_host_[i], backend_->allocate_host(sizeof(int32_t) * config_.max_num_seqs));
    TANDEM_ASSIGN_OR_RETURN(token_ready_[i], backend_->create_marker());
  }

  std::random_device rd;
  engine_id_ = fmt::format("tandem-{:016x}", (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                                                 static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  if (connector_) {
    KvConnectorContext ctx{pool_->view(), model_config_.fingerprint(), tokenizer_ ? tokenizer_->fingerprint() : "",
                           engine_id_, config_.device_id};
    TANDEM_RETURN_IF_ERROR(connector_->initialize(ctx));
  }
  TLOG_INFO("engine {}: {} on {}, {} KV blocks of {} tokens ({:.1f} MiB), max_model_len {}", engine_id_,
            model_config_.architecture, backend_->name(), num_blocks, config_.block_size,
            pool_->bytes() / 1048576.0, max_len);
  publish_metrics();
  thread_ = std::thread([this] { loop(); });
  return Status::Ok();
}

Result<std::shared_ptr<OutputChannel>> Engine::Impl::add_request(EngineRequest request) {
  if (request.prompt_token_ids.empty()) return InvalidArgumentError("the prompt is empty");
  TANDEM_RETURN_IF_ERROR(request.sampling.validate());
  const int vocab = model_config_.vocab_size;
  for (int32_t t : request.prompt_token_ids)
    if (t < 0 || t >= vocab) return InvalidArgumentError("prompt token id {} is outside the vocabulary [0, {})", t, vocab);
  const int64_t prompt_len = static_cast<int64_t>(request.prompt_token_ids.size());
  if (prompt_len + request.sampling.max_tokens > config_.max_model_len) {
    return OutOfRangeError(
        "this model's maximum context length is {} tokens; the request has {} prompt tokens and max_tokens {}",
        config_.max_model_len, prompt_len, request.sampling.max_tokens);
  }
  auto lr = std::make_unique<LiveRequest>();
  if (connector_ && request.kv_transfer_params_json) {
    RemotePrefillInfo info;
    auto role = connector_->classify(request, &info);
    if (!role.ok()) return role.status();
    lr->req.kv_role = *role;
    if (*role == KvRole::kRemotePrefill) {
      if (info.num_prompt_tokens != prompt_len) {
        return InvalidArgumentError("kv_transfer_params num_prompt_tokens {} does not match the prompt's {} tokens",
                                    info.num_prompt_tokens, prompt_len);
      }
      if (info.first_token_id < 0 || info.first_token_id >= vocab)
        return InvalidArgumentError("kv_transfer_params first_token_id {} is outside the vocabulary", info.first_token_id);
      lr->req.forced_first_token = info.first_token_id;
      lr->skip_first_output = true;
    }
  }
  Request& r = lr->req;
  r.id = request.request_id;
  r.tokens = std::move(request.prompt_token_ids);
  r.num_prompt_tokens = static_cast<int32_t>(prompt_len);
  r.sampling = std::move(request.sampling);
  r.arrival_time = Clock::now();
  lr->text = std::make_unique<TextStream>(tokenizer_, r.sampling);
  lr->channel = std::make_shared<OutputChannel>();
  auto channel = lr->channel;
  {
    std::lock_guard lock(mu_);
    if (metrics_.dead) return UnavailableError("the engine stopped after an internal error");
    if (!accepting_) return UnavailableError("the engine is shutting down");
    if (live_ids_.count(r.id)) return AlreadyExistsError("request id '{}' is already in use", r.id);
    if (num_queued_ >= static_cast<size_t>(config_.max_waiting_requests))
      return ResourceExhaustedError("the waiting queue is full ({} requests)", config_.max_waiting_requests);
    r.seed = r.sampling.seed ? *r.sampling.seed : seed_gen_();
    live_ids_.insert(r.id);
    ++num_queued_;
    inbox_.push_back(std::move(lr));
  }
  cv_.notify_one();
  return channel;
}

void Engine::Impl::abort_request(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (!live_ids_.count(id)) return;
    aborts_.push_back(id);
  }
  cv_.notify_one();
}

void Engine::Impl::shutdown(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    if (!draining_) {
      draining_ = true;
      drain_deadline_ = Clock::now() + deadline;
    } else {
      drain_deadline_ = std::min(drain_deadline_, Clock::now() + deadline);
    }
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  if (connector_) {
    connector_->shutdown();
  }
}

void Engine::Impl::drain_inbox() {
  std::deque<std::unique_ptr<LiveRequest>> inbox;
  std::vector<std::string> aborts;
  {
    std::lock_guard lock(mu_);
    inbox.swap(inbox_);
    aborts.swap(aborts_);
  }
  for (auto& lr : inbox) {
    Request* r = &lr->req;
    std::string id = r->id;
    requests_[id] = std::move(lr);
    sched_->add(r);
  }
  for (const std::string& id : aborts) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    finish(*it->second, FinishReason::kAbort, std::nullopt, AbortedError("request aborted"), make_output(*it->second));
  }
}

void Engine::Impl::handle_connector_events() {
  if (!connector_) return;
  KvConnectorEvents ev = connector_->poll();
  for (const std::string& id : ev.leases_released) sched_->release_lease(id);
  for (auto& [id, st] : ev.loads_finished) {
    Request* r = sched_->on_load_finished(id, st.ok());
    if (!r) continue;
    r->remote_load_end = Clock::now();
    LiveRequest& lr = *requests_.at(id);
    if (st.ok()) {
      // The prompt is computed and the producer's first token appended: process it without emitting.
      on_token(lr, r->tokens.back(), std::nullopt, /*emit=*/false);
    } else if (connector_->failure_policy() == KvLoadFailurePolicy::kFail) {
      finish(lr, FinishReason::kError, std::nullopt, st.with_context("remote KV load failed"), make_output(lr));
    } else {
      TLOG_WARN("request {}: remote KV load failed ({}); prefilling locally", id, st.to_string());
    }
  }
}

RequestOutput Engine::Impl::make_output(const LiveRequest& lr) const {
  const Request& r = lr.req;
  RequestOutput out;
  out.prompt_tokens = r.num_prompt_tokens;
  out.completion_tokens = r.num_known_output_tokens();
  out.cached_prompt_tokens = std::max(0, r.num_cached_tokens);
  out.remote_prompt_tokens = r.num_remote_tokens;
  if (r.first_scheduled_time) out.queue_time_s = seconds_between(r.arrival_time, *r.first_scheduled_time);
  if (r.first_token_time) out.first_token_time_s = seconds_between(r.arrival_time, *r.first_token_time);
  if (r.remote_load_start && r.remote_load_end)
    out.remote_load_time_s = seconds_between(*r.remote_load_start, *r.remote_load_end);
  return out;
}

void Engine::Impl::on_token(LiveRequest& lr, int32_t token, std::optional<TokenLogprob> logprob, bool emit) {
  Request& r = lr.req;
  if (!r.first_token_time) r.first_token_time = Clock::now();
  const SamplingParams& p = r.sampling;
  const int32_t n_out = r.num_known_output_tokens();
  const bool check_stop = n_out >= p.min_tokens;
  TextStream::Piece piece = lr.text->push(token, check_stop);

  RequestOutput out = make_output(lr);
  if (emit) {
    out.new_token_ids.push_back(token);
    out.new_text = std::move(piece.text);
    if (logprob) out.logprobs.push_back(std::move(*logprob));
  }
  const bool is_eos = std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  const bool is_stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  std::optional<FinishReason> reason;
  std::optional<std::string> stop_reason;
  if (check_stop && is_eos && !p.ignore_eos) {
    reason = FinishReason::kStop;
  } else if (check_stop && is_stop_id) {
    reason = FinishReason::kStop;
    stop_reason = std::to_string(token);
  } else if (piece.stop_string) {
    reason = FinishReason::kStop;
    stop_reason = piece.stop_string;
  } else if (stops_by_count(r, static_cast<int64_t>(r.tokens.size()))) {
    reason = FinishReason::kLength;  // includes a producer, which stops after the first token
  }
  if (reason) {
    // A producer returns only the text a stream would have shown so far: the consumer continues the same
    // text stream and emits any held-back bytes (an incomplete UTF-8 tail) once they complete.
    if (!piece.stop_string && emit && r.kv_role != KvRole::kRemoteDecode) out.new_text += lr.text->finish();
    finish(lr, *reason, std::move(stop_reason), Status::Ok(), std::move(out));
    return;
  }
  if (emit) lr.channel->push(std::move(out));
}

void Engine::Impl::finish(LiveRequest& lr, FinishReason reason, std::optional<std::string> stop_reason, Status error,
                          RequestOutput out) {
  Request& r = lr.req;
  const std::string id = r.id;
  const bool producer = connector_ && r.kv_role == KvRole::kRemoteDecode;
  // A launched step still holds this Request*: the object outlives that step. Its blocks are freed now:
  // later device work is ordered after the step on the same stream, and remote loads (other writers)
  // start only once the previous step has completed (step()).
  const bool on_device = r.last_launched_step > completed_step_id_;
  if (producer && (reason == FinishReason::kStop || reason == FinishReason::kLength) &&
      r.state == RequestState::kRunning && r.num_known_output_tokens() > 0) {
    TANDEM_CHECK(!on_device, "producer request {} finished while a step still computes it", id);
    std::vector<int32_t> blocks = sched_->remove_and_lease(&r);
    out.kv_transfer_params_json =
        connector_->on_prefill_finished(id, blocks, r.num_prompt_tokens, r.output()[0]);
  } else {
    if (producer) connector_->on_request_aborted(id);
    sched_->remove(&r);
  }
  out.finish_reason = reason;
  out.stop_reason = std::move(stop_reason);
  if (reason == FinishReason::kError) out.error = std::move(error);
  // Publish before the final output: whoever reads metrics() after it sees the blocks freed (or leased).
  publish_metrics();
  lr.channel->push(std::move(out));
  lr.channel->close();
  {
    std::lock_guard lock(mu_);
    live_ids_.erase(id);
  }
  auto it = requests_.find(id);
  if (on_device) retired_.push_back({r.last_launched_step, std::move(it->second)});
  requests_.erase(it);  // destroys lr unless retired
}

void Engine::Impl::release_retired() {
  std::erase_if(retired_, [&](const Retired& t) { return t.step <= completed_step_id_; });
}

void Engine::Impl::finish_all(FinishReason reason, const Status& error) {
  std::vector<std::string> ids;
  for (auto& [id, lr] : requests_) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    finish(*it->second, reason, std::nullopt, error, make_output(*it->second));
  }
}

bool Engine::Impl::stops_by_count(const Request& r, int64_t num_tokens) const {
  return num_tokens - r.num_prompt_tokens >= r.sampling.max_tokens || num_tokens >= config_.max_model_len ||
         r.kv_role == KvRole::kRemoteDecode;
}

void Engine::Impl::start_remote_loads(std::vector<RemoteLoad>& loads) {
  for (RemoteLoad& l : loads) {
    TANDEM_CHECK(l.req->state == RequestState::kWaitingForRemoteKv, "remote load of request {} in a wrong state",
                 l.req->id);
    l.req->remote_load_start = Clock::now();
    connector_->start_load(l.req->id, std::move(l.block_ids), l.first_block);
  }
  loads.clear();
}

void Engine::Impl::count_step(const SchedulerOutput& out) {
  ++num_steps_;
  for (const ScheduledSeq& s : out.seqs) {
    if (s.req->is_finished()) continue;
    const int64_t prompt_part =
        std::max<int64_t>(0, std::min<int64_t>(s.req->num_computed_tokens, s.req->num_prompt_tokens) -
                                 std::max<int64_t>(s.req->num_computed_tokens - s.num_new_tokens, 0));
    prompt_tokens_ += static_cast<uint64_t>(std::min<int64_t>(prompt_part, s.num_new_tokens));
  }
}

void Engine::Impl::process_tokens(std::span<Request* const> reqs, const int32_t* tokens,
                                  std::vector<std::optional<TokenLogprob>>* logprobs, bool from_device) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    Request* r = reqs[i];
    if (r->is_finished()) continue;  // stopped on an earlier token, or aborted: this row is discarded
    int32_t token = tokens[i];
    bool emit = true;
    if (from_device) {
      TANDEM_CHECK(!r->pending_rows.empty() && r->pending_rows.front() == static_cast<int32_t>(i),
                   "request {}: sampled row {} is not its oldest pending token", r->id, i);
      r->pending_rows.erase(r->pending_rows.begin());
    } else if (r->num_known_output_tokens() == 0 && r->forced_first_token) {
      token = *r->forced_first_token;  // a consumer that recomputed: the producer's token stands
      emit = false;
    }
    r->tokens.push_back(token);
    ++generation_tokens_;
    LiveRequest& lr = *requests_.at(r->id);
    TANDEM_CHECK(&lr.req == r, "request id {} maps to another request", r->id);
    std::optional<TokenLogprob> lp;
    if (logprobs) lp = std::move((*logprobs)[i]);
    on_token(lr, token, std::move(lp), emit && !(lr.skip_first_output && r->num_known_output_tokens() == 1));
  }
}

void Engine::Impl::complete_inflight() {
  LaunchedStep s = std::move(*inflight_);
  inflight_.reset();
  const int slot = static_cast<int>(s.id % 2);
  Status st = token_ready_[slot]->wait(kStepTimeout);
  if (!st.ok()) {
    mark_dead(st);
    return;
  }
  completed_step_id_ = s.id;
  log_step(s);
  process_tokens(s.sample_reqs, static_cast<const int32_t*>(token_host_[slot].data()), nullptr, /*from_device=*/true);
  release_retired();
}

void Engine::Impl::log_step(const LaunchedStep& s) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  const TimePoint now = Clock::now();
  TLOG_DEBUG("step {}: {} tokens ({} decodes), schedule + launch {:.3f} ms, launch -> tokens {:.3f} ms", s.id,
             s.num_tokens, s.num_decodes, 1e3 * seconds_between(s.begin, s.launched),
             1e3 * seconds_between(s.launched, now));
}

bool Engine::Impl::step() {
  const TimePoint begin = Clock::now();
  SchedulerOutput out = sched_->schedule();
  for (Request* p : out.preempted) TLOG_DEBUG("request {} preempted (recompute)", p->id);
  // Without a step on the device, nothing writes into blocks this schedule freed: loads may start now.
  if (!inflight_) start_remote_loads(out.remote_loads);
  if (out.empty()) {
    if (!inflight_) return false;
    complete_inflight();
    if (!dead_) start_remote_loads(out.remote_loads);
    return true;
  }

  LaunchedStep step;
  step.id = next_step_id_++;
  step.begin = begin;
  step.num_decodes = out.num_decodes;
  step.num_tokens = out.num_tokens;
  runner_seqs_.clear();
  for (const ScheduledSeq& s : out.seqs) {
    Request* r = s.req;
    RunnerSeq rs{r->tokens, r->num_computed_tokens, s.num_new_tokens, r->blocks.blocks, s.samples};
    if (!r->pending_rows.empty()) {
      TANDEM_CHECK(r->pending_rows.size() == 1 && s.num_new_tokens == 1 &&
                       r->num_computed_tokens == static_cast<int64_t>(r->tokens.size()),
                   "request {}: pending token outside a decode", r->id);
      rs.pending_input_row = r->pending_rows.front();
    }
    runner_seqs_.push_back(rs);
    if (s.samples) step.sample_reqs.push_back(r);
    r->last_launched_step = step.id;
  }
  auto logits = runner_->execute(runner_seqs_, out.num_decodes);
  if (!logits.ok()) {
    mark_dead(logits.status());
    return true;
  }
  const bool on_device = config_.async_scheduling && sampler_->can_sample_on_device(step.sample_reqs);
  if (on_device) {
    const int slot = static_cast<int>(step.id % 2);
    const int m = static_cast<int>(step.sample_reqs.size());
    TensorView ids = runner_->sampled_ids(m);
    sampler_->sample_to_device(*logits, step.sample_reqs, ids);
    backend_->copy_to_host_async(token_host_[slot].data(), ids.data, sizeof(int32_t) * m);
    token_ready_[slot]->record();
    for (int i = 0; i < m; ++i) {
      Request* r = step.sample_reqs[i];
      r->pending_rows.push_back(i);
      r->stop_after_pending = stops_by_count(*r, r->num_tokens());
    }
  }
  step.launched = Clock::now();

  // This step is queued on the device behind the previous one: read the previous step's tokens now.
  if (inflight_) {
    complete_inflight();
    if (dead_) return true;
    start_remote_loads(out.remote_loads);
  }
  if (on_device) {
    sched_->on_step_computed(out);
    count_step(out);
    inflight_ = std::move(step);
    return true;
  }
  // Synchronous sampling (host-side logits processing, or async scheduling off).
  sampler_->sample(*logits, step.sample_reqs, &sampled_, &sampled_logprobs_);
  completed_step_id_ = step.id;  // sample() waited for the device
  log_step(step);
  sched_->on_step_computed(out);
  count_step(out);
  process_tokens(step.sample_reqs, sampled_.data(), &sampled_logprobs_, /*from_device=*/false);
  release_retired();
  return true;
}

void Engine::Impl::mark_dead(const Status& st) {
  TLOG_ERROR("engine step failed: {}; failing all requests", st.to_string());
  dead_ = true;
  // Nothing more is launched; whatever the device still does no longer matters to the block pool.
  inflight_.reset();
  completed_step_id_ = next_step_id_;
  {
    std::lock_guard lock(mu_);
    metrics_.dead = true;
    accepting_ = false;
  }
  drain_inbox();
  finish_all(FinishReason::kError, st.with_context("engine failure"));
  release_retired();
}

void Engine::Impl::publish_metrics() {
  EngineMetrics m;
  if (sched_) {
    m.num_running = static_cast<int>(sched_->num_running());
    m.num_waiting_for_remote_kv = static_cast<int>(sched_->num_waiting_for_remote_kv());
    m.num_waiting = static_cast<int>(sched_->num_waiting()) + m.num_waiting_for_remote_kv;
    m.num_total_blocks = bm_->num_total_blocks();
    m.num_free_blocks = bm_->num_free_blocks();
    m.num_used_blocks = bm_->num_used_blocks();
    m.kv_usage = m.num_total_blocks ? static_cast<double>(m.num_used_blocks) / m.num_total_blocks : 0.0;
    m.prefix_cache_queries = sched_->prefix_queries();
    m.prefix_cache_hits = sched_->prefix_hits();
    m.num_preemptions = sched_->num_preemptions();
  }
  m.prompt_tokens = prompt_tokens_;
  m.generation_tokens = generation_tokens_;
  m.num_steps = num_steps_;
  m.dead = dead_;
  std::lock_guard lock(mu_);
  num_queued_ = inbox_.size() + (sched_ ? sched_->num_waiting() : 0);
  metrics_ = m;
}

void Engine::Impl::loop() {
  while (true) {
    drain_inbox();
    bool draining;
    TimePoint deadline;
    {
      std::lock_guard lock(mu_);
      draining = draining_;
      deadline = drain_deadline_;
    }
    if (draining && (requests_.empty() || Clock::now() >= deadline)) break;
    bool worked = false;
    if (!dead_) {
      try {
        handle_connector_events();
        worked = step();
      } catch (const std::exception& e) {
        mark_dead(InternalError("exception in the engine step: {}", e.what()));
      }
    }
    publish_metrics();
    if (worked) continue;
    // Idle: wait for a request, an abort, shutdown, or a connector event.
    if (connector_ && connector_->has_pending_work()) {
      {
        std::lock_guard lock(mu_);
        if (!inbox_.empty() || !aborts_.empty()) continue;
      }
      connector_->wait_for_events(std::chrono::milliseconds(5));
    } else {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(draining ? 10 : 200),
                   [&] { return !inbox_.empty() || !aborts_.empty() || (draining_ && !draining); });
    }
  }
  drain_inbox();
  if (inflight_ && !dead_) complete_inflight();
  finish_all(FinishReason::kAbort, AbortedError("engine shut down"));
  backend_->synchronize();
  completed_step_id_ = next_step_id_;
  release_retired();
  sched_->release_all();
  publish_metrics();
}

// ---- Engine ----

Result<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config, std::unique_ptr<KvConnector> connector) {
  auto impl = std::make_unique<Impl>(config, std::move(connector));
  TANDEM_RETURN_IF_ERROR(impl->init());
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::shared_ptr<OutputChannel>> Engine::add_request(EngineRequest request) {
  return impl_->add_request(std::move(request));
}
void Engine::abort_request(const std::string& request_id) { impl_->abort_request(request_id); }
EngineMetrics Engine::metrics() const { return impl_->metrics(); }
const EngineConfig& Engine::config() const { return impl_->config_; }
const ModelConfig& Engine::model_config() const { return impl_->model_config_; }
std::shared_ptr<const Tokenizer> Engine::tokenizer() const { return impl_->tokenizer_; }
void Engine::shutdown(std::chrono::milliseconds deadline) { impl_->shutdown(deadline); }

}  // namespace tandem
