// StringIdMap / PairRankMap: linear probing, load factor <= 1/2.
#include "tokenizer/string_id_map.h"

#include <xxhash.h>

#include <cstring>

namespace tandem {
namespace {
inline uint64_t hash_bytes(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }
}  // namespace

size_t StringIdMap::probe(std::string_view key, uint64_t hash) const {
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return i;
    if (s.hash == hash && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
      return i;
    }
  }
}

void StringIdMap::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = s.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void StringIdMap::insert(std::string_view key, int32_t id) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  uint64_t h = hash_bytes(key);
  size_t i = probe(key, h);
  if (slots_[i].id >= 0) {
    slots_[i].id = id;
    return;
  }
  Slot s;
  s.hash = h;
  s.offset = static_cast<uint32_t>(arena_.size());
  s.length = static_cast<uint32_t>(key.size());
  s.id = id;
  arena_.append(key);
  slots_[i] = s;
  ++count_;
}

int32_t StringIdMap::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  return slots_[probe(key, hash_bytes(key))].id;
}

void PairRankMap::grow() {
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Entry{});
  size_t mask = slots_.size() - 1;
  for (const Entry& e : old) {
    if (e.key == kEmpty) continue;
    size_t i = mix(e.key) & mask;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = e;
  }
}

void PairRankMap::insert(int32_t a, int32_t b, int32_t rank, int32_t merged_id) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  uint64_t key = make_key(a, b);
  size_t mask = slots_.size() - 1;
  size_t i = mix(key) & mask;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask;
  if (slots_[i].key == kEmpty) ++count_;  // a duplicate pair: the later merge wins, as in HF
  slots_[i] = Entry{key, rank, merged_id};
}

}  // namespace tandem
