// StringIdMap: a flat, open-addressing hash map from byte strings to int32 ids (vocabulary lookups on
// the encode hot path). Keys live in one arena; the table stores (hash, offset, length, id). Built once,
// then read-only, so concurrent lookups are safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class StringIdMap {
 public:
  // Inserts or overwrites.
  void insert(std::string_view key, int32_t id);
  // Returns -1 when absent.
  int32_t find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) >= 0; }
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;  // -1: empty
  };
  void grow();
  size_t probe(std::string_view key, uint64_t hash) const;

  std::string arena_;
  std::vector<Slot> slots_;  // power-of-two size
  size_t count_ = 0;
};

// Map from a pair of ids to (merge rank, merged id), keyed by (a << 32 | b).
class PairRankMap {
 public:
  struct Entry {
    uint64_t key = ~uint64_t{0};
    int32_t rank = 0;
    int32_t merged_id = 0;
  };
  void insert(int32_t a, int32_t b, int32_t rank, int32_t merged_id);
  // Returns nullptr when the pair has no merge.
  const Entry* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    uint64_t key = make_key(a, b);
    size_t mask = slots_.size() - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
  }
  void grow();
  std::vector<Entry> slots_;
  size_t count_ = 0;
};

}  // namespace tandem
