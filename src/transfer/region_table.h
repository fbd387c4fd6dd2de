// RegionTable: the memory regions registered with an agent, with range lookup (is [addr, addr+len)
// inside one registered region, and which). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "common/status.h"
#include "transfer/transfer_agent.h"

namespace tandem {

class RegionTable {
 public:
  Status add(const MemoryRegion& region);
  Status remove(uint64_t addr);
  // The region containing the whole range, if any (overflow-safe).
  std::optional<MemoryRegion> find(uint64_t addr, uint64_t length) const;
  std::vector<MemoryRegion> all() const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, MemoryRegion> regions_;  // by start address
};

// A stable identity of this machine (boot id + host name): equal on two processes iff same host.
std::string local_host_id();

}  // namespace tandem
