// KvPool: see kv_pool.h.
#include "kv/kv_pool.h"

#include <algorithm>
#include <vector>

namespace tandem {

Result<std::unique_ptr<KvPool>> KvPool::create(Backend& backend, const KvLayout& layout, int64_t num_blocks) {
  if (num_blocks <= 0) return InvalidArgumentError("KV pool needs at least one block, got {}", num_blocks);
  if (layout.num_layers <= 0 || layout.num_kv_heads <= 0 || layout.head_dim <= 0 || layout.block_size <= 0) {
    return InvalidArgumentError("invalid KV layout: {} layers, {} kv heads, head_dim {}, block_size {}",
                                layout.num_layers, layout.num_kv_heads, layout.head_dim, layout.block_size);
  }
  size_t bytes = static_cast<size_t>(num_blocks) * layout.block_bytes();
  std::unique_ptr<KvPool> pool(new KvPool());
  TANDEM_ASSIGN_OR_RETURN(pool->buffer_, backend.allocate(bytes));
  // Zero the pool in bounded host chunks (the backend has no memset op).
  const size_t chunk = std::min<size_t>(bytes, 64ull << 20);
  std::vector<uint8_t> zeros(chunk, 0);
  for (size_t off = 0; off < bytes; off += chunk) {
    backend.copy_to_device(static_cast<uint8_t*>(pool->buffer_.data()) + off, zeros.data(), std::min(chunk, bytes - off));
  }
  backend.synchronize();
  pool->view_ = KvCacheView{pool->buffer_.data(), num_blocks, layout, backend.device()};
  return pool;
}

}  // namespace tandem
