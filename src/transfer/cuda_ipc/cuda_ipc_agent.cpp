// CudaIpcAgent (see cuda_ipc_agent.h). The CUDA part compiles only with TANDEM_HAVE_CUDA.
#include "transfer/cuda_ipc/cuda_ipc_agent.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#ifdef TANDEM_HAVE_CUDA
#include <cuda_runtime.h>

#include "transfer/cuda_ipc/block_copy_kernel.h"
#endif

namespace tandem {

#ifndef TANDEM_HAVE_CUDA

bool cuda_ipc_available() { return false; }
Result<std::unique_ptr<CudaIpcAgent>> CudaIpcAgent::create(std::shared_ptr<SideChannelServer>, CudaIpcAgentOptions) {
  return UnimplementedError("the cuda_ipc transport needs a build with CUDA");
}
CudaIpcAgent::~CudaIpcAgent() = default;
Status CudaIpcAgent::register_memory(const MemoryRegion&) { return UnimplementedError("no CUDA"); }
Status CudaIpcAgent::deregister_memory(uint64_t) { return UnimplementedError("no CUDA"); }
Result<std::string> CudaIpcAgent::export_metadata() const { return UnimplementedError("no CUDA"); }
Result<std::string> CudaIpcAgent::import_metadata(std::string_view) { return UnimplementedError("no CUDA"); }
void CudaIpcAgent::forget_peer(const std::string&) {}
Result<TransferId> CudaIpcAgent::submit_read(const std::string&, std::vector<ReadDescriptor>) {
  return UnimplementedError("no CUDA");
}
TransferStatus CudaIpcAgent::status(TransferId) { return {TransferState::kFailed, UnimplementedError("no CUDA"), 0}; }
TransferStatus CudaIpcAgent::wait(TransferId, std::chrono::milliseconds) {
  return {TransferState::kFailed, UnimplementedError("no CUDA"), 0};
}
void CudaIpcAgent::release(TransferId) {}
Status CudaIpcAgent::notify(const std::string&, std::string_view) { return UnimplementedError("no CUDA"); }
std::vector<std::string> CudaIpcAgent::take_notifications() { return {}; }
void CudaIpcAgent::close_peer(Peer&) {}
TransferStatus CudaIpcAgent::refresh_locked(Transfer& t) { return t.status; }

#else

namespace {

Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  return InternalError("{}: {}", what, cudaGetErrorString(e));
}

std::string to_hex(const void* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

bool from_hex(const std::string& s, void* out, size_t n) {
  if (s.size() != 2 * n) return false;
  auto* p = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < n; ++i) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    p[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

constexpr int kMetadataVersion = 1;

}  // namespace

bool cuda_ipc_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

Result<std::unique_ptr<CudaIpcAgent>> CudaIpcAgent::create(std::shared_ptr<SideChannelServer> server,
                                                           CudaIpcAgentOptions options) {
  if (!server) return InvalidArgumentError("cuda_ipc agent needs a side channel server");
  if (!cuda_ipc_available()) return UnavailableError("cuda_ipc: no CUDA device");
  if (options.advertise_host.empty()) options.advertise_host = server->host();
  if (options.name.empty()) {
    options.name = fmt::format("cuda_ipc@{}:{}#{}", options.advertise_host, server->port(),
                               std::chrono::steady_clock::now().time_since_epoch().count());
  }
  std::unique_ptr<CudaIpcAgent> a(new CudaIpcAgent(std::move(server), std::move(options)));
  a->host_id_ = local_host_id();
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(a->options_.device_id), "cudaSetDevice"));
  cudaStream_t stream = nullptr;
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  a->stream_ = stream;
  return a;
}

CudaIpcAgent::~CudaIpcAgent() {
  std::lock_guard lock(mu_);
  cudaSetDevice(options_.device_id);
  for (auto& [id, t] : transfers_) {
    if (t.event != nullptr) {
      cudaEventSynchronize(static_cast<cudaEvent_t>(t.event));
      cudaEventDestroy(static_cast<cudaEvent_t>(t.event));
    }
  }
  transfers_.clear();
  for (auto& [name, p] : peers_) close_peer(p);
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

Status CudaIpcAgent::register_memory(const MemoryRegion& region) {
  if (region.kind != MemoryKind::kCuda) return InvalidArgumentError("cuda_ipc agent registers device memory only");
  return regions_.add(region);
}

Status CudaIpcAgent::deregister_memory(uint64_t addr) { return regions_.remove(addr); }

Result<std::string> CudaIpcAgent::export_metadata() const {
  nlohmann::json regions = nlohmann::json::array();
  for (const MemoryRegion& r : regions_.all()) {
    cudaIpcMemHandle_t handle;
    TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(r.device_id), "cudaSetDevice"));
    TANDEM_RETURN_IF_ERROR(cuda_status(cudaIpcGetMemHandle(&handle, reinterpret_cast<void*>(r.addr)), "cudaIpcGetMemHandle"));
    regions.push_back({{"addr", r.addr}, {"length", r.length}, {"device_id", r.device_id},
                       {"handle", to_hex(&handle, sizeof(handle))}});
  }
  nlohmann::json j = {{"kind", "cuda_ipc"}, {"version", kMetadataVersion}, {"name", options_.name},
                      {"host", options_.advertise_host}, {"port", server_->port()}, {"host_id", host_id_},
                      {"pid", static_cast<int64_t>(getpid())}, {"regions", regions}};
  return j.dump();
}

Result<std::string> CudaIpcAgent::import_metadata(std::string_view blob) {
  nlohmann::json j = nlohmann::json::parse(blob, nullptr, false);
  if (!j.is_object() || j.value("kind", "") != "cuda_ipc") return InvalidArgumentError("not cuda_ipc agent metadata");
  if (j.value("version", 0) != kMetadataVersion) return FailedPreconditionError("unsupported cuda_ipc metadata version");
  if (j.value("host_id", "") != host_id_) return FailedPreconditionError("cuda_ipc peer is on another host");
  std::string name = j.value("name", "");
  if (name.empty() || !j.contains("regions") || !j["regions"].is_array()) return InvalidArgumentError("cuda_ipc metadata lacks name or regions");
  bool same_process = j.value("pid", int64_t{-1}) == static_cast<int64_t>(getpid());
  Peer peer;
  peer.host = j.value("host", "");
  peer.port = j.value("port", 0);
  for (const auto& r : j["regions"]) {
    RemoteRegion rr;
    rr.remote_addr = r.value("addr", uint64_t{0});
    rr.length = r.value("length", uint64_t{0});
    rr.device_id = r.value("device_id", 0);
    if (same_process) {
      rr.mapped = reinterpret_cast<void*>(rr.remote_addr);
    } else {
      cudaIpcMemHandle_t handle;
      if (!from_hex(r.value("handle", ""), &handle, sizeof(handle))) {
        close_peer(peer);
        return InvalidArgumentError("cuda_ipc metadata has a malformed memory handle");
      }
      Status st = cuda_status(cudaSetDevice(options_.device_id), "cudaSetDevice");
      if (st.ok()) st = cuda_status(cudaIpcOpenMemHandle(&rr.mapped, handle, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
      if (!st.ok()) {
        close_peer(peer);
        return FailedPreconditionError("cuda_ipc: {}", st.message());
      }
      rr.opened = true;
    }
    peer.regions.push_back(rr);
  }
  std::lock_guard lock(mu_);
  auto it = peers_.find(name);
  if (it != peers_.end()) close_peer(it->second);
  peers_[name] = std::move(peer);
  return name;
}

void CudaIpcAgent::close_peer(Peer& peer) {
  for (auto& r : peer.regions) {
    if (r.opened && r.mapped != nullptr) cudaIpcCloseMemHandle(r.mapped);
    r.mapped = nullptr;
    r.opened = false;
  }
}

void CudaIpcAgent::forget_peer(const std::string& peer) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  // Copies from the peer's memory may still be queued on our stream: let them finish first.
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  pool_.forget(it->second.host, it->second.port);
  close_peer(it->second);
  peers_.erase(it);
}

Result<TransferId> CudaIpcAgent::submit_read(const std::string& peer_name, std::vector<ReadDescriptor> descriptors) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(peer_name);
  if (it == peers_.end()) return NotFoundError("unknown peer '{}'", peer_name);
  const Peer& peer = it->second;
  // Runs that continue the previous descriptor on both sides (consecutive KV blocks) become one copy.
  descriptors = coalesce_descriptors(descriptors);
  struct Copy {
    void* dst;
    int dst_dev;
    const void* src;
    int src_dev;
    size_t len;
  };
  std::vector<Copy> copies;
  copies.reserve(descriptors.size());
  uint64_t bytes = 0;
  for (const ReadDescriptor& d : descriptors) {
    auto local = regions_.find(d.local_addr, d.length);
    if (!local) return InvalidArgumentError("read destination 0x{:x}+{} is not in a registered region", d.local_addr, d.length);
    const RemoteRegion* remote = nullptr;
    for (const auto& r : peer.regions) {
      if (d.remote_addr >= r.remote_addr && d.remote_addr + d.length <= r.remote_addr + r.length &&
          d.remote_addr + d.length >= d.remote_addr) {
        remote = &r;
        break;
      }
    }
    if (!remote) return InvalidArgumentError("read source 0x{:x}+{} is outside the peer's registered memory", d.remote_addr, d.length);
    const char* src = static_cast<const char*>(remote->mapped) + (d.remote_addr - remote->remote_addr);
    copies.push_back({reinterpret_cast<void*>(d.local_addr), local->device_id, src, remote->device_id, d.length});
    bytes += d.length;
  }
  auto stream = static_cast<cudaStream_t>(stream_);
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaSetDevice(options_.device_id), "cudaSetDevice"));
  // Same-device runs (both pools on this GPU, the IPC mapping opened in this agent's context) go out as
  // one batched copy kernel; runs across devices are copied by the driver (cudaMemcpyDefault routes them
  // over the peer link). (On the H100, 469 scattered 2 MiB blocks took 2.01 ms as a loop of
  // cudaMemcpyAsync and 2.84 ms through cudaMemcpyBatchAsync.)
  std::vector<DeviceCopy> same_device;
  cudaError_t err = cudaSuccess;
  for (const Copy& c : copies) {
    if (c.dst_dev == c.src_dev) {
      same_device.push_back({c.src, c.dst, c.len});
    } else if (err == cudaSuccess) {
      err = cudaMemcpyAsync(c.dst, c.src, c.len, cudaMemcpyDefault, stream);
    }
  }
  if (err == cudaSuccess && !same_device.empty()) {
    err = launch_block_copies(same_device.data(), same_device.size(), stream);
  }
  if (err != cudaSuccess) {
    cudaStreamSynchronize(stream);  // nothing of this transfer may still write after we report failure
    return cuda_status(err, "cuda_ipc copy");
  }
  cudaEvent_t event = nullptr;
  TANDEM_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate"));
  Status rec = cuda_status(cudaEventRecord(event, stream), "cudaEventRecord");
  if (!rec.ok()) {
    cudaStreamSynchronize(stream);
    cudaEventDestroy(event);
    return rec;
  }
  TransferId id = next_id_++;
  transfers_[id] = Transfer{event, bytes, {TransferState::kPending, Status::Ok(), 0}};
  return id;
}

TransferStatus CudaIpcAgent::refresh_locked(Transfer& t) {
  if (t.status.state == TransferState::kPending) {
    cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(t.event));
    if (e == cudaSuccess) {
      t.status = {TransferState::kDone, Status::Ok(), t.bytes};
    } else if (e != cudaErrorNotReady) {
      t.status = {TransferState::kFailed, cuda_status(e, "cuda_ipc transfer"), 0};
    }
  }
  return t.status;
}

TransferStatus CudaIpcAgent::status(TransferId id) {
  std::lock_guard lock(mu_);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return {TransferState::kFailed, NotFoundError("unknown transfer {}", id), 0};
  return refresh_locked(it->second);
}

TransferStatus CudaIpcAgent::wait(TransferId id, std::chrono::milliseconds timeout) {
  TimePoint deadline = Clock::now() + timeout;
  while (true) {
    TransferStatus st = status(id);
    if (st.state != TransferState::kPending || Clock::now() >= deadline) return st;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void CudaIpcAgent::release(TransferId id) {
  std::lock_guard lock(mu_);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  // Copies already queued cannot be cancelled; wait for them so nothing writes after we return.
  cudaEventSynchronize(static_cast<cudaEvent_t>(it->second.event));
  cudaEventDestroy(static_cast<cudaEvent_t>(it->second.event));
  transfers_.erase(it);
}

Status CudaIpcAgent::notify(const std::string& peer_name, std::string_view message) {
  std::string host;
  int port = 0;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(peer_name);
    if (it == peers_.end()) return NotFoundError("unknown peer '{}'", peer_name);
    host = it->second.host;
    port = it->second.port;
  }
  return send_notification(pool_, host, port, message, options_.io_timeout);
}

std::vector<std::string> CudaIpcAgent::take_notifications() { return server_->take_notifications(); }

#endif

}  // namespace tandem
