// Helpers shared by transfer agents (see transfer_agent.h).
#include "transfer/transfer_agent.h"

namespace tandem {

std::vector<ReadDescriptor> coalesce_descriptors(const std::vector<ReadDescriptor>& descriptors) {
  std::vector<ReadDescriptor> out;
  out.reserve(descriptors.size());
  for (const ReadDescriptor& d : descriptors) {
    if (d.length == 0) continue;
    if (!out.empty()) {
      ReadDescriptor& last = out.back();
      if (last.local_addr + last.length == d.local_addr && last.remote_addr + last.length == d.remote_addr) {
        last.length += d.length;
        continue;
      }
    }
    out.push_back(d);
  }
  return out;
}

}  // namespace tandem
