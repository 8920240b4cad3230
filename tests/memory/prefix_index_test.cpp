// The prefix index finds pages only while they are in use with the generation they were indexed
// at, keeps the first page indexed under a hash, and stays bounded.
#include "memory/prefix_index.h"

#include <gtest/gtest.h>

namespace icam::memory {
namespace {

// Pages of 2 tokens x 1 layer x kv_dim 4 halves, K and V: 32 bytes.
llm::ModelConfig small_config() {
  llm::ModelConfig c;
  c.n_layers = 1;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  return c;
}

PageHash hash_of(uint8_t b) {
  PageHash h{};
  h[0] = b;
  h[31] = 1;
  return h;
}

TEST(PrefixIndex, FindsIndexedPagesWhileInUse) {
  auto pool = llm::KvPool::create(small_config(), {8 * 32, 2});  // 8 pages
  ASSERT_TRUE(pool.ok());
  PrefixIndex index(*pool);
  EXPECT_EQ(index.find(hash_of(1)), -1);
  const int32_t a = pool->allocate().value();
  const int32_t b = pool->allocate().value();
  EXPECT_TRUE(index.insert(hash_of(1), a));
  EXPECT_TRUE(index.insert(hash_of(2), b));
  EXPECT_EQ(index.find(hash_of(1)), a);
  EXPECT_EQ(index.find(hash_of(2)), b);
  EXPECT_TRUE(index.insert(hash_of(1), a)) << "inserting the same page again is harmless";
  EXPECT_FALSE(index.insert(hash_of(1), b)) << "the page indexed first stays";
  EXPECT_EQ(index.find(hash_of(1)), a);
  EXPECT_FALSE(index.insert(hash_of(3), 7)) << "a free page is not indexed";

  // The index holds no reference: a shared page stays while anyone holds it.
  pool->retain(a);
  pool->release(a);
  EXPECT_EQ(index.find(hash_of(1)), a);
  EXPECT_EQ(pool->ref_count(a), 1);
}

TEST(PrefixIndex, AFreedOrReusedPageIsNotFound) {
  auto pool = llm::KvPool::create(small_config(), {1 * 32, 2});  // one page
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(pool->n_pages(), 1);
  PrefixIndex index(*pool);
  const int32_t p = pool->allocate().value();
  ASSERT_TRUE(index.insert(hash_of(1), p));
  pool->release(p);
  EXPECT_EQ(index.find(hash_of(1)), -1) << "freed";
  ASSERT_TRUE(index.insert(hash_of(2), p) == false);

  const int32_t again = pool->allocate().value();
  ASSERT_EQ(again, p);
  ASSERT_TRUE(index.insert(hash_of(3), again));
  pool->release(again);
  const int32_t reused = pool->allocate().value();  // same page, next generation
  ASSERT_EQ(reused, p);
  EXPECT_EQ(index.find(hash_of(3)), -1) << "the page now holds someone else's keys and values";
  EXPECT_TRUE(index.insert(hash_of(3), reused)) << "a stale entry is replaced";
  EXPECT_EQ(index.find(hash_of(3)), reused);
}

TEST(PrefixIndex, StaleEntriesAreSweptSoTheIndexStaysBounded) {
  auto pool = llm::KvPool::create(small_config(), {4 * 32, 2});  // 4 pages
  ASSERT_TRUE(pool.ok());
  PrefixIndex index(*pool);
  for (int i = 0; i < 200; ++i) {
    const int32_t p = pool->allocate().value();
    ASSERT_TRUE(index.insert(hash_of(static_cast<uint8_t>(i)), p));
    pool->release(p);
    EXPECT_LE(index.size(), 2u * 4 + 17);
  }
  index.sweep();
  EXPECT_EQ(index.size(), 0u);
}

}  // namespace
}  // namespace icam::memory
