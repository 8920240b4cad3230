// The page prefetcher over a real RocksDB store and a real page writer: staged pages hold the
// bytes stored, a page that is missing, damaged or another model's is never staged, staging stays
// within its byte bound, a page is taken once, and requests, takes and forgets from several
// threads while the writer still has pages queued leave every counter balanced.
#include "memory/page_prefetcher.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "memory/page_writer.h"
#include "tests/memory/page_fixtures.h"
#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using testing::TempDir;

PageShape shape() { return testing::test_shape(8, 2, 32); }

ModelIdentity model(uint8_t b) { return testing::test_model(b); }

PageHash hash_of(int i) { return testing::test_hash(i, 0xC3); }

std::vector<PageHash> hashes(int from, int to) {
  std::vector<PageHash> out;
  for (int i = from; i < to; ++i) out.push_back(hash_of(i));
  return out;
}

std::vector<uint8_t> payload(int i) { return testing::test_payload(shape(), i); }

// Every page requested is, once nothing is in flight and staging is cleared, accounted for once.
void expect_balanced(PagePrefetcher& p) {
  p.wait_idle();
  p.clear();
  p.wait_idle();
  const PagePrefetcherStats s = p.stats();
  EXPECT_EQ(s.requested, s.taken + s.missing + s.refused + s.unused);
  EXPECT_EQ(s.staged_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, 0u);
}

TEST(PagePrefetcher, StagedPagesHoldTheStoredBytesAndAreTakenOnce) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  for (int i = 0; i < 12; ++i)
    ASSERT_TRUE((*store)->put(hash_of(i), model(1), shape(), payload(i)).ok());
  ASSERT_TRUE((*store)->flush().ok());
  PageWriter writer(**store);
  PagePrefetcher prefetcher(writer);
  const std::vector<PageHash> all = hashes(0, 12);
  EXPECT_EQ(prefetcher.request(all, model(1), shape()), 12u);
  EXPECT_EQ(prefetcher.request(all, model(1), shape()), 0u) << "duplicates are skipped";
  prefetcher.wait_idle();
  PagePrefetcherStats s = prefetcher.stats();
  EXPECT_EQ(s.requested, 12u);
  EXPECT_EQ(s.staged, 12u);
  EXPECT_EQ(s.staged_bytes, 12 * shape().payload_bytes());
  EXPECT_EQ(prefetcher.request(all, model(1), shape()), 0u) << "staged pages are skipped";

  std::vector<uint8_t> out(shape().payload_bytes());
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(prefetcher.take(hash_of(i), model(1), shape(), out).ok()) << i;
    EXPECT_EQ(out, payload(i)) << i;
    Status again = prefetcher.take(hash_of(i), model(1), shape(), out);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), Errc::not_found);
  }
  s = prefetcher.stats();
  EXPECT_EQ(s.taken, 12u);
  EXPECT_EQ(s.staged_bytes, 0u);
  EXPECT_EQ(s.reserved_bytes, 0u);
  EXPECT_EQ(s.unused, 0u);
  // Never requested.
  EXPECT_EQ(prefetcher.take(hash_of(99), model(1), shape(), out).error().code(), Errc::not_found);
  expect_balanced(prefetcher);
}

TEST(PagePrefetcher, MissingDamagedAndForeignPagesAreNotStaged) {
  TempDir dir;
  {
    auto store = PageStore::open(dir.path());
    ASSERT_TRUE(store.ok()) << store.error().message();
    ASSERT_TRUE((*store)->put(hash_of(1), model(1), shape(), payload(1)).ok());  // damaged below
    ASSERT_TRUE((*store)->put(hash_of(2), model(2), shape(), payload(2)).ok());  // another model's
    ASSERT_TRUE((*store)->put(hash_of(3), model(1), shape(), payload(3)).ok());  // good
  }
  {
    // Flip one payload byte through RocksDB itself: the checksum no longer matches.
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    const PageHash k = hash_of(1);
    const rocksdb::Slice ks(reinterpret_cast<const char*>(k.data()), k.size());
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), ks, &value).ok());
    value[kPageHeaderBytes + 17] ^= 0x40;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), ks, value).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  PageWriter writer(**store);
  PagePrefetcher prefetcher(writer);
  const std::vector<PageHash> wanted = {hash_of(0), hash_of(1), hash_of(2), hash_of(3)};
  EXPECT_EQ(prefetcher.request(wanted, model(1), shape()), 4u);
  prefetcher.wait_idle();
  const PagePrefetcherStats s = prefetcher.stats();
  EXPECT_EQ(s.staged, 1u);
  EXPECT_EQ(s.missing, 1u);
  EXPECT_EQ(s.refused, 2u);
  EXPECT_EQ(s.staged_bytes, shape().payload_bytes());
  EXPECT_EQ(s.reserved_bytes, shape().payload_bytes()) << "failed reads give their bytes back";
  std::vector<uint8_t> out(shape().payload_bytes(), 0xEE);
  for (int i : {0, 1, 2}) {
    Status got = prefetcher.take(hash_of(i), model(1), shape(), out);
    ASSERT_FALSE(got.ok()) << i;
    EXPECT_EQ(got.error().code(), Errc::not_found) << i;
  }
  EXPECT_EQ(out, std::vector<uint8_t>(out.size(), 0xEE)) << "nothing copied out";
  // The good page, asked for by another model, is refused and dropped.
  Status foreign = prefetcher.take(hash_of(3), model(2), shape(), out);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), Errc::invalid_argument);
  EXPECT_EQ(prefetcher.take(hash_of(3), model(1), shape(), out).error().code(), Errc::not_found);
  expect_balanced(prefetcher);
}

TEST(PagePrefetcher, StagingStaysWithinItsByteBound) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*store)->put(hash_of(i), model(1), shape(), payload(i)).ok());
  PageWriter writer(**store);
  const uint64_t page = shape().payload_bytes();
  PagePrefetcher prefetcher(writer, 3 * page + page / 2);
  EXPECT_EQ(prefetcher.request(hashes(0, 10), model(1), shape()), 3u);
  PagePrefetcherStats s = prefetcher.stats();
  EXPECT_EQ(s.dropped, 7u);
  EXPECT_LE(s.reserved_bytes, prefetcher.max_staged_bytes());
  prefetcher.wait_idle();
  s = prefetcher.stats();
  EXPECT_EQ(s.staged, 3u);
  EXPECT_EQ(s.staged_bytes, 3 * page);

  // Taking one page makes room for one more; forgetting frees the rest.
  std::vector<uint8_t> out(page);
  ASSERT_TRUE(prefetcher.take(hash_of(0), model(1), shape(), out).ok());
  EXPECT_EQ(out, payload(0));
  EXPECT_EQ(prefetcher.request(hashes(3, 10), model(1), shape()), 1u);
  prefetcher.wait_idle();
  EXPECT_LE(prefetcher.stats().staged_bytes, prefetcher.max_staged_bytes());
  const std::vector<PageHash> some = {hash_of(1), hash_of(3)};
  prefetcher.forget(some);
  EXPECT_EQ(prefetcher.take(hash_of(1), model(1), shape(), out).error().code(), Errc::not_found);
  ASSERT_TRUE(prefetcher.take(hash_of(2), model(1), shape(), out).ok());
  EXPECT_EQ(out, payload(2));
  s = prefetcher.stats();
  EXPECT_EQ(s.unused, 2u);
  EXPECT_EQ(s.staged_bytes, 0u);
  expect_balanced(prefetcher);
}

TEST(PagePrefetcher, WorksFromSeveralThreadsWhileTheWriterStillHasPagesQueued) {
  TempDir dir;
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  PageWriter writer(**store);
  const uint64_t page = shape().payload_bytes();
  PagePrefetcher prefetcher(writer, 16 * page);
  constexpr int kPages = 300;
  std::atomic<int> written{0};
  std::atomic<int> bad{0};
  std::atomic<int> taken{0};
  // A producer queues pages to the writer and asks for each right away (the prefetcher reads it
  // from the writer's queue or from the store, whichever holds it then).
  std::thread producer([&] {
    for (int i = 0; i < kPages; ++i) {
      if (!writer.put(hash_of(i), model(1), shape(), payload(i))) ++bad;
      const PageHash h = hash_of(i);
      prefetcher.request(std::span<const PageHash>(&h, 1), model(1), shape());
      written = i + 1;
    }
  });
  // A consumer takes pages as they come, and forgets some.
  std::thread consumer([&] {
    std::vector<uint8_t> out(page);
    for (int i = 0; i < kPages; ++i) {
      while (written.load() <= i) std::this_thread::yield();
      const PageHash h = hash_of(i);
      if (i % 5 == 4) {
        prefetcher.forget(std::span<const PageHash>(&h, 1));
        continue;
      }
      Status got = prefetcher.take(h, model(1), shape(), out);
      if (got.ok()) {
        ++taken;
        if (out != payload(i)) ++bad;
      } else if (got.error().code() != Errc::not_found) {
        ++bad;
      } else if (!writer.get(h, model(1), shape(), out).ok() || out != payload(i)) {
        ++bad;  // not staged yet: the writer still has it, as the scheduler would read it
      }
    }
  });
  // A third thread asks for pages again and again, as a second sequence sharing them would.
  std::thread again([&] {
    for (int round = 0; round < 20; ++round) {
      const int upto = written.load();
      const std::vector<PageHash> hs = hashes(std::max(0, upto - 8), upto);
      prefetcher.request(hs, model(1), shape());
      (void)prefetcher.stats();
    }
  });
  producer.join();
  consumer.join();
  again.join();
  EXPECT_EQ(bad.load(), 0);
  const PagePrefetcherStats s = prefetcher.stats();
  EXPECT_EQ(s.taken, static_cast<uint64_t>(taken.load()));
  EXPECT_EQ(s.refused, 0u);
  EXPECT_LE(s.reserved_bytes, prefetcher.max_staged_bytes());
  expect_balanced(prefetcher);
  writer.flush();
}

}  // namespace
}  // namespace icam::memory
