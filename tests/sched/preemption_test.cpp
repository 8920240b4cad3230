// A KV pool far too small for everyone at once: sequences are preempted and recomputed, every one
// still finishes with its solo output, and the pool is whole again at the end. A sequence that
// cannot fit the pool even alone finishes with context_full without disturbing the others.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

constexpr int kPageTokens = 4;
constexpr int kPages = 14;  // 56 positions; each sequence below needs up to 34

class Preemption : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(Preemption, ManySequencesInATinyPoolAllGetTheirSoloOutput) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  auto solo_backend = rig->backend(16, 64);
  auto backend = rig->backend(kPageTokens, kPages);
  ASSERT_TRUE(solo_backend.ok() && backend.ok());
  Recorder recorder;
  SchedulerOptions options;
  options.token_budget = 32;
  options.max_batch = 8;
  auto s = make_scheduler(**backend, *rig, {GetParam(), 6}, &recorder, options).value();

  TinyRandom rng(11);
  std::vector<SequenceSpec> specs;
  std::vector<SequenceId> ids;
  for (int i = 0; i < 10; ++i) {
    SequenceSpec sp = spec(prompt_tokens(rng, 6 + (i * 3) % 9), 8 + (i * 5) % 13, 1 + i * 7);
    sp.stop_at_end_of_generation = false;
    if (i % 3 == 1) {
      sp.sampling.temperature = 1.1f;
      sp.sampling.seed = 500 + i;
    }
    specs.push_back(sp);
    auto id = s->submit(sp);
    ASSERT_TRUE(id.ok()) << id.error().message();
    ids.push_back(*id);
  }

  bool saw_preempted = false;
  auto watch = [&](uint64_t) {
    for (SequenceId id : ids)
      if (s->info(id)->state == SequenceState::preempted) saw_preempted = true;
    EXPECT_LE(s->stats().kv_pages_used(), kPages);
  };
  ASSERT_TRUE(drive(*s, recorder, 3000, watch).ok());
  EXPECT_FALSE(s->has_work()) << "every sequence finished";

  int preemptions = 0, recomputed = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto want = solo(**solo_backend, rig->tokenizer(), specs[i].prompt, specs[i].sampling, false);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(recorder.logs[ids[i]].tokens, want->tokens) << "sequence " << i;
    EXPECT_EQ(recorder.logs[ids[i]].text, want->text) << "sequence " << i;
    EXPECT_EQ(recorder.logs[ids[i]].finished, FinishReason::max_tokens) << "sequence " << i;
    const SequenceInfo info = s->info(ids[i]).value();
    preemptions += info.stats.preemptions;
    recomputed += info.stats.recomputed_tokens;
  }
  const SchedulerStats stats = s->stats();
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.recomputed_tokens, 0u);
  EXPECT_EQ(stats.preemptions, static_cast<uint64_t>(preemptions));
  EXPECT_EQ(stats.recomputed_tokens, static_cast<uint64_t>(recomputed));
  EXPECT_TRUE(saw_preempted);
  EXPECT_EQ(stats.kv_pages_free, kPages);
}

INSTANTIATE_TEST_SUITE_P(Policies, Preemption,
                         ::testing::Values(PolicyKind::fifo, PolicyKind::round_robin,
                                           PolicyKind::fair_share),
                         [](const auto& p) { return std::string(policy_kind_name(p.param)); });

TEST(Preemption, ASequenceTooBigForThePoolFinishesWithContextFull) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  auto solo_backend = rig->backend(16, 64);
  auto backend = rig->backend(kPageTokens, 12);  // 48 positions
  ASSERT_TRUE(solo_backend.ok() && backend.ok());
  Recorder recorder;
  auto s = make_scheduler(**backend, *rig, {PolicyKind::fair_share}, &recorder).value();

  TinyRandom rng(12);
  SequenceSpec big = spec(prompt_tokens(rng, 10), 100);
  big.stop_at_end_of_generation = false;
  SequenceSpec small = spec(prompt_tokens(rng, 6), 10);
  small.stop_at_end_of_generation = false;
  const SequenceId ib = s->submit(big).value();
  const SequenceId is = s->submit(small).value();
  ASSERT_TRUE(drive(*s, recorder, 500).ok());

  // 48 positions hold the 10-token prompt and 38 generated tokens; the 39th has no position.
  auto want_big = solo(**solo_backend, rig->tokenizer(), big.prompt, big.sampling, false).value();
  std::vector<int32_t> prefix(want_big.tokens.begin(), want_big.tokens.begin() + 39);
  EXPECT_EQ(recorder.logs[ib].tokens, prefix);
  EXPECT_EQ(recorder.logs[ib].finished, FinishReason::context_full);
  auto want_small =
      solo(**solo_backend, rig->tokenizer(), small.prompt, small.sampling, false).value();
  EXPECT_EQ(recorder.logs[is].tokens, want_small.tokens);
  EXPECT_EQ(recorder.logs[is].finished, FinishReason::max_tokens);
  EXPECT_EQ(s->stats().kv_pages_free, 12);
}

TEST(Preemption, TheModelContextEndsAGenerationAsGenerateDoes) {
  auto rig = make_rig();  // context_length 256
  ASSERT_TRUE(rig.ok());
  auto solo_backend = rig->backend(16, 64);
  auto backend = rig->backend(16, 64);
  ASSERT_TRUE(solo_backend.ok() && backend.ok());
  Recorder recorder;
  auto s = make_scheduler(**backend, *rig, {PolicyKind::fifo}, &recorder).value();
  TinyRandom rng(13);
  SequenceSpec sp = spec(prompt_tokens(rng, 250), 50);
  sp.stop_at_end_of_generation = false;
  const SequenceId id = s->submit(sp).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  auto want = solo(**solo_backend, rig->tokenizer(), sp.prompt, sp.sampling, false).value();
  EXPECT_EQ(want.finish, "context_full");
  EXPECT_EQ(recorder.logs[id].tokens, want.tokens);
  EXPECT_EQ(recorder.logs[id].finished, FinishReason::context_full);
}

}  // namespace
}  // namespace icam::sched::testing
