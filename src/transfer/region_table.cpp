// RegionTable and local_host_id (see region_table.h).
#include "transfer/region_table.h"

#include <unistd.h>

#include <fstream>
#include <iterator>

namespace tandem {

Status RegionTable::add(const MemoryRegion& region) {
  if (region.addr == 0 || region.length == 0) return InvalidArgumentError("cannot register an empty memory region");
  if (region.addr + region.length < region.addr) return InvalidArgumentError("memory region wraps around the address space");
  std::lock_guard lock(mu_);
  auto next = regions_.lower_bound(region.addr);
  if (next != regions_.end() && next->first < region.addr + region.length) {
    return AlreadyExistsError("memory region 0x{:x}+{} overlaps a registered one", region.addr, region.length);
  }
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.length > region.addr) {
      return AlreadyExistsError("memory region 0x{:x}+{} overlaps a registered one", region.addr, region.length);
    }
  }
  regions_[region.addr] = region;
  return Status::Ok();
}

Status RegionTable::remove(uint64_t addr) {
  std::lock_guard lock(mu_);
  if (regions_.erase(addr) == 0) return NotFoundError("no memory region registered at 0x{:x}", addr);
  return Status::Ok();
}

std::optional<MemoryRegion> RegionTable::find(uint64_t addr, uint64_t length) const {
  if (addr + length < addr) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin()) return std::nullopt;
  --it;
  const MemoryRegion& r = it->second;
  if (addr >= r.addr && addr + length <= r.addr + r.length) return r;
  return std::nullopt;
}

std::vector<MemoryRegion> RegionTable::all() const {
  std::lock_guard lock(mu_);
  std::vector<MemoryRegion> out;
  for (const auto& [addr, r] : regions_) out.push_back(r);
  return out;
}

std::string local_host_id() {
  std::string boot_id;
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  if (f) std::getline(f, boot_id);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "/" + boot_id;
}

}  // namespace tandem
