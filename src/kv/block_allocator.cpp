// BlockAllocator: see block_allocator.h.
#include "kv/block_allocator.h"

#include "common/check.h"

namespace tandem {

BlockAllocator::BlockAllocator(int32_t num_blocks)
    : ref_counts_(num_blocks, 0), prev_(num_blocks, -1), next_(num_blocks, -1) {
  TANDEM_CHECK(num_blocks >= 0);
  for (int32_t b = 0; b < num_blocks; ++b) push_back(b);
}

int32_t BlockAllocator::allocate() {
  if (head_ < 0) return -1;
  int32_t b = head_;
  unlink(b);
  ref_counts_[b] = 1;
  return b;
}

void BlockAllocator::incref(int32_t block) {
  TANDEM_CHECK(block >= 0 && block < num_blocks(), "block {}", block);
  if (ref_counts_[block]++ == 0) unlink(block);
}

void BlockAllocator::decref(int32_t block, bool keep_cached) {
  TANDEM_CHECK(block >= 0 && block < num_blocks(), "block {}", block);
  TANDEM_CHECK(ref_counts_[block] > 0, "double free of block {}", block);
  if (--ref_counts_[block] == 0) {
    if (keep_cached) {
      push_back(block);
    } else {
      push_front(block);
    }
  }
}

void BlockAllocator::unlink(int32_t b) {
  int32_t p = prev_[b], n = next_[b];
  if (p >= 0) next_[p] = n; else head_ = n;
  if (n >= 0) prev_[n] = p; else tail_ = p;
  prev_[b] = next_[b] = -1;
  --num_free_;
}

void BlockAllocator::push_front(int32_t b) {
  prev_[b] = -1;
  next_[b] = head_;
  if (head_ >= 0) prev_[head_] = b; else tail_ = b;
  head_ = b;
  ++num_free_;
}

void BlockAllocator::push_back(int32_t b) {
  next_[b] = -1;
  prev_[b] = tail_;
  if (tail_ >= 0) next_[tail_] = b; else head_ = b;
  tail_ = b;
  ++num_free_;
}

}  // namespace tandem
