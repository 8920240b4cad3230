// Swapping through the RocksDB page store (SchedulerOptions::page_store) on a KV pool far too
// small for everyone: preempted sequences' full pages are written to the store and read back
// instead of being recomputed, and every output is still its solo output. A later scheduler over
// the same store reads the pages back for the same prompts; pages stored for another model are
// refused and computed. A blocked sequence's pages are prefetched before it is admitted again.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "memory/model_identity.h"
#include "memory/page_store.h"
#include "tests/memory/temp_dir.h"
#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

constexpr int kPageTokens = 4;
constexpr int kPages = 14;  // 56 positions; the sequences below need up to 34 each

struct CrowdRun {
  SchedulerStats stats;
  int recomputed = 0;
};

// Ten sequences of varied lengths and priorities through a scheduler over `store` (or none),
// checked against their solo outputs.
CrowdRun run_crowd(const TinyRig& rig, memory::PageStore* store, const memory::ModelIdentity& identity) {
  auto solo_backend = rig.backend(16, 64);
  auto backend = rig.backend(kPageTokens, kPages);
  EXPECT_TRUE(solo_backend.ok() && backend.ok());
  Recorder recorder;
  SchedulerOptions options;
  options.token_budget = 32;
  options.max_batch = 8;
  options.model_identity = identity;
  options.page_store = store;
  auto s = make_scheduler(**backend, rig, {PolicyKind::fair_share}, &recorder, options);
  EXPECT_TRUE(s.ok()) << s.error().message();
  TinyRandom rng(11);
  std::vector<SequenceSpec> specs;
  std::vector<SequenceId> ids;
  for (int i = 0; i < 10; ++i) {
    SequenceSpec sp = spec(prompt_tokens(rng, 10 + (i * 3) % 9), 8 + (i * 5) % 13, 1 + i * 7);
    sp.stop_at_end_of_generation = false;
    specs.push_back(sp);
    ids.push_back((*s)->submit(sp).value());
  }
  EXPECT_TRUE(drive(**s, recorder, 3000).ok());
  CrowdRun out;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto want = solo(**solo_backend, rig.tokenizer(), specs[i].prompt, specs[i].sampling, false);
    EXPECT_TRUE(want.ok());
    EXPECT_EQ(recorder.logs[ids[i]].tokens, want->tokens) << "sequence " << i;
    out.recomputed += (*s)->info(ids[i])->stats.recomputed_tokens;
  }
  out.stats = (*s)->stats();
  EXPECT_EQ(out.stats.kv_pages_free, kPages);
  return out;
}

TEST(Swap, PreemptedPagesComeBackFromTheStoreInsteadOfBeingRecomputed) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  const memory::ModelIdentity identity = memory::model_identity(*rig->model);
  const CrowdRun recompute = run_crowd(*rig, nullptr, identity);
  ASSERT_GT(recompute.stats.preemptions, 0u);

  memory::testing::TempDir dir;
  auto store = memory::PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  const CrowdRun swap = run_crowd(*rig, store->get(), identity);
  EXPECT_GT(swap.stats.preemptions, 0u);
  EXPECT_GT(swap.stats.swap_out_pages, 0u);
  EXPECT_GT(swap.stats.swap_in_pages, 0u);
  EXPECT_EQ(swap.stats.swap_errors, 0u);
  EXPECT_LT(swap.recomputed, recompute.recomputed);
  EXPECT_LE(swap.stats.swap_in_prefetched, swap.stats.swap_in_pages);

  // A new scheduler over the same store: the prompts' pages stored by the first run come back
  // at once, and the outputs are unchanged.
  const CrowdRun again = run_crowd(*rig, store->get(), identity);
  EXPECT_GT(again.stats.swap_in_pages, 0u);
  EXPECT_EQ(again.stats.swap_errors, 0u);
}

TEST(Swap, PagesOfAnotherModelAreRefusedAndComputed) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  memory::testing::TempDir dir;
  auto store = memory::PageStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message();
  memory::ModelIdentity other = memory::model_identity(*rig->model);
  other.digest[0] ^= 0xFF;
  (void)run_crowd(*rig, store->get(), other);
  // The same tokens hash differently under another identity, so pages are simply absent: nothing
  // from the other model is ever used, and outputs stay the solo outputs (checked in run_crowd).
  const CrowdRun mine = run_crowd(*rig, store->get(), memory::model_identity(*rig->model));
  EXPECT_EQ(mine.stats.swap_errors, 0u);
}

// A sequence blocked (its process waiting on a syscall) loses its pages to a newcomer; its
// stored pages are prefetched when it is unblocked, or when the kernel calls prefetch() ahead of
// unblocking it, and then come back from memory: every page read back was prefetched, and both
// outputs are their solo outputs.
TEST(Swap, ABlockedSequenceSwappedOutComesBackFromPrefetchedPages) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  const memory::ModelIdentity identity = memory::model_identity(*rig->model);
  auto solo_backend = rig->backend(16, 64);
  ASSERT_TRUE(solo_backend.ok());
  for (const bool ahead : {false, true}) {
    SCOPED_TRACE(ahead ? "prefetch() while blocked" : "prefetched by unblock()");
    memory::testing::TempDir dir;
    auto store = memory::PageStore::open(dir.path());
    ASSERT_TRUE(store.ok()) << store.error().message();
    auto backend = rig->backend(kPageTokens, kPages);
    ASSERT_TRUE(backend.ok());
    Recorder recorder;
    SchedulerOptions options;
    options.token_budget = 64;
    options.model_identity = identity;
    options.page_store = store->get();
    auto s = make_scheduler(**backend, *rig, {PolicyKind::fifo}, &recorder, options);
    ASSERT_TRUE(s.ok()) << s.error().message();
    TinyRandom rng(5);
    SequenceSpec sa = spec(prompt_tokens(rng, 29), 10);
    SequenceSpec sb = spec(prompt_tokens(rng, 36), 8);
    sa.stop_at_end_of_generation = false;
    sb.stop_at_end_of_generation = false;
    const SequenceId a = (*s)->submit(sa).value();
    for (int i = 0; i < 50 && recorder.logs[a].tokens.size() < 3; ++i) {
      ASSERT_TRUE((*s)->step().ok());
      ++recorder.step;
    }
    ASSERT_EQ(recorder.logs[a].tokens.size(), 3u);
    ASSERT_TRUE((*s)->block(a).ok());
    // The newcomer needs more pages than are free: the blocked sequence's are taken (and stored).
    const SequenceId b = (*s)->submit(sb).value();
    ASSERT_TRUE((*s)->step().ok());
    ++recorder.step;
    ASSERT_EQ((*s)->info(a)->kv_pages, 0) << "the blocked sequence kept its pages";
    EXPECT_GT((*s)->stats().swap_out_pages, 0u);
    EXPECT_EQ((*s)->stats().prefetch_requested, 0u) << "nothing asked for before it is wanted";
    if (ahead) {
      ASSERT_TRUE((*s)->prefetch(a).ok());
      (*s)->wait_prefetch_idle();
      ASSERT_TRUE((*s)->unblock(a).ok());
    } else {
      ASSERT_TRUE((*s)->unblock(a).ok());
      (*s)->wait_prefetch_idle();
    }
    const SchedulerStats staged = (*s)->stats();
    EXPECT_GT(staged.prefetch_requested, 0u);
    EXPECT_EQ(staged.prefetch_staged, staged.prefetch_requested);
    EXPECT_EQ(staged.swap_in_pages, 0u);
    ASSERT_TRUE(drive(**s, recorder, 500).ok());

    const SchedulerStats done = (*s)->stats();
    EXPECT_GT(done.swap_in_prefetched, 0u);
    EXPECT_EQ(done.swap_in_prefetched, done.swap_in_pages) << "every page came from staging";
    EXPECT_EQ(done.swap_in_prefetched, staged.prefetch_staged);
    EXPECT_EQ(done.prefetch_unused, 0u);
    EXPECT_EQ(done.swap_errors, 0u);
    EXPECT_EQ(done.kv_pages_free, kPages);
    for (const auto& [id, sp] : {std::pair{a, sa}, std::pair{b, sb}}) {
      auto want = solo(**solo_backend, rig->tokenizer(), sp.prompt, sp.sampling, false);
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(recorder.logs[id].tokens, want->tokens) << "sequence " << id;
    }
    // A finished sequence has nothing to prefetch.
    EXPECT_FALSE((*s)->prefetch(a).ok());
    EXPECT_FALSE((*s)->prefetch(999).ok());
  }
}

TEST(Swap, AStoreNeedsTheModelsIdentity) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  auto backend = rig->backend(kPageTokens, kPages);
  ASSERT_TRUE(backend.ok());
  memory::testing::TempDir dir;
  auto store = memory::PageStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  SchedulerOptions options;
  options.page_store = store->get();
  Recorder recorder;
  auto s = make_scheduler(**backend, *rig, {PolicyKind::fifo}, &recorder, options);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("identity"), std::string::npos);
}

}  // namespace
}  // namespace icam::sched::testing
