// BlockAllocator: reference counts and the free list of a pool's KV blocks, all operations O(1).
//
// The free list is an intrusive doubly-linked list (index arrays) ordered by eviction priority: the
// front is handed out first. Blocks that hold no reusable data are pushed to the front; blocks that are
// still registered in the prefix cache are pushed to the back, so the front-most cached block is the
// least recently freed one (LRU). A free block can be taken back out of the middle (a prefix-cache hit
// revives it) in O(1).
#pragma once

#include <cstdint>
#include <vector>

namespace tandem {

class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t num_free() const { return num_free_; }
  int32_t ref_count(int32_t block) const { return ref_counts_[block]; }
  bool is_free(int32_t block) const { return ref_counts_[block] == 0; }

  // Takes the front of the free list (ref count 1). Returns -1 when none is free.
  int32_t allocate();
  // Adds a reference; a free block leaves the free list (ref count 0 -> 1).
  void incref(int32_t block);
  // Drops a reference; at zero the block joins the free list: at the back when `keep_cached` (its
  // contents stay reusable until evicted), else at the front.
  void decref(int32_t block, bool keep_cached);

 private:
  void unlink(int32_t block);
  void push_front(int32_t block);
  void push_back(int32_t block);

  std::vector<int32_t> ref_counts_;
  std::vector<int32_t> prev_, next_;  // free-list links; -1 = none
  int32_t head_ = -1, tail_ = -1;
  int32_t num_free_ = 0;
};

}  // namespace tandem
