// Saving a context's pages to the RocksDB page store and restoring them into another engine's
// pool, on a tiny generated model: the restored keys and values are the computed bytes, and the
// next token's logits are those of a full recompute. A damaged stored page, or pages of another
// model, stop the restore there; the rest is recomputed and the result is still right.
#include "memory/swap.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cstring>
#include <memory>
#include <vector>

#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"
#include "memory/context_pages.h"
#include "tests/drivers/llm/engine/tiny_model.h"
#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using testing::TempDir;

constexpr int kPageTokens = 4;

struct Engine {
  std::unique_ptr<llm::CpuBackend> backend;
  llm::KvPool& pool() { return backend->kv_pool(); }
};

Engine make_engine(const llm::Model& model, int pages = 64) {
  const llm::ModelConfig& c = model.config();
  const uint64_t page_bytes = 2ull * c.n_layers * kPageTokens * c.kv_dim() * sizeof(uint16_t);
  return {
      llm::CpuBackend::create(c, model.weights(), {page_bytes * pages, kPageTokens}, 1).value()};
}

std::vector<int32_t> context_tokens(int n) {
  llm::testing::TinyRandom rng(5);
  std::vector<int32_t> t = {llm::testing::kTinyBos};
  while (static_cast<int>(t.size()) < n) t.push_back(3 + rng.below(llm::testing::kTinyVocab - 3));
  return t;
}

// Feeds tokens [from, end) into `pages` (which cover the whole context) and returns the last
// position's logits.
std::vector<float> feed(Engine& e, const std::vector<int32_t>& tokens, int32_t from,
                        const ContextPages& pages) {
  llm::SequenceStep step;
  step.tokens = std::span<const int32_t>(tokens).subspan(from);
  step.start_pos = from;
  step.pages = pages.pages();
  step.logits = llm::LogitsWanted::last;
  std::vector<float> logits;
  Status s = e.backend->forward({&step, 1}, logits);
  EXPECT_TRUE(s.ok()) << s.error().message();
  return logits;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

class Swap : public ::testing::Test {
 protected:
  void SetUp() override {
    model =
        llm::Model::load(llm::testing::tiny_model_file(llm::testing::tiny_spec("llama"))).value();
    identity = model_identity(*model);
  }
  std::unique_ptr<llm::Model> model;
  ModelIdentity identity;
};

TEST_F(Swap, ARestoredContextHoldsTheComputedKeysAndValues) {
  TempDir dir;
  auto store = PageStore::open(dir.path()).value();
  const std::vector<int32_t> tokens = context_tokens(30);  // 7 full pages and 2 tokens

  Engine a = make_engine(*model);
  ContextPages computed(a.pool());
  ASSERT_TRUE(computed.reserve(30).ok());
  const std::vector<float> want = feed(a, tokens, 0, computed);
  auto saved = save_context(*store, a.pool(), tokens, computed.pages(), identity);
  ASSERT_TRUE(saved.ok()) << saved.error().message();
  EXPECT_EQ(saved->pages_written, 7);
  saved = save_context(*store, a.pool(), tokens, computed.pages(), identity);
  EXPECT_EQ(saved->pages_written, 0) << "saving again writes nothing";
  EXPECT_EQ(saved->pages_present, 7);
  ASSERT_TRUE(store->flush().ok());

  // Another engine (its own pool) over the same model.
  Engine b = make_engine(*model);
  ContextPages restored(b.pool());
  auto r = restore_context(*store, b.pool(), tokens, identity, restored, 1);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pages, 7);
  EXPECT_EQ(r->tokens, 28);
  EXPECT_TRUE(r->stopped.empty()) << r->stopped;
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(std::memcmp(a.pool().page_data(computed.pages()[i]),
                          b.pool().page_data(restored.pages()[i]), a.pool().page_bytes()),
              0)
        << "page " << i;
  ASSERT_TRUE(restored.reserve(30).ok());
  const std::vector<float> got = feed(b, tokens, 28, restored);
  EXPECT_LE(max_diff(got, want), 1e-4);

  // keep_last leaves the page of the last token to be computed: 28 tokens need 6 pages then.
  ContextPages page_aligned(b.pool());
  const std::vector<int32_t> first28(tokens.begin(), tokens.begin() + 28);
  r = restore_context(*store, b.pool(), first28, identity, page_aligned, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pages, 6);
}

TEST_F(Swap, ADamagedPageStopsTheRestoreAndIsRecomputed) {
  TempDir dir;
  const std::vector<int32_t> tokens = context_tokens(30);
  Engine a = make_engine(*model);
  ContextPages computed(a.pool());
  ASSERT_TRUE(computed.reserve(30).ok());
  const std::vector<float> want = feed(a, tokens, 0, computed);
  {
    auto store = PageStore::open(dir.path()).value();
    ASSERT_TRUE(save_context(*store, a.pool(), tokens, computed.pages(), identity).ok());
  }
  // Flip one byte of page 3's stored keys, through RocksDB itself.
  const PageHash third = full_page_hashes(tokens, kPageTokens, identity)[3];
  {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    const rocksdb::Slice key(reinterpret_cast<const char*>(third.data()), third.size());
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
    value[kPageHeaderBytes + 100] ^= 0x40;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  auto store = PageStore::open(dir.path()).value();
  Engine b = make_engine(*model);
  ContextPages restored(b.pool());
  auto r = restore_context(*store, b.pool(), tokens, identity, restored, 1);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pages, 3) << "pages 0..2 are good";
  EXPECT_NE(r->stopped.find("checksum"), std::string::npos) << r->stopped;
  ASSERT_TRUE(restored.reserve(30).ok());
  const std::vector<float> got = feed(b, tokens, r->tokens, restored);  // recompute from 12
  EXPECT_LE(max_diff(got, want), 1e-4);
}

TEST_F(Swap, PagesOfAnotherModelAreNeverUsed) {
  TempDir dir;
  auto store = PageStore::open(dir.path()).value();
  const std::vector<int32_t> tokens = context_tokens(20);
  Engine a = make_engine(*model);
  ContextPages computed(a.pool());
  ASSERT_TRUE(computed.reserve(20).ok());
  feed(a, tokens, 0, computed);
  ASSERT_TRUE(save_context(*store, a.pool(), tokens, computed.pages(), identity).ok());

  // Same shapes, other weights: its page hashes differ, so nothing is found.
  llm::testing::TinySpec other_spec = llm::testing::tiny_spec("llama");
  other_spec.seed += 7;
  auto other = llm::Model::load(llm::testing::tiny_model_file(other_spec)).value();
  const ModelIdentity other_identity = model_identity(*other);
  ASSERT_NE(other_identity, identity);
  Engine b = make_engine(*other);
  ContextPages restored(b.pool());
  auto r = restore_context(*store, b.pool(), tokens, other_identity, restored, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pages, 0);
  EXPECT_NE(r->stopped.find("no page"), std::string::npos) << r->stopped;
  EXPECT_TRUE(restored.empty());

  // And a page asked for by its key but labelled with another model is refused.
  const PageHash first = full_page_hashes(tokens, kPageTokens, identity)[0];
  std::vector<uint8_t> buffer(b.pool().page_bytes());
  Status got = store->get(first, other_identity, PageShape::of(b.pool()), buffer);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Errc::invalid_argument);
}

TEST_F(Swap, RestoreFailsCleanlyWhenThePoolIsFull) {
  TempDir dir;
  auto store = PageStore::open(dir.path()).value();
  const std::vector<int32_t> tokens = context_tokens(30);
  Engine a = make_engine(*model);
  ContextPages computed(a.pool());
  ASSERT_TRUE(computed.reserve(30).ok());
  feed(a, tokens, 0, computed);
  ASSERT_TRUE(save_context(*store, a.pool(), tokens, computed.pages(), identity).ok());
  Engine b = make_engine(*model, 3);
  ContextPages restored(b.pool());
  auto r = restore_context(*store, b.pool(), tokens, identity, restored, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::resource_exhausted);
  EXPECT_TRUE(restored.empty());
  EXPECT_EQ(b.pool().free_pages(), 3);
}

}  // namespace
}  // namespace icam::memory
