// TransferAgent: moves bytes between registered memory regions of two processes (or two agents of one
// process), modelled on NIXL's and TensorRT-LLM's agent APIs. It knows nothing of KV caches: the caller
// registers memory, exchanges metadata blobs with the peer out of band (export_metadata on one side,
// import_metadata on the other), submits batches of READs (local addr <- remote addr, length), polls or
// waits with a timeout, and exchanges short notifications.
//
// Implementations: tcp (tcp/tcp_agent.h, always built) and cuda_ipc (cuda_ipc/cuda_ipc_agent.h, with
// CUDA). A UCX agent would implement the same interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

enum class MemoryKind : uint8_t { kHost, kCuda };

struct MemoryRegion {
  uint64_t addr = 0;
  uint64_t length = 0;
  MemoryKind kind = MemoryKind::kHost;
  int device_id = 0;  // CUDA device when kind == kCuda
};

// One contiguous read: `length` bytes from the peer's `remote_addr` into our `local_addr`. Both ranges
// must lie inside registered regions (ours and the peer's).
struct ReadDescriptor {
  uint64_t local_addr = 0;
  uint64_t remote_addr = 0;
  uint64_t length = 0;
};

using TransferId = uint64_t;

enum class TransferState { kPending, kDone, kFailed };

struct TransferStatus {
  TransferState state = TransferState::kPending;
  Status error;  // set when kFailed
  uint64_t bytes = 0;
};

class TransferAgent {
 public:
  virtual ~TransferAgent() = default;

  virtual std::string_view kind() const = 0;  // "tcp", "cuda_ipc"
  virtual const std::string& name() const = 0;  // unique per agent instance

  virtual Status register_memory(const MemoryRegion& region) = 0;
  virtual Status deregister_memory(uint64_t addr) = 0;

  // A blob describing this agent (address, registered regions...) for peers to import.
  virtual Result<std::string> export_metadata() const = 0;
  // Imports a peer's blob; returns the peer's name used in submit_read/notify. Importing the same peer
  // again refreshes it. Fails (kFailedPrecondition) when the peer cannot be reached by this transport
  // (e.g. cuda_ipc on another host).
  virtual Result<std::string> import_metadata(std::string_view blob) = 0;
  virtual void forget_peer(const std::string& peer) = 0;

  // Starts reading the descriptors from `peer`. Non-blocking.
  virtual Result<TransferId> submit_read(const std::string& peer, std::vector<ReadDescriptor> descriptors) = 0;
  virtual TransferStatus status(TransferId id) = 0;
  // Waits up to `timeout` for the transfer to leave kPending; returns its status either way.
  virtual TransferStatus wait(TransferId id, std::chrono::milliseconds timeout) = 0;
  // Forgets the transfer, cancelling it if still pending. When release() returns, the agent no longer
  // writes into the transfer's local memory (so the caller may reuse it).
  virtual void release(TransferId id) = 0;

  // Short messages to a peer (e.g. "request X done"), delivered in order per sender.
  virtual Status notify(const std::string& peer, std::string_view message) = 0;
  virtual std::vector<std::string> take_notifications() = 0;
};

// Coalesces descriptors whose local and remote ranges both continue the previous one into a single
// descriptor (order preserved).
std::vector<ReadDescriptor> coalesce_descriptors(const std::vector<ReadDescriptor>& descriptors);

}  // namespace tandem
