// The background page writer over a real RocksDB store: a queued page is readable at once (from
// the queue or the store), everything queued reaches the store, a full queue refuses pages
// rather than growing, and a queued page of another model is refused as the store refuses it.
#include "memory/page_writer.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/memory/page_fixtures.h"
#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using testing::TempDir;

PageShape shape() { return testing::test_shape(16, 4, 64); }

ModelIdentity model(uint8_t b) { return testing::test_model(b); }

PageHash hash_of(int i) { return testing::test_hash(i, 0x5A); }

std::vector<uint8_t> payload(int i) { return testing::test_payload(shape(), i); }

TEST(PageWriter, QueuedPagesAreReadableAtOnceAndAllReachTheStore) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  {
    PageWriter writer(**store);
    std::vector<uint8_t> out(shape().payload_bytes());
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(writer.put(hash_of(i), model(1), shape(), payload(i)));
      // Whether it is still queued or already written, it reads back the same.
      ASSERT_TRUE(writer.get(hash_of(i), model(1), shape(), out).ok());
      ASSERT_EQ(out, payload(i));
      ASSERT_TRUE(writer.contains(hash_of(i)).value());
    }
    writer.flush();
    const PageWriterStats s = writer.stats();
    EXPECT_EQ(s.written + s.failed, s.queued);
    EXPECT_EQ(s.failed, 0u);
    EXPECT_EQ(s.pending_bytes, 0u);
  }
  std::vector<uint8_t> out(shape().payload_bytes());
  for (int i = 0; i < 200; i += 37) {
    ASSERT_TRUE((*store)->get(hash_of(i), model(1), shape(), out).ok()) << i;
    EXPECT_EQ(out, payload(i));
  }
}

TEST(PageWriter, AFullQueueRefusesPagesInsteadOfGrowing) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  const uint64_t page = shape().payload_bytes();
  PageWriter writer(**store, 2 * page);
  int accepted = 0;
  for (int i = 0; i < 500; ++i)
    if (writer.put(hash_of(i), model(1), shape(), payload(i))) ++accepted;
  writer.flush();
  const PageWriterStats s = writer.stats();
  EXPECT_EQ(s.queued, static_cast<uint64_t>(accepted));
  EXPECT_EQ(s.queued + s.dropped, 500u);
  EXPECT_EQ(s.written, s.queued);
  // Every accepted page is in the store; a dropped one is simply absent.
  for (int i = 0; i < 500; ++i) EXPECT_TRUE((*store)->contains(hash_of(i)).ok());
}

TEST(PageWriter, AQueuedPageOfAnotherModelIsRefused) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  PageWriter writer(**store);
  ASSERT_TRUE(writer.put(hash_of(1), model(1), shape(), payload(1)));
  std::vector<uint8_t> out(shape().payload_bytes());
  Status got = writer.get(hash_of(1), model(2), shape(), out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Errc::invalid_argument);
  EXPECT_EQ(writer.get(hash_of(2), model(1), shape(), out).error().code(), Errc::not_found);
}

}  // namespace
}  // namespace icam::memory
