// Tests of BlockAllocator (ref counts, free-list order) and KvPool.
#include "kv/block_allocator.h"

#include <gtest/gtest.h>

#include <set>

#include "backend/cpu/cpu_backend.h"
#include "kv/kv_pool.h"

namespace tandem {
namespace {

TEST(BlockAllocator, AllocatesEveryBlockOnceThenRunsOut) {
  BlockAllocator a(5);
  std::set<int32_t> got;
  for (int i = 0; i < 5; ++i) {
    int32_t b = a.allocate();
    ASSERT_GE(b, 0);
    EXPECT_EQ(a.ref_count(b), 1);
    got.insert(b);
  }
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(a.num_free(), 0);
  EXPECT_EQ(a.allocate(), -1);
}

TEST(BlockAllocator, RefCountsKeepSharedBlocksAlive) {
  BlockAllocator a(2);
  int32_t b = a.allocate();
  a.incref(b);
  EXPECT_EQ(a.ref_count(b), 2);
  a.decref(b, false);
  EXPECT_FALSE(a.is_free(b));
  EXPECT_EQ(a.num_free(), 1);
  a.decref(b, false);
  EXPECT_TRUE(a.is_free(b));
  EXPECT_EQ(a.num_free(), 2);
}

TEST(BlockAllocator, UncachedBlocksAreReusedBeforeCachedOnesAndCachedInLruOrder) {
  BlockAllocator a(4);
  int32_t b0 = a.allocate(), b1 = a.allocate(), b2 = a.allocate(), b3 = a.allocate();
  a.decref(b1, /*keep_cached=*/true);  // oldest cached
  a.decref(b3, true);                  // newer cached
  a.decref(b0, false);                 // plain free: first out
  a.decref(b2, false);                 // plain free, pushed to the front: first of all
  EXPECT_EQ(a.allocate(), b2);
  EXPECT_EQ(a.allocate(), b0);
  EXPECT_EQ(a.allocate(), b1);
  EXPECT_EQ(a.allocate(), b3);
}

TEST(BlockAllocator, IncrefRevivesAFreeBlockFromTheMiddle) {
  BlockAllocator a(3);
  int32_t b0 = a.allocate(), b1 = a.allocate(), b2 = a.allocate();
  a.decref(b0, true);
  a.decref(b1, true);
  a.decref(b2, true);
  a.incref(b1);  // a prefix hit on a free cached block
  EXPECT_EQ(a.num_free(), 2);
  EXPECT_EQ(a.allocate(), b0);
  EXPECT_EQ(a.allocate(), b2);
  EXPECT_EQ(a.allocate(), -1);
}

TEST(BlockAllocatorDeathTest, DoubleFreeIsCaught) {
  BlockAllocator a(1);
  int32_t b = a.allocate();
  a.decref(b, false);
  EXPECT_DEATH(a.decref(b, false), "double free");
}

TEST(KvPool, AllocatesOneZeroedRegionOfTheLayoutSize) {
  auto backend = make_cpu_backend(1);
  ASSERT_TRUE(backend.ok()) << backend.status().to_string();
  KvLayout layout{2, 2, 4, 16, DType::kF32};
  auto pool = KvPool::create(**backend, layout, 3);
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();
  EXPECT_EQ((*pool)->bytes(), 3 * layout.block_bytes());
  EXPECT_EQ((*pool)->view().num_blocks, 3);
  const float* p = static_cast<const float*>((*pool)->view().base);
  for (int64_t i = 0; i < 3 * layout.elems_per_block(); ++i) ASSERT_EQ(p[i], 0.0f);
  EXPECT_FALSE(KvPool::create(**backend, layout, 0).ok());
}

}  // namespace
}  // namespace tandem
