// TcpAgent: the always-built transport. Reads travel over the side channel: the reader sends a
// kReadRequest listing (remote addr, length) runs; the owner's side-channel thread checks every run
// against its registered regions, answers kReadReply with the total, then streams the bytes straight
// from memory (device memory is staged through a pinned buffer on a CUDA stream of the agent's own).
// The reading side receives straight into the local region (or through a pinned buffer for device
// memory). Transfers run on the agent's worker threads; every socket wait has a deadline and watches
// the transfer's cancel flag.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transfer/connection_pool.h"
#include "transfer/cuda_staging.h"
#include "transfer/region_table.h"
#include "transfer/side_channel_server.h"
#include "transfer/transfer_agent.h"

namespace tandem {

struct TcpAgentOptions {
  std::string name;            // empty: generated from the side channel address
  std::string advertise_host;  // how peers reach our side channel; empty: the server's host
  int num_workers = 2;
  std::chrono::milliseconds io_timeout{30000};  // no progress for this long fails a transfer
  size_t staging_bytes = 8u << 20;              // pinned staging buffer size (device memory only)
  uint32_t max_descriptors_per_request = 65536;
};

class TcpAgent : public TransferAgent {
 public:
  // Registers the read handler on `server` (shared with other users of the side channel).
  static Result<std::unique_ptr<TcpAgent>> create(std::shared_ptr<SideChannelServer> server, TcpAgentOptions options);
  ~TcpAgent() override;

  std::string_view kind() const override { return "tcp"; }
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

  uint64_t bytes_served() const { return bytes_served_.load(); }

 private:
  struct Peer {
    std::string host;
    int port = 0;
  };
  struct Transfer {
    TransferId id = 0;
    Peer peer;
    std::vector<ReadDescriptor> descriptors;
    std::vector<MemoryRegion> local_regions;  // per descriptor
    std::atomic<bool> cancel{false};
    TransferStatus status;  // guarded by mu_
  };

  TcpAgent(std::shared_ptr<SideChannelServer> server, TcpAgentOptions options)
      : server_(std::move(server)), options_(std::move(options)) {}
  void worker_loop();
  Status run_transfer(Transfer& t);
  Status read_batch(FrameConnection& conn, Transfer& t, size_t begin, size_t end);
  Status serve_read(const Frame& request, FrameConnection& conn);
  Result<std::unique_ptr<CudaStager>> take_stager(int device_id);
  void return_stager(std::unique_ptr<CudaStager> stager);
  // Makes `stager` one for `device_id`, swapping a held stager of another device back into the pool.
  Status use_stager_for(int device_id, std::unique_ptr<CudaStager>& stager);

  std::shared_ptr<SideChannelServer> server_;
  TcpAgentOptions options_;
  RegionTable regions_;
  ConnectionPool pool_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  TransferId next_id_ = 1;
  std::map<std::string, Peer> peers_;
  std::map<TransferId, std::shared_ptr<Transfer>> transfers_;
  std::deque<std::shared_ptr<Transfer>> queue_;
  std::vector<std::thread> workers_;

  std::mutex stagers_mu_;
  std::vector<std::unique_ptr<CudaStager>> stagers_;
  std::atomic<uint64_t> bytes_served_{0};
};

}  // namespace tandem
