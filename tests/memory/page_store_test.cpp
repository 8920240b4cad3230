// The RocksDB page store in real directories: round trips, a damaged value (one byte flipped
// through RocksDB directly) refused by its checksum, a page of another model or shape refused,
// a value under the wrong key refused, and compression used when it pays.
#include "memory/page_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <rocksdb/db.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/memory/page_fixtures.h"
#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using testing::TempDir;

PageShape shape() { return testing::test_shape(4, 2, 8); }

ModelIdentity identity(uint8_t b) { return testing::test_model(b); }

PageHash key(uint8_t b) {
  PageHash h{};
  h.fill(b);
  h[0] = 0xAB;
  return h;
}

std::vector<uint8_t> payload(uint8_t seed) {
  std::vector<uint8_t> p(shape().payload_bytes());
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 31 + seed);
  return p;
}

// Rewrites the value stored under `k` with `edit`, through RocksDB itself (the store is closed).
void edit_value(const std::string& dir, const PageHash& k,
                const std::function<void(std::string&)>& edit, const PageHash* move_to = nullptr) {
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, &db).ok());
  const rocksdb::Slice ks(reinterpret_cast<const char*>(k.data()), k.size());
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), ks, &value).ok());
  edit(value);
  const PageHash& target = move_to ? *move_to : k;
  const rocksdb::Slice ts(reinterpret_cast<const char*>(target.data()), target.size());
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), ts, value).ok());
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

TEST(PageStore, RoundTripsPagesAndSurvivesReopening) {
  TempDir dir;
  {
    auto store = PageStore::open(dir.path());
    ASSERT_TRUE(store.ok()) << store.error().message();
    ASSERT_TRUE((*store)->put(key(1), identity(9), shape(), payload(1)).ok());
    ASSERT_TRUE((*store)->put(key(2), identity(9), shape(), payload(2)).ok());
    std::vector<uint8_t> out(shape().payload_bytes());
    ASSERT_TRUE((*store)->get(key(1), identity(9), shape(), out).ok());
    EXPECT_EQ(out, payload(1));
    EXPECT_TRUE((*store)->contains(key(2)).value());
    EXPECT_FALSE((*store)->contains(key(3)).value());
    Status missing = (*store)->get(key(3), identity(9), shape(), out);
    EXPECT_EQ(missing.error().code(), Errc::not_found);
    ASSERT_TRUE((*store)->flush().ok());
  }
  auto store = PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  std::vector<uint8_t> out(shape().payload_bytes());
  ASSERT_TRUE((*store)->get(key(2), identity(9), shape(), out).ok());
  EXPECT_EQ(out, payload(2));
  ASSERT_TRUE((*store)->remove(key(2)).ok());
  EXPECT_FALSE((*store)->contains(key(2)).value());
}

TEST(PageStore, RefusesWrongSizes) {
  TempDir dir;
  auto store = PageStore::open(dir.path()).value();
  std::vector<uint8_t> small(10);
  EXPECT_EQ(store->put(key(1), identity(9), shape(), small).error().code(), Errc::invalid_argument);
  ASSERT_TRUE(store->put(key(1), identity(9), shape(), payload(1)).ok());
  EXPECT_EQ(store->get(key(1), identity(9), shape(), small).error().code(), Errc::invalid_argument);
}

TEST(PageStore, AFlippedPayloadByteIsCaughtByTheChecksum) {
  TempDir dir;
  {
    auto store = PageStore::open(dir.path()).value();
    ASSERT_TRUE(store->put(key(1), identity(9), shape(), payload(1)).ok());
    ASSERT_TRUE(store->put(key(2), identity(9), shape(), payload(2)).ok());
  }
  edit_value(dir.path(), key(1), [](std::string& v) { v[kPageHeaderBytes + 77] ^= 0x10; });
  edit_value(dir.path(), key(2), [](std::string& v) { v[73] ^= 0x01; });  // the token count
  auto store = PageStore::open(dir.path()).value();
  std::vector<uint8_t> out(shape().payload_bytes(), 0xEE);
  Status got = store->get(key(1), identity(9), shape(), out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Errc::corrupt);
  EXPECT_NE(got.error().message().find("checksum"), std::string::npos) << got.error().message();
  EXPECT_EQ(out, std::vector<uint8_t>(out.size(), 0xEE)) << "nothing copied out";
  got = store->get(key(2), identity(9), shape(), out);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Errc::corrupt) << got.error().message();
}

TEST(PageStore, TruncatedOrForeignValuesAreCorrupt) {
  TempDir dir;
  {
    auto store = PageStore::open(dir.path()).value();
    ASSERT_TRUE(store->put(key(1), identity(9), shape(), payload(1)).ok());
  }
  // A whole, valid value stored under another key: the key echo in the header refuses it.
  const PageHash elsewhere = key(5);
  edit_value(
      dir.path(), key(1), [](std::string&) {}, &elsewhere);
  edit_value(dir.path(), key(1), [](std::string& v) { v.resize(v.size() - 1); });
  auto store = PageStore::open(dir.path()).value();
  std::vector<uint8_t> out(shape().payload_bytes());
  Status moved = store->get(key(5), identity(9), shape(), out);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.error().code(), Errc::corrupt);
  EXPECT_NE(moved.error().message().find("belongs to page"), std::string::npos);
  Status truncated = store->get(key(1), identity(9), shape(), out);
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.error().code(), Errc::corrupt);
}

TEST(PageStore, APageOfAnotherModelOrShapeIsRefused) {
  TempDir dir;
  auto store = PageStore::open(dir.path()).value();
  ASSERT_TRUE(store->put(key(1), identity(9), shape(), payload(1)).ok());
  std::vector<uint8_t> out(shape().payload_bytes(), 0xEE);
  Status other_model = store->get(key(1), identity(8), shape(), out);
  ASSERT_FALSE(other_model.ok());
  EXPECT_EQ(other_model.error().code(), Errc::invalid_argument);
  EXPECT_NE(other_model.error().message().find("computed by model"), std::string::npos)
      << other_model.error().message();
  EXPECT_EQ(out, std::vector<uint8_t>(out.size(), 0xEE));

  PageShape other = shape();
  other.tokens = 2;
  other.kv_dim = 16;  // the same payload size, another layout
  Status other_shape = store->get(key(1), identity(9), other, out);
  ASSERT_FALSE(other_shape.ok());
  EXPECT_EQ(other_shape.error().code(), Errc::invalid_argument);
}

// The bytes of the table files now in `dir`. RocksDB's background compaction may delete a file
// between listing and sizing it (FIFO compaction drops the oldest): such a file counts nothing.
uint64_t sst_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code error;
  for (const auto& f : std::filesystem::directory_iterator(dir, error)) {
    if (f.path().extension() != ".sst") continue;
    const uintmax_t size = std::filesystem::file_size(f.path(), error);
    if (!error) total += size;
  }
  return total;
}

TEST(PageStore, CompressesWhenItPays) {
  PageShape big;
  big.tokens = 16;
  big.layers = 4;
  big.kv_dim = 64;
  std::vector<uint8_t> zeros(big.payload_bytes(), 0);
  for (PageCompression c : {PageCompression::none, PageCompression::lz4, PageCompression::zstd}) {
    TempDir dir;
    auto store = PageStore::open(dir.path(), {c});
    ASSERT_TRUE(store.ok()) << store.error().message();
    for (uint8_t i = 0; i < 64; ++i)
      ASSERT_TRUE((*store)->put(key(i), identity(9), big, zeros).ok());
    ASSERT_TRUE((*store)->flush().ok());
    const uint64_t raw = 64 * (kPageHeaderBytes + zeros.size());
    const uint64_t stored = sst_bytes(dir.path());
    if (c == PageCompression::none)
      EXPECT_GE(stored, raw) << page_compression_name(c);
    else
      EXPECT_LT(stored, raw / 2) << page_compression_name(c);
    std::vector<uint8_t> out(zeros.size(), 1);
    ASSERT_TRUE((*store)->get(key(3), identity(9), big, out).ok());
    EXPECT_EQ(out, zeros);
  }
}

TEST(PageStore, ABoundedStoreDropsItsOldestPagesFirst) {
  PageShape big;
  big.tokens = 16;
  big.layers = 4;
  big.kv_dim = 512;  // 128 KiB a page
  const uint64_t limit = 2ull << 20;
  TempDir dir;
  PageStoreOptions options;
  options.compression = PageCompression::none;
  options.max_bytes = limit;
  auto store = PageStore::open(dir.path(), options);
  ASSERT_TRUE(store.ok()) << store.error().message();
  std::vector<uint8_t> page(big.payload_bytes());
  for (uint8_t i = 0; i < 64; ++i) {  // 8 MiB in all, flushed in files of 4 pages
    for (size_t j = 0; j < page.size(); ++j) page[j] = static_cast<uint8_t>(j * 7 + i);
    ASSERT_TRUE((*store)->put(key(i), identity(9), big, page).ok());
    if (i % 4 == 3) {
      ASSERT_TRUE((*store)->flush().ok());
    }
  }
  // FIFO compaction runs in RocksDB's background threads after the flushes: wait for it (a
  // bounded wait for work to happen, not a timing check).
  for (int tries = 0; tries < 100 && sst_bytes(dir.path()) > limit + (1ull << 20); ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(sst_bytes(dir.path()), limit + (1ull << 20));
  EXPECT_FALSE((*store)->contains(key(0)).value());   // the oldest went first
  EXPECT_TRUE((*store)->contains(key(63)).value());   // the newest stayed
  std::vector<uint8_t> out(page.size());
  EXPECT_TRUE((*store)->get(key(63), identity(9), big, out).ok());
  EXPECT_EQ(out, page);
}

}  // namespace
}  // namespace icam::memory
