// TcpAgent: reads over the side channel (see tcp_agent.h).
#include "transfer/tcp/tcp_agent.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "common/logging.h"

namespace tandem {
namespace {

constexpr size_t kRecvChunk = 16u << 20;  // progress deadline granularity for host memory
constexpr int kMetadataVersion = 1;

}  // namespace

Result<std::unique_ptr<TcpAgent>> TcpAgent::create(std::shared_ptr<SideChannelServer> server, TcpAgentOptions options) {
  if (!server) return InvalidArgumentError("tcp agent needs a side channel server");
  if (options.num_workers < 1) return InvalidArgumentError("tcp agent needs at least one worker");
  if (options.advertise_host.empty()) options.advertise_host = server->host();
  if (options.name.empty()) {
    options.name = fmt::format("tcp@{}:{}#{}", options.advertise_host, server->port(),
                               std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::unique_ptr<TcpAgent> agent(new TcpAgent(std::move(server), std::move(options)));
  TcpAgent* self = agent.get();
  agent->server_->set_handler(frame_type::kReadRequest,
                              [self](const Frame& f, FrameConnection& c) { return self->serve_read(f, c); });
  for (int i = 0; i < agent->options_.num_workers; ++i) agent->workers_.emplace_back([self] { self->worker_loop(); });
  return agent;
}

TcpAgent::~TcpAgent() {
  server_->remove_handler(frame_type::kReadRequest);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, t] : transfers_) t->cancel = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

Status TcpAgent::register_memory(const MemoryRegion& region) {
  if (region.kind == MemoryKind::kCuda) {
    // Fail now rather than on the first transfer when this build cannot stage device memory.
    auto probe = CudaStager::create(std::min<size_t>(options_.staging_bytes, 4096), region.device_id);
    if (!probe.ok()) return probe.status().with_context("tcp agent: device memory region");
  }
  return regions_.add(region);
}

Status TcpAgent::deregister_memory(uint64_t addr) { return regions_.remove(addr); }

Result<std::string> TcpAgent::export_metadata() const {
  nlohmann::json j = {{"kind", "tcp"},
                      {"version", kMetadataVersion},
                      {"name", options_.name},
                      {"host", options_.advertise_host},
                      {"port", server_->port()}};
  return j.dump();
}

Result<std::string> TcpAgent::import_metadata(std::string_view blob) {
  nlohmann::json j = nlohmann::json::parse(blob, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgumentError("tcp agent metadata is not a JSON object");
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (str("kind") != "tcp") return FailedPreconditionError("peer metadata is for transport '{}', not tcp", str("kind"));
  auto ver = j.find("version");
  if (ver == j.end() || !ver->is_number_integer() || ver->get<int>() != kMetadataVersion) {
    return FailedPreconditionError("unsupported tcp agent metadata version");
  }
  auto port = j.find("port");
  Peer peer{str("host"), port != j.end() && port->is_number_integer() ? port->get<int>() : 0};
  std::string name = str("name");
  if (name.empty() || peer.host.empty() || peer.port <= 0 || peer.port > 65535) {
    return InvalidArgumentError("tcp agent metadata lacks a valid name, host or port");
  }
  std::lock_guard lock(mu_);
  peers_[name] = peer;
  return name;
}

void TcpAgent::forget_peer(const std::string& peer) {
  Peer p;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    p = it->second;
    peers_.erase(it);
  }
  pool_.forget(p.host, p.port);
}

Result<TransferId> TcpAgent::submit_read(const std::string& peer, std::vector<ReadDescriptor> descriptors) {
  auto t = std::make_shared<Transfer>();
  for (const ReadDescriptor& d : descriptors) {
    auto r = regions_.find(d.local_addr, d.length);
    if (!r) return InvalidArgumentError("read destination 0x{:x}+{} is not in a registered region", d.local_addr, d.length);
    t->local_regions.push_back(*r);
  }
  t->descriptors = std::move(descriptors);
  std::lock_guard lock(mu_);
  if (stopping_) return UnavailableError("tcp agent is shutting down");
  auto it = peers_.find(peer);
  if (it == peers_.end()) return NotFoundError("unknown peer '{}' (import its metadata first)", peer);
  t->peer = it->second;
  t->id = next_id_++;
  transfers_[t->id] = t;
  queue_.push_back(t);
  cv_.notify_all();
  return t->id;
}

TransferStatus TcpAgent::status(TransferId id) {
  std::lock_guard lock(mu_);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return {TransferState::kFailed, NotFoundError("unknown transfer {}", id), 0};
  return it->second->status;
}

TransferStatus TcpAgent::wait(TransferId id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return {TransferState::kFailed, NotFoundError("unknown transfer {}", id), 0};
  std::shared_ptr<Transfer> t = it->second;
  cv_.wait_for(lock, timeout, [&] { return t->status.state != TransferState::kPending; });
  return t->status;
}

void TcpAgent::release(TransferId id) {
  std::unique_lock lock(mu_);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::shared_ptr<Transfer> t = it->second;
  t->cancel = true;
  // A worker notices the cancel flag within one poll tick; queued transfers are failed by the worker
  // that dequeues them. Wait until no worker touches the local memory any more.
  auto queued = std::find(queue_.begin(), queue_.end(), t);
  if (queued != queue_.end()) {
    queue_.erase(queued);
    t->status = {TransferState::kFailed, AbortedError("transfer cancelled"), 0};
  }
  cv_.wait(lock, [&] { return t->status.state != TransferState::kPending; });
  transfers_.erase(id);
}

Status TcpAgent::notify(const std::string& peer, std::string_view message) {
  Peer p;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end()) return NotFoundError("unknown peer '{}'", peer);
    p = it->second;
  }
  return send_notification(pool_, p.host, p.port, message, options_.io_timeout);
}

std::vector<std::string> TcpAgent::take_notifications() { return server_->take_notifications(); }

void TcpAgent::worker_loop() {
  while (true) {
    std::shared_ptr<Transfer> t;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      t = queue_.front();
      queue_.pop_front();
    }
    Status st = t->cancel ? AbortedError("transfer cancelled") : run_transfer(*t);
    {
      std::lock_guard lock(mu_);
      if (st.ok()) {
        uint64_t bytes = 0;
        for (const auto& d : t->descriptors) bytes += d.length;
        t->status = {TransferState::kDone, Status::Ok(), bytes};
      } else {
        t->status = {TransferState::kFailed, st, 0};
      }
    }
    cv_.notify_all();
  }
}

Status TcpAgent::run_transfer(Transfer& t) {
  TANDEM_ASSIGN_OR_RETURN(auto conn, pool_.acquire(t.peer.host, t.peer.port, options_.io_timeout));
  const size_t n = t.descriptors.size();
  for (size_t begin = 0; begin < n; begin += options_.max_descriptors_per_request) {
    size_t end = std::min(n, begin + options_.max_descriptors_per_request);
    Status st = read_batch(*conn, t, begin, end);
    if (!st.ok()) return st;  // the connection is dropped (possibly mid-stream)
  }
  pool_.release(t.peer.host, t.peer.port, std::move(conn));
  return Status::Ok();
}

Status TcpAgent::read_batch(FrameConnection& conn, Transfer& t, size_t begin, size_t end) {
  WireWriter w;
  w.put_u32(static_cast<uint32_t>(end - begin));
  uint64_t total = 0;
  for (size_t i = begin; i < end; ++i) {
    w.put_u64(t.descriptors[i].remote_addr);
    w.put_u64(t.descriptors[i].length);
    total += t.descriptors[i].length;
  }
  TANDEM_RETURN_IF_ERROR(conn.send_frame(frame_type::kReadRequest, w.data(), Clock::now() + options_.io_timeout));
  TANDEM_ASSIGN_OR_RETURN(Frame reply, conn.recv_frame(Clock::now() + options_.io_timeout, kDefaultMaxFramePayload, &t.cancel));
  if (reply.type == frame_type::kError) return decode_error_payload(reply.payload);
  if (reply.type != frame_type::kReadReply) {
    conn.mark_broken();
    return InternalError("unexpected reply type {} to a read request", reply.type);
  }
  WireReader r(reply.payload);
  uint64_t announced = 0;
  TANDEM_RETURN_IF_ERROR(r.read_u64(&announced, "read reply total"));
  if (announced != total) {
    conn.mark_broken();
    return InternalError("peer announced {} bytes for a read of {}", announced, total);
  }
  std::unique_ptr<CudaStager> stager;
  Status st;
  for (size_t i = begin; i < end && st.ok(); ++i) {
    const ReadDescriptor& d = t.descriptors[i];
    const MemoryRegion& local = t.local_regions[i];
    char* dst = reinterpret_cast<char*>(d.local_addr);
    if (local.kind == MemoryKind::kHost) {
      for (uint64_t off = 0; off < d.length && st.ok(); off += kRecvChunk) {
        size_t len = static_cast<size_t>(std::min<uint64_t>(kRecvChunk, d.length - off));
        st = conn.recv_bytes(dst + off, len, Clock::now() + options_.io_timeout, &t.cancel);
      }
      continue;
    }
    st = use_stager_for(local.device_id, stager);
    if (!st.ok()) break;
    for (uint64_t off = 0; off < d.length && st.ok(); off += stager->size()) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(stager->size(), d.length - off));
      st = conn.recv_bytes(stager->buffer(), len, Clock::now() + options_.io_timeout, &t.cancel);
      if (st.ok()) st = stager->host_to_device(dst + off, len);
    }
  }
  if (stager) return_stager(std::move(stager));
  if (!st.ok()) conn.mark_broken();
  return st;
}

Status TcpAgent::serve_read(const Frame& request, FrameConnection& conn) {
  WireReader r(request.payload);
  uint32_t count = 0;
  TANDEM_RETURN_IF_ERROR(r.read_u32(&count, "descriptor count"));
  if (count > options_.max_descriptors_per_request) {
    return InvalidArgumentError("read request has {} descriptors, over the limit of {}", count, options_.max_descriptors_per_request);
  }
  if (r.remaining() != static_cast<size_t>(count) * 16) {
    return InvalidArgumentError("truncated read request: {} bytes for {} descriptors", r.remaining(), count);
  }
  std::vector<std::pair<ReadDescriptor, MemoryRegion>> runs;
  runs.reserve(count);
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    ReadDescriptor d;
    TANDEM_RETURN_IF_ERROR(r.read_u64(&d.remote_addr, "remote address"));
    TANDEM_RETURN_IF_ERROR(r.read_u64(&d.length, "length"));
    auto region = regions_.find(d.remote_addr, d.length);
    if (!region) return InvalidArgumentError("read of 0x{:x}+{} is outside the registered memory", d.remote_addr, d.length);
    total += d.length;
    runs.emplace_back(d, *region);
  }
  WireWriter w;
  w.put_u64(total);
  TANDEM_RETURN_IF_ERROR(conn.send_frame(frame_type::kReadReply, w.data(), Clock::now() + options_.io_timeout));
  std::unique_ptr<CudaStager> stager;
  Status st;
  for (auto& [d, region] : runs) {
    const char* src = reinterpret_cast<const char*>(d.remote_addr);
    if (region.kind == MemoryKind::kHost) {
      for (uint64_t off = 0; off < d.length && st.ok(); off += kRecvChunk) {
        size_t len = static_cast<size_t>(std::min<uint64_t>(kRecvChunk, d.length - off));
        st = conn.send_bytes(src + off, len, Clock::now() + options_.io_timeout);
      }
    } else {
      st = use_stager_for(region.device_id, stager);
      if (!st.ok()) break;
      for (uint64_t off = 0; off < d.length && st.ok(); off += stager->size()) {
        size_t len = static_cast<size_t>(std::min<uint64_t>(stager->size(), d.length - off));
        st = stager->device_to_host(src + off, len);
        if (st.ok()) st = conn.send_bytes(stager->buffer(), len, Clock::now() + options_.io_timeout);
      }
    }
    if (!st.ok()) break;
    bytes_served_ += d.length;
  }
  if (stager) return_stager(std::move(stager));
  if (!st.ok()) {
    // The reply is half sent: the peer sees the connection drop and fails its transfer.
    TLOG_WARN("tcp agent: serving a read to {} failed: {}", conn.peer_name(), st.to_string());
    conn.shutdown();
  }
  return st;
}

Result<std::unique_ptr<CudaStager>> TcpAgent::take_stager(int device_id) {
  {
    std::lock_guard lock(stagers_mu_);
    for (auto it = stagers_.begin(); it != stagers_.end(); ++it) {
      if ((*it)->device_id() == device_id) {
        auto s = std::move(*it);
        stagers_.erase(it);
        return s;
      }
    }
  }
  return CudaStager::create(options_.staging_bytes, device_id);
}

Status TcpAgent::use_stager_for(int device_id, std::unique_ptr<CudaStager>& stager) {
  if (stager && stager->device_id() == device_id) return Status::Ok();
  if (stager) return_stager(std::move(stager));
  TANDEM_ASSIGN_OR_RETURN(stager, take_stager(device_id));
  return Status::Ok();
}

void TcpAgent::return_stager(std::unique_ptr<CudaStager> stager) {
  std::lock_guard lock(stagers_mu_);
  if (stagers_.size() < 8) stagers_.push_back(std::move(stager));
}

}  // namespace tandem
