// PrefixCache: see prefix_cache.h.
#include "kv/prefix_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "common/check.h"

namespace tandem {

PrefixCache::PrefixCache(int32_t num_blocks, int block_size)
    : block_size_(block_size),
      block_hash_(num_blocks, 0),
      has_hash_(num_blocks, 0),
      block_tokens_(static_cast<size_t>(num_blocks) * block_size, 0) {}

uint64_t PrefixCache::hash_block(uint64_t parent_hash, std::span<const int32_t> tokens) {
  // Explicit little-endian serialization so the key does not depend on the host.
  std::vector<uint8_t> bytes(8 + 4 * tokens.size());
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(parent_hash >> (8 * i));
  for (size_t t = 0; t < tokens.size(); ++t) {
    uint32_t v = static_cast<uint32_t>(tokens[t]);
    for (int i = 0; i < 4; ++i) bytes[8 + 4 * t + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  return XXH64(bytes.data(), bytes.size(), 0);
}

std::optional<int32_t> PrefixCache::lookup(uint64_t hash, std::span<const int32_t> tokens) const {
  auto it = map_.find(hash);
  if (it == map_.end()) return std::nullopt;
  const int32_t* stored = &block_tokens_[static_cast<size_t>(it->second) * block_size_];
  if (tokens.size() != static_cast<size_t>(block_size_) || !std::equal(tokens.begin(), tokens.end(), stored)) {
    return std::nullopt;
  }
  return it->second;
}

bool PrefixCache::insert(uint64_t hash, int32_t block, std::span<const int32_t> tokens) {
  TANDEM_CHECK(tokens.size() == static_cast<size_t>(block_size_), "{} tokens for a block of {}", tokens.size(),
               block_size_);
  if (has_hash_[block] || map_.count(hash)) return false;
  map_.emplace(hash, block);
  block_hash_[block] = hash;
  has_hash_[block] = 1;
  std::copy(tokens.begin(), tokens.end(), &block_tokens_[static_cast<size_t>(block) * block_size_]);
  return true;
}

void PrefixCache::evict(int32_t block) {
  if (!has_hash_[block]) return;
  auto it = map_.find(block_hash_[block]);
  if (it != map_.end() && it->second == block) map_.erase(it);
  has_hash_[block] = 0;
}

}  // namespace tandem
