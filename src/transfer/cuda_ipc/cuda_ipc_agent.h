// CudaIpcAgent: same-host GPU-to-GPU reads. The owner exports cudaIpcGetMemHandle of each registered
// device region (the region must start at a cudaMalloc allocation, as the KV pool does); a peer opens
// the handles (cudaIpcOpenMemHandle) and copies with cudaMemcpyAsync (cudaMemcpyPeerAsync across
// devices) on its own stream, one copy per descriptor, completion tracked with a CUDA event. Two
// agents of one process use the raw pointers (CUDA cannot open its own IPC handles). Notifications go
// through the side channel. Only functional with TANDEM_HAVE_CUDA; otherwise create() fails.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "transfer/connection_pool.h"
#include "transfer/region_table.h"
#include "transfer/side_channel_server.h"
#include "transfer/transfer_agent.h"

namespace tandem {

struct CudaIpcAgentOptions {
  std::string name;            // empty: generated
  std::string advertise_host;  // for notifications; empty: the server's host
  int device_id = 0;           // the device whose stream issues the copies
  std::chrono::milliseconds io_timeout{30000};
};

// True when this build has CUDA and a device is visible.
bool cuda_ipc_available();

class CudaIpcAgent : public TransferAgent {
 public:
  static Result<std::unique_ptr<CudaIpcAgent>> create(std::shared_ptr<SideChannelServer> server, CudaIpcAgentOptions options);
  ~CudaIpcAgent() override;

  std::string_view kind() const override { return "cuda_ipc"; }
  const std::string& name() const override { return options_.name; }
  Status register_memory(const MemoryRegion& region) override;
  Status deregister_memory(uint64_t addr) override;
  Result<std::string> export_metadata() const override;
  Result<std::string> import_metadata(std::string_view blob) override;
  void forget_peer(const std::string& peer) override;
  Result<TransferId> submit_read(const std::string& peer, std::vector<ReadDescriptor> descriptors) override;
  TransferStatus status(TransferId id) override;
  TransferStatus wait(TransferId id, std::chrono::milliseconds timeout) override;
  void release(TransferId id) override;
  Status notify(const std::string& peer, std::string_view message) override;
  std::vector<std::string> take_notifications() override;

  struct RemoteRegion {
    uint64_t remote_addr = 0;  // the address in the peer's process
    uint64_t length = 0;
    int device_id = 0;
    void* mapped = nullptr;    // the same memory in our process
    bool opened = false;       // mapped through cudaIpcOpenMemHandle (close on forget)
  };
  struct Peer {
    std::string host;
    int port = 0;
    std::vector<RemoteRegion> regions;
  };
  struct Transfer {
    void* event = nullptr;  // cudaEvent_t
    uint64_t bytes = 0;
    TransferStatus status;
  };

 private:
  CudaIpcAgent(std::shared_ptr<SideChannelServer> server, CudaIpcAgentOptions options)
      : server_(std::move(server)), options_(std::move(options)) {}
  void close_peer(Peer& peer);
  TransferStatus refresh_locked(Transfer& t);

  std::shared_ptr<SideChannelServer> server_;
  CudaIpcAgentOptions options_;
  std::string host_id_;
  RegionTable regions_;
  ConnectionPool pool_;
  void* stream_ = nullptr;  // cudaStream_t

  std::mutex mu_;
  TransferId next_id_ = 1;
  std::map<std::string, Peer> peers_;
  std::map<TransferId, Transfer> transfers_;
};

}  // namespace tandem
