// How a sequence is cut up must not change what the engine computes: batched with other sequences
// or alone, in pages of any size and any order, prefilled in one step or in chunks, or sharing
// its first pages with another sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "drivers/llm/engine/block_table.h"
#include "tests/drivers/llm/engine/engine_harness.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {
namespace {

// Batching changes only how rows are grouped in the matrix products; each row's arithmetic is the
// same, so results agree to float rounding.
constexpr double kSameTolerance = 1e-4;

struct Spec {
  const char* arch;
  GgmlType type;
};

void PrintTo(const Spec& s, std::ostream* os) {
  *os << s.arch << " " << type_name(s.type);
}

std::string spec_name(const ::testing::TestParamInfo<Spec>& p) {
  return std::string(p.param.arch) + "_" + type_name(p.param.type);
}

const std::vector<Spec> kSpecs = {
    {"gemma3", GgmlType::F32},
    {"llama", GgmlType::Q5_0},
    {"qwen2", GgmlType::Q8_0},
    {"qwen3", GgmlType::Q4_K},
};

std::span<const float> row(const std::vector<float>& logits, size_t r) {
  return std::span<const float>(logits).subspan(r * kTinyVocab, kTinyVocab);
}

// ----------------------------------------------------------------------------------------------
// Batched equals unbatched.

// One sequence of the batch test: its first `history` tokens are in its cache before the batched
// step, which brings the rest.
struct Member {
  std::vector<int32_t> tokens;
  int history;
  LogitsWanted wanted;
};

class BatchedEqualsUnbatched : public ::testing::TestWithParam<Spec> {};

TEST_P(BatchedEqualsUnbatched, MixedPrefillAndDecode) {
  const TinySpec spec = tiny_spec(GetParam().arch, GetParam().type);
  auto engine = make_engine(spec, {.page_tokens = 4});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  Backend& backend = *engine->backend;

  TinyRandom rng(21);
  // A: prefills a chunk of 18 after 12 cached; B: decodes one token at position 8; C: decodes its
  // very first token; D: prefills 14 from scratch wanting only the last row; E: prefills a chunk
  // whose logits nobody wants; F: decodes at position 33 (past gemma3's window).
  std::vector<Member> members = {
      {rng.tokens(30, kTinyVocab), 12, LogitsWanted::all},
      {rng.tokens(9, kTinyVocab), 8, LogitsWanted::last},
      {rng.tokens(1, kTinyVocab), 0, LogitsWanted::last},
      {rng.tokens(14, kTinyVocab), 0, LogitsWanted::last},
      {rng.tokens(10, kTinyVocab), 3, LogitsWanted::none},
      {rng.tokens(34, kTinyVocab), 33, LogitsWanted::all},
  };

  // Each member alone: the history in one step, then its step alone. Its logits and its greedy
  // continuation of 4 tokens are what the batched run must reproduce.
  constexpr int kDecode = 4;
  std::vector<std::vector<float>> alone_logits(members.size());
  std::vector<std::vector<int32_t>> alone_greedy(members.size());
  for (size_t m = 0; m < members.size(); ++m) {
    const Member& mem = members[m];
    BlockTable table(engine->pool());
    ASSERT_TRUE(table.reserve(mem.tokens.size() + kDecode).ok());
    std::vector<float> logits;
    if (mem.history > 0) {
      ASSERT_TRUE(forward_one(backend, std::span(mem.tokens).first(mem.history), 0, table.pages(),
                              LogitsWanted::none, logits)
                      .ok());
    }
    auto st = forward_one(backend, std::span(mem.tokens).subspan(mem.history), mem.history,
                          table.pages(), mem.wanted, alone_logits[m]);
    ASSERT_TRUE(st.ok()) << st.error().message();
    // Greedy decoding continues from the last token's logits, which `none` did not produce.
    if (mem.wanted == LogitsWanted::none) continue;
    std::vector<float> last(alone_logits[m].end() - kTinyVocab, alone_logits[m].end());
    int32_t pos = static_cast<int32_t>(mem.tokens.size());
    for (int i = 0; i < kDecode; ++i) {
      const int32_t next = argmax(last);
      alone_greedy[m].push_back(next);
      ASSERT_TRUE(
          forward_one(backend, std::span(&next, 1), pos++, table.pages(), LogitsWanted::last, last)
              .ok());
    }
  }
  ASSERT_EQ(engine->pool().free_pages(), engine->pool().n_pages());

  // All members together: histories first (one batch), then the mixed step in one call.
  std::vector<BlockTable> tables;
  for (const Member& mem : members) {
    tables.emplace_back(engine->pool());
    ASSERT_TRUE(tables.back().reserve(mem.tokens.size() + kDecode).ok());
  }
  std::vector<SequenceStep> history;
  for (size_t m = 0; m < members.size(); ++m) {
    if (members[m].history == 0) continue;
    history.push_back({std::span(members[m].tokens).first(members[m].history), 0, tables[m].pages(),
                       LogitsWanted::none});
  }
  std::vector<float> logits;
  ASSERT_TRUE(backend.forward(history, logits).ok());
  EXPECT_TRUE(logits.empty());

  std::vector<SequenceStep> batch;
  for (size_t m = 0; m < members.size(); ++m)
    batch.push_back({std::span(members[m].tokens).subspan(members[m].history), members[m].history,
                     tables[m].pages(), members[m].wanted});
  auto st = backend.forward(batch, logits);
  ASSERT_TRUE(st.ok()) << st.error().message();

  // Rows come back in batch order: every row for `all`, one for `last`, none for `none`.
  size_t expected_rows = 0;
  for (const std::vector<float>& alone : alone_logits) expected_rows += alone.size();
  ASSERT_EQ(logits.size(), expected_rows);
  size_t offset = 0;
  std::vector<std::vector<float>> last_rows(members.size());
  for (size_t m = 0; m < members.size(); ++m) {
    const size_t n = alone_logits[m].size();
    if (n == 0) continue;
    std::span<const float> mine(logits.data() + offset, n);
    EXPECT_LT(logit_error(mine, alone_logits[m]), kSameTolerance) << "member " << m;
    last_rows[m].assign(mine.end() - kTinyVocab, mine.end());
    offset += n;
  }

  // Greedy decoding of every member that has logits, all in one batch per step.
  std::vector<int32_t> pos(members.size()), next(members.size());
  std::vector<std::vector<int32_t>> greedy(members.size());
  for (int i = 0; i < kDecode; ++i) {
    batch.clear();
    for (size_t m = 0; m < members.size(); ++m) {
      if (members[m].wanted == LogitsWanted::none) continue;
      if (i == 0) pos[m] = static_cast<int32_t>(members[m].tokens.size());
      next[m] = argmax(last_rows[m]);
      greedy[m].push_back(next[m]);
      batch.push_back({std::span(&next[m], 1), pos[m]++, tables[m].pages(), LogitsWanted::last});
    }
    ASSERT_TRUE(backend.forward(batch, logits).ok());
    size_t r = 0;
    for (size_t m = 0; m < members.size(); ++m) {
      if (members[m].wanted == LogitsWanted::none) continue;
      const std::span<const float> got = row(logits, r++);
      last_rows[m].assign(got.begin(), got.end());
    }
  }
  for (size_t m = 0; m < members.size(); ++m)
    EXPECT_EQ(greedy[m], alone_greedy[m]) << "member " << m;
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedEqualsUnbatched, ::testing::ValuesIn(kSpecs), spec_name);

// ----------------------------------------------------------------------------------------------
// Paged equals contiguous.

// Runs `tokens` as a prefill of `prefill` tokens followed by single-token decodes, over the given
// block table, and returns the logits of every position.
std::vector<float> run_in_steps(Backend& backend, const std::vector<int32_t>& tokens, int prefill,
                                std::span<const int32_t> pages) {
  std::vector<float> all, logits;
  Status st =
      forward_one(backend, std::span(tokens).first(prefill), 0, pages, LogitsWanted::all, logits);
  EXPECT_TRUE(st.ok()) << st.error().message();
  all = logits;
  for (size_t p = prefill; p < tokens.size(); ++p) {
    st = forward_one(backend, std::span(tokens).subspan(p, 1), static_cast<int32_t>(p), pages,
                     LogitsWanted::all, logits);
    EXPECT_TRUE(st.ok()) << st.error().message();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

class PagedEqualsContiguous : public ::testing::TestWithParam<Spec> {};

TEST_P(PagedEqualsContiguous, PageSizesAndScatteredPages) {
  const TinySpec spec = tiny_spec(GetParam().arch, GetParam().type);
  const std::vector<int32_t> tokens = TinyRandom(5).tokens(37, kTinyVocab);
  constexpr int kPrefill = 20;

  // Contiguous: one page holds the whole sequence.
  auto whole = make_engine(spec, {.page_tokens = 64});
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  BlockTable one(whole->pool());
  ASSERT_TRUE(one.reserve(tokens.size()).ok());
  ASSERT_EQ(one.pages().size(), 1u);
  const std::vector<float> want = run_in_steps(*whole->backend, tokens, kPrefill, one.pages());
  ASSERT_EQ(want.size(), tokens.size() * kTinyVocab);

  for (int page_tokens : {1, 3, 16}) {
    SCOPED_TRACE("page_tokens " + std::to_string(page_tokens));
    auto paged = make_engine(spec, {.page_tokens = page_tokens, .kv_bytes = 1ull << 20});
    ASSERT_TRUE(paged.ok()) << paged.error().message();
    KvPool& pool = paged->pool();

    // In order, from a block table.
    {
      BlockTable table(pool);
      ASSERT_TRUE(table.reserve(tokens.size()).ok());
      EXPECT_LT(logit_error(run_in_steps(*paged->backend, tokens, kPrefill, table.pages()), want),
                kSameTolerance);
    }

    // Scattered: every page of the pool taken, the sequence given a shuffled, non-monotonic
    // subset. Every byte of every page is first set to a pattern, so that a write outside the
    // sequence's own slots can be seen afterwards.
    std::vector<int32_t> all_pages;
    while (pool.free_pages() > 0) all_pages.push_back(*pool.allocate());
    for (int32_t p : all_pages) std::memset(pool.page_data(p), 0x5A, pool.page_bytes());
    const size_t needed = (tokens.size() + page_tokens - 1) / page_tokens;
    ASSERT_GE(all_pages.size(), 2 * needed);
    std::vector<int32_t> pages;
    TinyRandom rng(page_tokens);
    std::vector<int32_t> candidates = all_pages;
    for (size_t i = 0; i < needed; ++i) {
      const int32_t pick = rng.below(static_cast<int32_t>(candidates.size()));
      pages.push_back(candidates[pick]);
      candidates.erase(candidates.begin() + pick);
    }
    if (std::is_sorted(pages.begin(), pages.end())) std::reverse(pages.begin(), pages.end());
    EXPECT_LT(logit_error(run_in_steps(*paged->backend, tokens, kPrefill, pages), want),
              kSameTolerance);

    // Pages outside the table are untouched; in the last page, the slots past the sequence too.
    std::vector<uint8_t> pattern(pool.page_bytes(), 0x5A);
    for (int32_t p : candidates)
      ASSERT_EQ(std::memcmp(pool.page_data(p), pattern.data(), pattern.size()), 0)
          << "page " << p << " was written but is not in the block table";
    const int used_in_last = static_cast<int>(tokens.size() - (needed - 1) * page_tokens);
    for (int l = 0; l < pool.n_layers(); ++l) {
      for (const uint16_t* slab : {pool.keys(pages.back(), l), pool.values(pages.back(), l)}) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(slab + used_in_last * pool.kv_dim());
        const size_t n = (page_tokens - used_in_last) * pool.kv_dim() * sizeof(uint16_t);
        ASSERT_EQ(std::memcmp(bytes, pattern.data(), n), 0) << "layer " << l;
      }
    }
    for (int32_t p : all_pages) pool.release(p);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PagedEqualsContiguous, ::testing::ValuesIn(kSpecs), spec_name);

// ----------------------------------------------------------------------------------------------
// Chunked prefill equals one prefill.

class ChunkedPrefill : public ::testing::TestWithParam<Spec> {};

TEST_P(ChunkedPrefill, EqualsOneShotAndContinuesTheSame) {
  const TinySpec spec = tiny_spec(GetParam().arch, GetParam().type);
  auto engine = make_engine(spec, {.page_tokens = 8});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  Backend& backend = *engine->backend;
  const std::vector<int32_t> prompt = TinyRandom(17).tokens(41, kTinyVocab);
  constexpr int kDecode = 8;

  // Prefills in chunks of the given sizes (cycling), keeps every logits row, then decodes greedily.
  auto run = [&](std::vector<int> chunks, std::vector<float>& all, std::vector<int32_t>& greedy) {
    BlockTable table(engine->pool());
    ASSERT_TRUE(table.reserve(prompt.size() + kDecode).ok());
    std::vector<float> logits;
    size_t start = 0;
    for (size_t i = 0; start < prompt.size(); ++i) {
      const size_t n = std::min<size_t>(chunks[i % chunks.size()], prompt.size() - start);
      Status st =
          forward_one(backend, std::span(prompt).subspan(start, n), static_cast<int32_t>(start),
                      table.pages(), LogitsWanted::all, logits);
      ASSERT_TRUE(st.ok()) << st.error().message();
      ASSERT_EQ(logits.size(), n * kTinyVocab);
      all.insert(all.end(), logits.begin(), logits.end());
      start += n;
    }
    std::vector<float> last(all.end() - kTinyVocab, all.end());
    for (int i = 0; i < kDecode; ++i) {
      const int32_t next = argmax(last);
      greedy.push_back(next);
      ASSERT_TRUE(forward_one(backend, std::span(&next, 1), static_cast<int32_t>(start++),
                              table.pages(), LogitsWanted::last, last)
                      .ok());
    }
  };

  std::vector<float> one_shot;
  std::vector<int32_t> one_shot_greedy;
  run({static_cast<int>(prompt.size())}, one_shot, one_shot_greedy);
  ASSERT_EQ(one_shot.size(), prompt.size() * kTinyVocab);
  for (std::vector<int> chunks : std::vector<std::vector<int>>{{1}, {5}, {17}, {5, 17, 1}}) {
    SCOPED_TRACE("first chunk " + std::to_string(chunks[0]) + ", " + std::to_string(chunks.size()) +
                 " sizes");
    std::vector<float> chunked;
    std::vector<int32_t> greedy;
    run(chunks, chunked, greedy);
    EXPECT_LT(logit_error(chunked, one_shot), kSameTolerance);
    EXPECT_EQ(greedy, one_shot_greedy);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ChunkedPrefill, ::testing::ValuesIn(kSpecs), spec_name);

// ----------------------------------------------------------------------------------------------
// Shared prefix pages.

// Two sequences with a common prefix of whole pages: the second holds a reference to the first's
// pages for the prefix and computes only its own suffix. Its logits must equal a full run of its
// own tokens, and the first sequence's cache must not be disturbed.
class SharedPrefix : public ::testing::TestWithParam<Spec> {};

TEST_P(SharedPrefix, SuffixOverSharedPagesEqualsFullRun) {
  const TinySpec spec = tiny_spec(GetParam().arch, GetParam().type);
  constexpr int kPage = 8, kShared = 16;
  auto engine = make_engine(spec, {.page_tokens = kPage});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  Backend& backend = *engine->backend;
  KvPool& pool = engine->pool();

  TinyRandom rng(33);
  const std::vector<int32_t> a = rng.tokens(29, kTinyVocab);
  std::vector<int32_t> b(a.begin(), a.begin() + kShared);
  for (int32_t t : rng.tokens(11, kTinyVocab)) b.push_back(t);

  const auto want_b = forward_all(backend, b);
  ASSERT_TRUE(want_b.ok());

  BlockTable table_a(pool);
  ASSERT_TRUE(table_a.reserve(a.size() + 1).ok());
  std::vector<float> logits;
  ASSERT_TRUE(forward_one(backend, a, 0, table_a.pages(), LogitsWanted::all, logits).ok());

  std::vector<int32_t> pages_b(table_a.pages().begin(), table_a.pages().begin() + kShared / kPage);
  for (int32_t p : pages_b) pool.retain(p);
  while (pages_b.size() * kPage < b.size()) pages_b.push_back(*pool.allocate());
  std::vector<float> suffix;
  ASSERT_TRUE(forward_one(backend, std::span(b).subspan(kShared), kShared, pages_b,
                          LogitsWanted::all, suffix)
                  .ok());
  EXPECT_LT(logit_error(suffix, std::span<const float>(*want_b).subspan(kShared * kTinyVocab)),
            kSameTolerance);

  // A continues past the shared pages as if B had never run.
  const int32_t next = a.back();
  ASSERT_TRUE(forward_one(backend, std::span(&next, 1), static_cast<int32_t>(a.size()),
                          table_a.pages(), LogitsWanted::last, logits)
                  .ok());
  std::vector<int32_t> a_plus = a;
  a_plus.push_back(next);
  const auto want_a_plus = forward_all(backend, a_plus);
  ASSERT_TRUE(want_a_plus.ok());
  EXPECT_LT(logit_error(logits, row(*want_a_plus, a.size())), kSameTolerance);
  for (int32_t p : pages_b) pool.release(p);
}

INSTANTIATE_TEST_SUITE_P(Models, SharedPrefix, ::testing::ValuesIn(kSpecs), spec_name);

}  // namespace
}  // namespace icam::llm::testing
