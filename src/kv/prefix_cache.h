// PrefixCache: maps chained hashes of full KV blocks to the blocks holding them, so requests sharing a
// prompt prefix reuse its KV.
//
// A block's hash is XXH64 (seed 0) over [parent hash (8 bytes LE) | the block's token ids (4 bytes LE
// each)], parent = 0 for the first block. The inputs are fixed (no per-process seed), so every engine,
// producer or consumer, computes the same keys for the same tokens. Each entry also keeps its token ids
// and a lookup compares them, so a 64-bit collision can never serve wrong KV.
// Eviction order is the BlockAllocator's free list (LRU); this class only forgets a block when told.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace tandem {

class PrefixCache {
 public:
  PrefixCache(int32_t num_blocks, int block_size);

  static uint64_t hash_block(uint64_t parent_hash, std::span<const int32_t> tokens);

  // The block caching `tokens` under `hash`, if any.
  std::optional<int32_t> lookup(uint64_t hash, std::span<const int32_t> tokens) const;
  // Registers `block` as holding `tokens` under `hash`. Returns false (and registers nothing) when the
  // hash is already cached by another block or `block` is already registered.
  bool insert(uint64_t hash, int32_t block, std::span<const int32_t> tokens);
  // Forgets `block` (it is being reused for other data). No-op if it is not registered.
  void evict(int32_t block);
  bool is_cached(int32_t block) const { return has_hash_[block] != 0; }

 private:
  int block_size_;
  std::unordered_map<uint64_t, int32_t> map_;
  std::vector<uint64_t> block_hash_;
  std::vector<uint8_t> has_hash_;
  std::vector<int32_t> block_tokens_;  // [num_blocks * block_size]
};

}  // namespace tandem
