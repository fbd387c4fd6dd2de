// DisaggKvConnector: producer leases, consumer loads, handshake and claim (see disagg_connector.h).
#include "disagg/disagg_connector.h"

#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "engine/engine.h"
#include "transfer/cuda_ipc/cuda_ipc_agent.h"
#include "transfer/region_table.h"
#include "transfer/tcp/tcp_agent.h"

namespace tandem {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kWaitSlice = 50ms;
constexpr auto kClaimGrace = 2000ms;       // the producer holds a claimed lease this much past the reader's deadline
constexpr auto kReleaseNotifyTimeout = 2000ms;
constexpr size_t kMaxTransferSamples = 10000;

bool is_wildcard(const std::string& host) { return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]"; }

// The producer's address, "host:port": the key of peers_.
std::string peer_key(const KvTransferParams& p) { return fmt::format("{}:{}", p.remote_host, p.remote_port); }

}  // namespace

DisaggKvConnector::DisaggKvConnector(KvTransferConfig config) : config_(std::move(config)) {}

DisaggKvConnector::~DisaggKvConnector() { shutdown(); }

std::chrono::milliseconds DisaggKvConnector::left(TimePoint deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(ms, std::chrono::milliseconds(1));
}

Status DisaggKvConnector::initialize(const KvConnectorContext& ctx) {
  if (initialized_) return FailedPreconditionError("kv connector initialized twice");
  ctx_ = ctx;
  if (!config_.engine_id.empty()) ctx_.engine_id = config_.engine_id;
  if (ctx_.engine_id.empty()) return InvalidArgumentError("kv connector needs an engine id");
  const KvLayout& layout = ctx_.kv.layout;
  if (layout.block_size <= 0 || layout.block_bytes() == 0) return InvalidArgumentError("kv connector: the KV pool has no layout");

  SideChannelOptions so;
  so.host = config_.side_channel_host;
  so.port = config_.side_channel_port;
  auto server = SideChannelServer::start(so);
  if (!server.ok()) return server.status().with_context("kv-transfer side channel");
  server_ = std::shared_ptr<SideChannelServer>(std::move(server).value());
  advertise_host_ = config_.advertise_host;
  if (advertise_host_.empty()) {
    advertise_host_ = config_.side_channel_host;
    if (is_wildcard(advertise_host_)) {
      char name[256] = {0};
      gethostname(name, sizeof(name) - 1);
      advertise_host_ = name;
    }
  }

  MemoryRegion pool{reinterpret_cast<uint64_t>(ctx_.kv.base),
                    static_cast<uint64_t>(ctx_.kv.num_blocks) * layout.block_bytes(),
                    ctx_.kv.device == Device::kCuda ? MemoryKind::kCuda : MemoryKind::kHost, ctx_.device_id};
  TcpAgentOptions to;
  to.advertise_host = advertise_host_;
  to.io_timeout = config_.transfer_timeout;
  TANDEM_ASSIGN_OR_RETURN(tcp_agent_, TcpAgent::create(server_, to));
  if (pool.addr != 0 && pool.length != 0) TANDEM_RETURN_IF_ERROR(tcp_agent_->register_memory(pool).with_context("tcp transport"));

  if (ctx_.kv.device == Device::kCuda && config_.transport != TransportKind::kTcp) {
    CudaIpcAgentOptions co;
    co.advertise_host = advertise_host_;
    co.device_id = ctx_.device_id;
    co.io_timeout = config_.transfer_timeout;
    auto agent = CudaIpcAgent::create(server_, co);
    Status st = agent.ok() ? (*agent)->register_memory(pool) : agent.status();
    if (st.ok()) {
      cuda_ipc_agent_ = std::move(agent).value();
    } else if (config_.transport == TransportKind::kCudaIpc) {
      return st.with_context("transport cuda_ipc");
    } else {
      TLOG_INFO("kv-transfer: cuda_ipc unavailable ({}); using tcp", st.to_string());
    }
  } else if (config_.transport == TransportKind::kCudaIpc) {
    return FailedPreconditionError("transport cuda_ipc needs a KV pool on a CUDA device");
  }

  local_meta_.engine_id = ctx_.engine_id;
  local_meta_.host_id = local_host_id();
  local_meta_.model_fingerprint = ctx_.model_fingerprint;
  local_meta_.tokenizer_fingerprint = ctx_.tokenizer_fingerprint;
  local_meta_.layout = layout;
  local_meta_.pool_base = pool.addr;
  local_meta_.num_blocks = ctx_.kv.num_blocks;
  local_meta_.block_bytes = layout.block_bytes();
  local_meta_.device = ctx_.kv.device;
  local_meta_.device_id = ctx_.device_id;
  for (TransferAgent* a : {tcp_agent_.get(), cuda_ipc_agent_.get()}) {
    if (a == nullptr) continue;
    TANDEM_ASSIGN_OR_RETURN(local_meta_.agents[std::string(a->kind())], a->export_metadata());
  }

  server_->set_handler(disagg_frame::kHandshake, [this](const Frame& f, FrameConnection& c) { return serve_handshake(f, c); });
  server_->set_handler(disagg_frame::kClaim, [this](const Frame& f, FrameConnection& c) { return serve_claim(f, c); });
  server_->set_notification_callback([this] {
    {
      std::lock_guard lock(mu_);
      notifications_pending_ = true;
    }
    cv_.notify_all();
  });
  if (config_.is_consumer()) {
    for (int i = 0; i < config_.num_transfer_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  initialized_ = true;
  TLOG_INFO("kv-transfer: engine {} is a KV {} on side channel {}:{} (advertised as {}), transports: {}{}, fingerprint {}",
            ctx_.engine_id, kv_transfer_role_name(config_.role), config_.side_channel_host, server_->port(),
            advertise_host_, "tcp", cuda_ipc_agent_ ? " cuda_ipc" : "", compatibility_fingerprint(local_meta_));
  return Status::Ok();
}

int DisaggKvConnector::side_channel_port() const { return server_ ? server_->port() : 0; }

size_t DisaggKvConnector::num_leases() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

Result<KvRole> DisaggKvConnector::classify(const EngineRequest& request, RemotePrefillInfo* info) {
  if (!request.kv_transfer_params_json || request.kv_transfer_params_json->empty()) return KvRole::kNone;
  TANDEM_ASSIGN_OR_RETURN(KvTransferParams p, parse_kv_transfer_params(*request.kv_transfer_params_json));
  if (p.do_remote_decode) {
    if (!config_.is_producer()) return InvalidArgumentError("kv_transfer_params.do_remote_decode: this engine is not a KV producer");
    return KvRole::kRemoteDecode;
  }
  if (!p.do_remote_prefill) return KvRole::kNone;
  if (!config_.is_consumer()) return InvalidArgumentError("kv_transfer_params.do_remote_prefill: this engine is not a KV consumer");
  const int64_t n = static_cast<int64_t>(request.prompt_token_ids.size());
  if (p.num_prompt_tokens != n) {
    return InvalidArgumentError("kv_transfer_params.num_prompt_tokens is {} but the prompt has {} tokens", p.num_prompt_tokens, n);
  }
  const int bs = ctx_.kv.layout.block_size;
  const size_t needed = static_cast<size_t>((n + bs - 1) / bs);
  if (p.remote_block_ids.size() < needed) {
    return InvalidArgumentError("kv_transfer_params.remote_block_ids has {} blocks; {} prompt tokens need {}",
                                p.remote_block_ids.size(), n, needed);
  }
  if (info != nullptr) {
    info->num_prompt_tokens = p.num_prompt_tokens;
    info->first_token_id = p.first_token_id;
  }
  std::lock_guard lock(mu_);
  classified_[request.request_id] = {std::move(p), Clock::now()};
  return KvRole::kRemotePrefill;
}

void DisaggKvConnector::start_load(const std::string& request_id, std::vector<int32_t> local_block_ids, int first_block) {
  {
    std::lock_guard lock(mu_);
    auto it = classified_.find(request_id);
    if (it == classified_.end() || stopping_) {
      finished_.emplace_back(request_id, stopping_ ? AbortedError("kv connector is shutting down")
                                                   : InternalError("start_load for request {} without remote params", request_id));
    } else {
      auto load = std::make_shared<Load>();
      load->request_id = request_id;
      load->params = std::move(it->second.first);
      classified_.erase(it);
      load->local_block_ids = std::move(local_block_ids);
      load->first_block = first_block;
      load->started = Clock::now();
      loads_[request_id] = load;
      queue_.push_back(std::move(load));
    }
  }
  cv_.notify_all();
}

void DisaggKvConnector::cancel_load(const std::string& request_id) {
  std::lock_guard lock(mu_);
  auto it = loads_.find(request_id);
  if (it != loads_.end()) {
    it->second->cancel = true;  // the worker (or the one that dequeues it) reports kAborted
    return;
  }
  // Aborted before its load started (still queued in the engine): tell the producer to free the lease
  // now rather than letting it expire. A worker sends the notification; no loads_finished event follows.
  auto c = classified_.find(request_id);
  if (c == classified_.end() || stopping_) return;
  auto load = std::make_shared<Load>();
  load->request_id = request_id;
  load->params = std::move(c->second.first);
  load->release_only = true;
  classified_.erase(c);
  queue_.push_back(std::move(load));
  cv_.notify_all();
}

std::string DisaggKvConnector::on_prefill_finished(const std::string& request_id, std::span<const int32_t> block_ids,
                                                   int32_t num_prompt_tokens, int32_t first_token_id) {
  const int bs = ctx_.kv.layout.block_size;
  const size_t needed = static_cast<size_t>((num_prompt_tokens + bs - 1) / bs);
  KvTransferParams p;
  p.do_remote_prefill = true;
  p.remote_engine_id = ctx_.engine_id;
  p.remote_request_id = request_id;
  p.remote_host = advertise_host_;
  p.remote_port = server_ ? server_->port() : 0;
  p.remote_block_ids.assign(block_ids.begin(), block_ids.begin() + std::min(needed, block_ids.size()));
  p.num_prompt_tokens = num_prompt_tokens;
  p.first_token_id = first_token_id;
  p.block_size = bs;
  p.lease_expires_in_ms = config_.lease_duration.count();
  {
    std::lock_guard lock(mu_);
    leases_[request_id] = Lease{block_ids.size(), Clock::now() + config_.lease_duration};
  }
  cv_.notify_all();
  return serialize_kv_transfer_params(p);
}

void DisaggKvConnector::on_request_aborted(const std::string& request_id) {
  std::lock_guard lock(mu_);
  if (leases_.erase(request_id) > 0) released_.push_back(request_id);
}

void DisaggKvConnector::collect_producer_events_locked(KvConnectorEvents& events) {
  notifications_pending_ = false;
  if (server_) {
    for (const std::string& msg : server_->take_notifications()) {
      std::string engine_id, request_id;
      if (!decode_release_notification(msg, &engine_id, &request_id)) {
        TLOG_WARN("kv-transfer: ignoring unknown notification '{}'", msg.substr(0, 200));
        continue;
      }
      if (engine_id != ctx_.engine_id) continue;  // meant for an earlier incarnation
      if (leases_.erase(request_id) > 0) released_.push_back(request_id);
    }
  }
  const TimePoint now = Clock::now();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires <= now) {
      TLOG_WARN("kv-transfer: lease of request {} expired unclaimed; freeing its {} blocks", it->first, it->second.num_blocks);
      released_.push_back(it->first);
      ++metrics_.leases_expired;
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  events.leases_released = std::exchange(released_, {});
}

KvConnectorEvents DisaggKvConnector::poll() {
  KvConnectorEvents events;
  std::lock_guard lock(mu_);
  collect_producer_events_locked(events);
  events.loads_finished = std::exchange(finished_, {});
  // Params of requests classified but never started (add_request failed, or aborted while waiting).
  const TimePoint stale = Clock::now() - config_.lease_duration - config_.transfer_timeout;
  for (auto it = classified_.begin(); it != classified_.end();) {
    it = it->second.second < stale ? classified_.erase(it) : std::next(it);
  }
  return events;
}

void DisaggKvConnector::wait_for_events(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  TimePoint wake = Clock::now() + timeout;
  for (const auto& [id, lease] : leases_) wake = std::min(wake, lease.expires);
  cv_.wait_until(lock, wake, [&] {
    return stopping_ || !finished_.empty() || !released_.empty() || notifications_pending_;
  });
}

bool DisaggKvConnector::has_pending_work() const {
  std::lock_guard lock(mu_);
  return !loads_.empty() || !leases_.empty() || !finished_.empty() || !released_.empty() || notifications_pending_;
}

KvConnectorMetrics DisaggKvConnector::metrics() const {
  std::lock_guard lock(mu_);
  KvConnectorMetrics m = metrics_;
  m.leases_active = leases_.size();
  const_cast<DisaggKvConnector*>(this)->metrics_.transfer_seconds.clear();  // drained by the reader
  return m;
}

void DisaggKvConnector::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, load] : loads_) load->cancel = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  if (server_) server_->stop();
  cuda_ipc_agent_.reset();
  tcp_agent_.reset();
}

// ---------------------------------------------------------------- consumer side

void DisaggKvConnector::worker_loop() {
  while (true) {
    std::shared_ptr<Load> load;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      load = queue_.front();
      queue_.pop_front();
    }
    if (load->release_only) {
      notify_release(load->params, nullptr);
      continue;
    }
    TimePoint t0 = Clock::now();
    Status st = stopping_ && !load->cancel ? AbortedError("kv connector is shutting down") : run_load(*load);
    uint64_t bytes = 0;
    if (st.ok()) bytes = load->local_block_ids.size() * ctx_.kv.layout.block_bytes();
    finish_load(load, st, seconds_between(t0, Clock::now()), bytes);
  }
}

void DisaggKvConnector::finish_load(const std::shared_ptr<Load>& load, Status status, double seconds, uint64_t bytes) {
  if (!status.ok()) {
    TLOG_WARN("kv-transfer: loading the KV of request {} from {}:{} failed: {}{}", load->request_id, load->params.remote_host,
              load->params.remote_port, status.to_string(),
              status.code() == StatusCode::kAborted ? ""
              : config_.failure_policy == KvLoadFailurePolicy::kRecompute ? " (recomputing locally)" : " (policy fail)");
  }
  {
    std::lock_guard lock(mu_);
    loads_.erase(load->request_id);
    if (status.ok()) {
      ++metrics_.transfers_ok;
      metrics_.bytes_moved += bytes;
      if (metrics_.transfer_seconds.size() < kMaxTransferSamples) metrics_.transfer_seconds.push_back(seconds);
    } else {
      ++metrics_.transfers_failed;
      if (status.code() != StatusCode::kAborted && config_.failure_policy == KvLoadFailurePolicy::kRecompute) ++metrics_.recomputes;
    }
    finished_.emplace_back(load->request_id, std::move(status));
  }
  cv_.notify_all();
}

Status DisaggKvConnector::run_load(Load& load) {
  const KvTransferParams& p = load.params;
  const TimePoint deadline = load.started + config_.transfer_timeout;
  auto check_cancel = [&]() -> Status {
    if (load.cancel) return AbortedError("request aborted during the KV transfer");
    if (Clock::now() >= deadline) return DeadlineExceededError("KV transfer timed out after {} ms", config_.transfer_timeout.count());
    return Status::Ok();
  };
  if (Status st = check_cancel(); !st.ok()) {
    notify_release(p, nullptr);
    return st;
  }
  if (load.local_block_ids.empty()) {  // everything was a local prefix-cache hit
    notify_release(p, nullptr);
    return Status::Ok();
  }
  auto peer_or = get_peer(p, deadline);
  if (!peer_or.ok()) return peer_or.status();
  PeerInfo peer = std::move(peer_or).value();
  if (!peer.compatible.ok()) {
    notify_release(p, &peer);
    return peer.compatible;
  }
  const size_t end_block = static_cast<size_t>(load.first_block) + load.local_block_ids.size();
  if (load.first_block < 0 || end_block > p.remote_block_ids.size()) {
    notify_release(p, &peer);
    return InternalError("load of blocks [{}, {}) but the producer sent {} block ids", load.first_block, end_block, p.remote_block_ids.size());
  }
  const uint64_t block_bytes = ctx_.kv.layout.block_bytes();
  const uint64_t local_base = reinterpret_cast<uint64_t>(ctx_.kv.base);
  std::vector<ReadDescriptor> descs;
  descs.reserve(load.local_block_ids.size());
  for (size_t i = 0; i < load.local_block_ids.size(); ++i) {
    int32_t local = load.local_block_ids[i];
    int32_t remote = p.remote_block_ids[load.first_block + i];
    if (local < 0 || local >= ctx_.kv.num_blocks) return InternalError("local block id {} out of range", local);
    if (remote >= peer.meta.num_blocks) {
      notify_release(p, &peer);
      return InvalidArgumentError("remote block id {} is beyond the producer's {} blocks", remote, peer.meta.num_blocks);
    }
    descs.push_back({local_base + static_cast<uint64_t>(local) * block_bytes,
                     peer.meta.pool_base + static_cast<uint64_t>(remote) * block_bytes, block_bytes});
  }
  descs = coalesce_descriptors(descs);

  // Claim: the producer confirms the lease is alive and holds it past our deadline.
  json claim = {{"engine_id", p.remote_engine_id}, {"request_id", p.remote_request_id},
                {"hold_ms", left(deadline).count()}};
  auto reply = pool_.request(p.remote_host, p.remote_port, disagg_frame::kClaim, claim.dump(), left(deadline));
  if (!reply.ok()) {
    if (reply.status().code() == StatusCode::kUnavailable) {
      std::lock_guard lock(peers_mu_);
      peers_.erase(peer_key(p));
    }
    return reply.status().with_context("claiming the producer's lease");
  }
  if (Status st = check_cancel(); !st.ok()) {
    notify_release(p, &peer);
    return st;
  }

  auto id = peer.agent->submit_read(peer.agent_peer, std::move(descs));
  if (!id.ok()) {
    notify_release(p, &peer);
    return id.status();
  }
  TransferStatus ts;
  Status outcome;
  while (true) {
    ts = peer.agent->wait(*id, std::min<std::chrono::milliseconds>(kWaitSlice, left(deadline)));
    if (ts.state == TransferState::kDone) break;
    if (ts.state == TransferState::kFailed) {
      outcome = ts.error;
      break;
    }
    if (Status st = check_cancel(); !st.ok()) {
      outcome = st;
      break;
    }
  }
  peer.agent->release(*id);  // after this nothing writes into our blocks
  if (outcome.code() == StatusCode::kUnavailable) {
    std::lock_guard lock(peers_mu_);
    peers_.erase(peer_key(p));
    return outcome;  // the producer is gone; its leases went with it
  }
  notify_release(p, &peer);
  return outcome;
}

void DisaggKvConnector::notify_release(const KvTransferParams& p, const PeerInfo* peer) {
  const TimePoint deadline = Clock::now() + kReleaseNotifyTimeout;
  std::string msg = encode_release_notification(p.remote_engine_id, p.remote_request_id);
  Status st = peer != nullptr && peer->agent != nullptr
                  ? peer->agent->notify(peer->agent_peer, msg)
                  : send_notification(pool_, p.remote_host, p.remote_port, msg, left(deadline));
  if (!st.ok()) {
    TLOG_DEBUG("kv-transfer: release notification for {} to {}:{} failed ({}); the lease will expire",
               p.remote_request_id, p.remote_host, p.remote_port, st.to_string());
  }
}

Result<DisaggKvConnector::PeerInfo> DisaggKvConnector::get_peer(const KvTransferParams& p, TimePoint deadline) {
  const std::string key = peer_key(p);
  std::shared_ptr<PeerSlot> slot;
  {
    std::lock_guard lock(peers_mu_);
    auto& s = peers_[key];
    if (!s) s = std::make_shared<PeerSlot>();
    slot = s;
  }
  std::unique_lock lock(slot->mu, std::defer_lock);
  if (!lock.try_lock_until(deadline)) return DeadlineExceededError("timed out waiting for the handshake with {}", key);
  if (slot->info && slot->info->meta.engine_id == p.remote_engine_id) return *slot->info;
  // First contact, or the producer at this address restarted: handshake (again).
  if (slot->info && slot->info->agent != nullptr) slot->info->agent->forget_peer(slot->info->agent_peer);
  slot->info.reset();
  TANDEM_ASSIGN_OR_RETURN(PeerInfo info, handshake(p.remote_host, p.remote_port, deadline));
  if (info.meta.engine_id != p.remote_engine_id) {
    slot->info = std::move(info);
    return NotFoundError("the producer at {} is engine {}, not {} (restarted?)", key, slot->info->meta.engine_id, p.remote_engine_id);
  }
  slot->info = info;
  return info;
}

Result<DisaggKvConnector::PeerInfo> DisaggKvConnector::handshake(const std::string& host, int port, TimePoint deadline) {
  auto reply = pool_.request(host, port, disagg_frame::kHandshake, local_meta_.to_json(), left(deadline));
  if (!reply.ok()) return reply.status().with_context(fmt::format("handshake with producer {}:{}", host, port));
  if (reply->type != disagg_frame::kHandshakeReply) return InternalError("unexpected handshake reply type {}", reply->type);
  TANDEM_ASSIGN_OR_RETURN(EngineMetadata meta, EngineMetadata::from_json(reply->payload));
  PeerInfo info;
  info.compatible = check_compatible(local_meta_, meta);
  if (!info.compatible.ok()) {
    TLOG_ERROR("kv-transfer: {}", info.compatible.message());
    info.meta = std::move(meta);
    return info;  // cached so that every request to this peer fails fast
  }
  bool same_host = meta.host_id == local_meta_.host_id;
  if (config_.transport != TransportKind::kTcp && cuda_ipc_agent_ && same_host && meta.agents.count("cuda_ipc")) {
    auto name = cuda_ipc_agent_->import_metadata(meta.agents["cuda_ipc"]);
    if (name.ok()) {
      info.agent = cuda_ipc_agent_.get();
      info.agent_peer = *name;
    } else if (config_.transport == TransportKind::kCudaIpc) {
      return name.status().with_context("transport cuda_ipc");
    } else {
      TLOG_WARN("kv-transfer: cuda_ipc to {}:{} failed ({}); falling back to tcp", host, port, name.status().to_string());
    }
  } else if (config_.transport == TransportKind::kCudaIpc) {
    return FailedPreconditionError("transport cuda_ipc: the producer {}:{} is {}", host, port,
                                   !same_host ? "on another host" : "not on a CUDA device with cuda_ipc");
  }
  if (info.agent == nullptr) {
    auto it = meta.agents.find("tcp");
    if (it == meta.agents.end()) return FailedPreconditionError("producer {}:{} offers no transport we share", host, port);
    TANDEM_ASSIGN_OR_RETURN(info.agent_peer, tcp_agent_->import_metadata(it->second));
    info.agent = tcp_agent_.get();
  }
  TLOG_INFO("kv-transfer: handshake with engine {} at {}:{} ok, transport {}", meta.engine_id, host, port, info.agent->kind());
  info.meta = std::move(meta);
  return info;
}

// ---------------------------------------------------------------- producer side (side-channel threads)

Status DisaggKvConnector::serve_handshake(const Frame& request, FrameConnection& conn) {
  // The asker's metadata: checked for protocol version (the asker checks compatibility).
  TANDEM_ASSIGN_OR_RETURN(EngineMetadata peer, EngineMetadata::from_json(request.payload));
  (void)peer;
  return conn.send_frame(disagg_frame::kHandshakeReply, local_meta_.to_json(), Clock::now() + config_.transfer_timeout);
}

Status DisaggKvConnector::serve_claim(const Frame& request, FrameConnection& conn) {
  json j = json::parse(request.payload, nullptr, false);
  if (!j.is_object() || !j.contains("engine_id") || !j["engine_id"].is_string() || !j.contains("request_id") ||
      !j["request_id"].is_string() || !j.contains("hold_ms") || !j["hold_ms"].is_number_integer()) {
    return InvalidArgumentError("malformed lease claim");
  }
  std::string engine_id = j["engine_id"].get<std::string>();
  std::string request_id = j["request_id"].get<std::string>();
  if (engine_id != ctx_.engine_id) return NotFoundError("this is engine {}, not {} (restarted?)", ctx_.engine_id, engine_id);
  auto hold = std::chrono::milliseconds(std::clamp<int64_t>(j["hold_ms"].get<int64_t>(), 0, config_.lease_duration.count()));
  size_t num_blocks = 0;
  {
    std::lock_guard lock(mu_);
    auto it = leases_.find(request_id);
    if (it == leases_.end()) return NotFoundError("no lease for request {} (expired or already released)", request_id);
    it->second.expires = std::max(it->second.expires, Clock::now() + hold + kClaimGrace);
    num_blocks = it->second.num_blocks;
  }
  return conn.send_frame(disagg_frame::kClaimReply, json{{"num_blocks", num_blocks}}.dump(),
                         Clock::now() + config_.transfer_timeout);
}

}  // namespace tandem
