// Swapping through the RocksDB page store (SchedulerOptions::page_store) on a KV pool far too
// small for everyone: preempted sequences' full pages are written to the store and read back
// instead of being recomputed, and every output is still its solo output. A later scheduler over
// the same store reads the pages back for the same prompts; pages stored for another model are
// refused and computed.
#include <gtest/gtest.h>

#include <string>
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
