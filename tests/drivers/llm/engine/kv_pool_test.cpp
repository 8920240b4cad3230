// The KV pool's page copies (used by the memory layer to move pages between tiers) and its
// allocation generations (used by the prefix index to notice a page freed and reused).
#include "drivers/llm/engine/kv_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace icam::llm {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  return c;
}

TEST(KvPoolPages, ReadAndWriteCopyAWholePage) {
  auto pool = KvPool::create(small_config(), {4 * 2 * 2 * 4 * 16 * 2, 4});
  ASSERT_TRUE(pool.ok()) << pool.error().message();
  ASSERT_EQ(pool->n_pages(), 4);
  const int32_t a = pool->allocate().value();
  const int32_t b = pool->allocate().value();
  std::vector<uint8_t> bytes(pool->page_bytes());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_TRUE(pool->write_page(a, bytes).ok());
  // The layout is the pool's: layer 1's values are the last slab of the page.
  const uint64_t slab = pool->page_bytes() / 4;
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(pool->values(a, 1))[0], bytes[3 * slab]);

  std::vector<uint8_t> out(pool->page_bytes());
  ASSERT_TRUE(pool->read_page(a, out).ok());
  EXPECT_EQ(out, bytes);
  ASSERT_TRUE(pool->write_page(b, out).ok());
  std::vector<uint8_t> copy(pool->page_bytes());
  ASSERT_TRUE(pool->read_page(b, copy).ok());
  EXPECT_EQ(copy, bytes);
}

TEST(KvPoolPages, CopiesRefuseFreePagesAndWrongSizes) {
  auto pool = KvPool::create(small_config(), {4 * 2 * 2 * 4 * 16 * 2, 4});
  ASSERT_TRUE(pool.ok());
  std::vector<uint8_t> bytes(pool->page_bytes());
  EXPECT_EQ(pool->read_page(0, bytes).error().code(), Errc::invalid_argument);  // not allocated
  EXPECT_EQ(pool->write_page(-1, bytes).error().code(), Errc::invalid_argument);
  EXPECT_EQ(pool->write_page(99, bytes).error().code(), Errc::invalid_argument);
  const int32_t p = pool->allocate().value();
  std::vector<uint8_t> short_buffer(pool->page_bytes() - 1);
  EXPECT_EQ(pool->read_page(p, short_buffer).error().code(), Errc::invalid_argument);
  EXPECT_EQ(pool->write_page(p, short_buffer).error().code(), Errc::invalid_argument);
}

TEST(KvPoolPages, GenerationChangesWhenAPageIsHandedOutAgain) {
  auto pool = KvPool::create(small_config(), {2 * 2 * 4 * 16 * 2, 4});  // one page
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(pool->n_pages(), 1);
  const int32_t p = pool->allocate().value();
  const uint64_t first = pool->generation(p);
  pool->retain(p);
  pool->release(p);
  EXPECT_EQ(pool->generation(p), first) << "references do not change the generation";
  pool->release(p);
  const int32_t again = pool->allocate().value();
  ASSERT_EQ(again, p);
  EXPECT_NE(pool->generation(again), first);
}

}  // namespace
}  // namespace icam::llm
