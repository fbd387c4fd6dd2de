// BlockManager: the KV blocks of every sequence (nano-vllm's BlockManager, token-count based as in
// vLLM v1). A sequence's blocks live in its BlockTable; the manager allocates blocks as the sequence
// grows, reuses cached full blocks of a shared prefix (PrefixCache), registers blocks in the cache once
// they are full and computed, and frees them. Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/block_allocator.h"
#include "kv/prefix_cache.h"

namespace tandem {

struct BlockTable {
  std::vector<int32_t> blocks;
  // Chained hashes of the leading full blocks that have been committed (hashes.size() <= blocks.size()).
  std::vector<uint64_t> hashes;
  bool empty() const { return blocks.empty(); }
};

class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int block_size, bool enable_prefix_caching);

  int block_size() const { return block_size_; }
  int32_t num_total_blocks() const { return allocator_.num_blocks(); }
  // Free blocks, including unreferenced blocks still holding cached data (they are evictable).
  int32_t num_free_blocks() const { return allocator_.num_free(); }
  int32_t num_used_blocks() const { return num_total_blocks() - num_free_blocks(); }
  int32_t blocks_for_tokens(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + block_size_ - 1) / block_size_);
  }
  const BlockAllocator& allocator() const { return allocator_; }

  // On an empty table: takes the longest run of cached leading full blocks of `tokens`, at most
  // `max_blocks` of them, adding a reference to each. Returns the number of blocks taken.
  int acquire_cached_prefix(BlockTable& table, std::span<const int32_t> tokens, int max_blocks);
  // How many more blocks `table` needs to hold `num_tokens` tokens.
  int32_t blocks_needed(const BlockTable& table, int64_t num_tokens) const;
  // Grows `table` to hold `num_tokens` tokens. All or nothing: false (table unchanged) when there are
  // not enough free blocks. Evicts the least recently used cached blocks it reuses.
  bool allocate_slots(BlockTable& table, int64_t num_tokens);
  // Registers the table's blocks that are full of computed tokens ([0, num_computed_tokens) of
  // `tokens`) in the prefix cache. Call after every step that computed tokens.
  void commit_full_blocks(BlockTable& table, std::span<const int32_t> tokens, int64_t num_computed_tokens);
  // Drops the table's references (in reverse, so a sequence's tail is evicted before its head).
  void free(BlockTable& table);

 private:
  int block_size_;
  bool enable_prefix_caching_;
  BlockAllocator allocator_;
  PrefixCache cache_;
};

}  // namespace tandem
