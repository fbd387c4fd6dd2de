// Tests of PrefixCache hashing and BlockManager (prefix hits, eviction order, ref counts).
#include "kv/prefix_cache.h"

#include <gtest/gtest.h>

#include <xxhash.h>

#include <numeric>

#include "kv/block_manager.h"

namespace tandem {
namespace {

std::vector<int32_t> iota_tokens(int n, int start = 1) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(PrefixCache, HashIsStableAcrossRunsAndChained) {
  std::vector<int32_t> t = {1, 2, 3, 4};
  uint64_t h0 = PrefixCache::hash_block(0, t);
  EXPECT_EQ(h0, PrefixCache::hash_block(0, t));
  EXPECT_NE(h0, PrefixCache::hash_block(1, t));                          // parent matters
  EXPECT_NE(h0, PrefixCache::hash_block(0, std::vector<int32_t>{1, 2, 3, 5}));  // tokens matter
  EXPECT_NE(h0, PrefixCache::hash_block(0, std::vector<int32_t>{2, 1, 3, 4}));  // order matters
  uint64_t h1 = PrefixCache::hash_block(h0, t);
  EXPECT_NE(h1, h0);
}

TEST(PrefixCache, HashIsXxh64Seed0OverParentThenTokensLittleEndian) {
  const uint8_t bytes[] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // parent, LE
                           1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};  // 1, 2, INT32_MAX
  std::vector<int32_t> t = {1, 2, 0x7fffffff};
  EXPECT_EQ(PrefixCache::hash_block(0x1122334455667788ull, t), XXH64(bytes, sizeof(bytes), 0));
}

TEST(PrefixCache, LookupInsertEvict) {
  PrefixCache c(4, 2);
  std::vector<int32_t> t = {7, 8};
  uint64_t h = PrefixCache::hash_block(0, t);
  EXPECT_FALSE(c.lookup(h, t));
  EXPECT_TRUE(c.insert(h, 3, t));
  EXPECT_EQ(c.lookup(h, t), 3);
  EXPECT_FALSE(c.insert(h, 2, t));  // the first copy wins
  EXPECT_FALSE(c.lookup(h, std::vector<int32_t>{7, 9}));  // a colliding key with other tokens misses
  c.evict(3);
  EXPECT_FALSE(c.lookup(h, t));
  EXPECT_FALSE(c.is_cached(3));
}

TEST(BlockManager, SharedPrefixIsReusedWithRefCounts) {
  BlockManager bm(8, 4, true);
  auto tokens = iota_tokens(10);  // 2 full blocks + 2 tokens
  BlockTable a;
  EXPECT_EQ(bm.acquire_cached_prefix(a, tokens, 100), 0);
  ASSERT_TRUE(bm.allocate_slots(a, 10));
  EXPECT_EQ(a.blocks.size(), 3u);
  bm.commit_full_blocks(a, tokens, 10);
  EXPECT_EQ(a.hashes.size(), 2u);
  EXPECT_EQ(bm.num_free_blocks(), 5);

  BlockTable b;
  EXPECT_EQ(bm.acquire_cached_prefix(b, tokens, 100), 2);
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_EQ(b.blocks[1], a.blocks[1]);
  EXPECT_EQ(bm.allocator().ref_count(a.blocks[0]), 2);
  ASSERT_TRUE(bm.allocate_slots(b, 10));
  EXPECT_NE(b.blocks[2], a.blocks[2]);
  EXPECT_EQ(bm.num_free_blocks(), 4);

  // max_blocks caps the hit (a full hit must leave one token to compute).
  BlockTable c;
  EXPECT_EQ(bm.acquire_cached_prefix(c, tokens, 1), 1);
  bm.free(c);

  bm.free(a);
  EXPECT_EQ(bm.allocator().ref_count(b.blocks[0]), 1);
  bm.free(b);
  EXPECT_EQ(bm.num_free_blocks(), 8);
  // Still cached after freeing.
  BlockTable d;
  EXPECT_EQ(bm.acquire_cached_prefix(d, tokens, 100), 2);
  bm.free(d);
}

TEST(BlockManager, DifferentSecondBlockSharesOnlyTheFirst) {
  BlockManager bm(8, 4, true);
  auto t1 = iota_tokens(8);
  auto t2 = t1;
  t2[6] = 99;
  BlockTable a;
  ASSERT_TRUE(bm.allocate_slots(a, 8));
  bm.commit_full_blocks(a, t1, 8);
  BlockTable b;
  EXPECT_EQ(bm.acquire_cached_prefix(b, t2, 100), 1);
  bm.free(a);
  bm.free(b);
}

TEST(BlockManager, AllocationEvictsLeastRecentlyFreedCachedBlocksFirst) {
  BlockManager bm(4, 2, true);
  auto t_old = iota_tokens(4, 100);
  auto t_new = iota_tokens(4, 200);
  BlockTable a, b;
  ASSERT_TRUE(bm.allocate_slots(a, 4));
  bm.commit_full_blocks(a, t_old, 4);
  ASSERT_TRUE(bm.allocate_slots(b, 4));
  bm.commit_full_blocks(b, t_new, 4);
  EXPECT_FALSE(bm.allocate_slots(a, 6));  // pool full: all or nothing
  EXPECT_EQ(a.blocks.size(), 2u);
  bm.free(a);  // older
  bm.free(b);  // newer
  EXPECT_EQ(bm.num_free_blocks(), 4);

  BlockTable c;
  ASSERT_TRUE(bm.allocate_slots(c, 2));  // one block: evicts from `a`, the tail block first
  BlockTable probe_old, probe_new;
  EXPECT_EQ(bm.acquire_cached_prefix(probe_new, t_new, 100), 2);  // newest survives intact
  EXPECT_EQ(bm.acquire_cached_prefix(probe_old, t_old, 100), 1);  // head of the old one survives
  bm.free(probe_old);
  bm.free(probe_new);
  bm.free(c);
}

TEST(BlockManager, DisabledPrefixCachingNeverHits) {
  BlockManager bm(4, 2, false);
  auto t = iota_tokens(4);
  BlockTable a;
  ASSERT_TRUE(bm.allocate_slots(a, 4));
  bm.commit_full_blocks(a, t, 4);
  bm.free(a);
  BlockTable b;
  EXPECT_EQ(bm.acquire_cached_prefix(b, t, 100), 0);
}

}  // namespace
}  // namespace tandem
