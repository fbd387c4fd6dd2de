// BlockManager: see block_manager.h.
#include "kv/block_manager.h"

#include <algorithm>

#include "common/check.h"

namespace tandem {

BlockManager::BlockManager(int32_t num_blocks, int block_size, bool enable_prefix_caching)
    : block_size_(block_size),
      enable_prefix_caching_(enable_prefix_caching),
      allocator_(num_blocks),
      cache_(num_blocks, block_size) {
  TANDEM_CHECK(block_size > 0);
}

int BlockManager::acquire_cached_prefix(BlockTable& table, std::span<const int32_t> tokens, int max_blocks) {
  TANDEM_CHECK(table.empty(), "acquire_cached_prefix on a non-empty table");
  if (!enable_prefix_caching_) return 0;
  int limit = std::min<int>(max_blocks, static_cast<int>(tokens.size() / block_size_));
  uint64_t parent = 0;
  int taken = 0;
  for (int i = 0; i < limit; ++i) {
    auto block_tokens = tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    uint64_t h = PrefixCache::hash_block(parent, block_tokens);
    auto hit = cache_.lookup(h, block_tokens);
    if (!hit) break;
    allocator_.incref(*hit);
    table.blocks.push_back(*hit);
    table.hashes.push_back(h);
    parent = h;
    ++taken;
  }
  return taken;
}

int32_t BlockManager::blocks_needed(const BlockTable& table, int64_t num_tokens) const {
  int32_t need = blocks_for_tokens(num_tokens) - static_cast<int32_t>(table.blocks.size());
  return need > 0 ? need : 0;
}

bool BlockManager::allocate_slots(BlockTable& table, int64_t num_tokens) {
  int32_t need = blocks_needed(table, num_tokens);
  if (need > allocator_.num_free()) return false;
  for (int32_t i = 0; i < need; ++i) {
    int32_t b = allocator_.allocate();
    TANDEM_CHECK(b >= 0);
    cache_.evict(b);  // reusing a cached block: its old contents are gone
    table.blocks.push_back(b);
  }
  return true;
}

void BlockManager::commit_full_blocks(BlockTable& table, std::span<const int32_t> tokens, int64_t num_computed_tokens) {
  if (!enable_prefix_caching_) return;
  int64_t full = std::min<int64_t>(num_computed_tokens / block_size_, static_cast<int64_t>(table.blocks.size()));
  for (int64_t i = static_cast<int64_t>(table.hashes.size()); i < full; ++i) {
    uint64_t parent = i == 0 ? 0 : table.hashes[i - 1];
    auto block_tokens = tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    uint64_t h = PrefixCache::hash_block(parent, block_tokens);
    // A duplicate (same prefix computed by two sequences at once) stays uncached; the first copy wins.
    cache_.insert(h, table.blocks[i], block_tokens);
    table.hashes.push_back(h);
  }
}

void BlockManager::free(BlockTable& table) {
  for (auto it = table.blocks.rbegin(); it != table.blocks.rend(); ++it) {
    allocator_.decref(*it, cache_.is_cached(*it));
  }
  table.blocks.clear();
  table.hashes.clear();
}

}  // namespace tandem
