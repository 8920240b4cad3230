// The policies as the scheduler applies them: with room for one sequence per step, who is served
// when; and under a continuous stream of high-priority arrivals, that a low-priority sequence
// still gets its tokens (fair share and round robin), where a strict-priority order starves it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

// Who a step served, and how many tokens each.
using Served = std::vector<std::pair<SequenceId, int>>;

Served served_by(const StepPlan& plan) {
  Served out;
  for (const StepMember& m : plan.members) out.push_back({m.id, m.count});
  return out;
}

struct Rig {
  TinyRig tiny;
  std::unique_ptr<llm::CpuBackend> backend;
};

Rig make(int pages = 256) {
  Rig r;
  auto tiny = make_rig();
  EXPECT_TRUE(tiny.ok()) << tiny.error().message();
  r.tiny = std::move(*tiny);
  auto backend = r.tiny.backend(8, pages);
  EXPECT_TRUE(backend.ok());
  r.backend = std::move(*backend);
  return r;
}

SequenceSpec endless(TinyRandom& rng, int prompt, int max_tokens, int priority = kDefaultPriority) {
  SequenceSpec s = spec(prompt_tokens(rng, prompt), max_tokens, priority);
  s.stop_at_end_of_generation = false;
  return s;
}

TEST(PolicyOrder, FifoRunsEachSequenceToTheEndInArrivalOrder) {
  Rig r = make();
  Recorder recorder;
  SchedulerOptions options;
  options.max_batch = 1;
  auto s = make_scheduler(*r.backend, r.tiny, {PolicyKind::fifo}, &recorder, options).value();
  TinyRandom rng(1);
  // Priorities are ignored by FIFO.
  const SequenceId a = s->submit(endless(rng, 6, 5, 1)).value();
  const SequenceId b = s->submit(endless(rng, 3, 5, 100)).value();
  const SequenceId c = s->submit(endless(rng, 9, 5, 50)).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  std::vector<SequenceId> want;
  for (SequenceId id : {a, b, c}) want.insert(want.end(), 5, id);
  EXPECT_EQ(recorder.token_order, want);
}

TEST(PolicyOrder, RoundRobinHandsTheTurnOnAfterTheQuantum) {
  Rig r = make();
  Recorder recorder;
  SchedulerOptions options;
  options.max_batch = 1;
  constexpr int kQuantum = 3;
  auto s =
      make_scheduler(*r.backend, r.tiny, {PolicyKind::round_robin, kQuantum}, &recorder, options)
          .value();
  TinyRandom rng(2);
  std::vector<SequenceId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(s->submit(endless(rng, 2, 8)).value());

  std::vector<Served> steps;
  while (s->has_work()) {
    ASSERT_TRUE(s->step().ok());
    steps.push_back(served_by(s->last_step()));
    ASSERT_EQ(steps.back().size(), 1u);
    ASSERT_LT(steps.size(), 200u);
  }
  // Group the steps into turns (runs of one sequence). A turn lasts until the quantum is used up
  // and not a step longer; only a sequence's last turn may end short (it finished).
  std::map<SequenceId, int> turns;
  size_t i = 0;
  while (i < steps.size()) {
    const SequenceId id = steps[i][0].first;
    int used = 0, before_last = 0;
    size_t j = i;
    for (; j < steps.size() && steps[j][0].first == id; ++j) {
      before_last = used;
      used += steps[j][0].second;
    }
    const bool last_turn = std::none_of(steps.begin() + j, steps.end(),
                                        [&](const Served& st) { return st[0].first == id; });
    EXPECT_LT(before_last, kQuantum) << "sequence " << id << " kept the turn past its quantum";
    if (!last_turn) {
      EXPECT_GE(used, kQuantum) << "sequence " << id << " lost its turn early";
    }
    ++turns[id];
    i = j;
  }
  // 2 prompt + 7 decode tokens each, 3 a turn: three turns each, interleaved.
  for (SequenceId id : ids) EXPECT_EQ(turns[id], 3) << "sequence " << id;
}

TEST(PolicyOrder, FairShareServesInProportionToPriority) {
  Rig r = make();
  Recorder recorder;
  SchedulerOptions options;
  options.max_batch = 1;
  auto s = make_scheduler(*r.backend, r.tiny, {PolicyKind::fair_share}, &recorder, options).value();
  TinyRandom rng(3);
  const SequenceId high = s->submit(endless(rng, 4, 200, 30)).value();
  const SequenceId low = s->submit(endless(rng, 4, 200, 10)).value();
  std::map<SequenceId, int> tokens;
  for (int i = 0; i < 120; ++i) {
    ASSERT_TRUE(s->step().ok());
    for (const auto& [id, n] : served_by(s->last_step())) tokens[id] += n;
  }
  EXPECT_EQ(tokens[high] + tokens[low], 120 + 6);
  EXPECT_NEAR(tokens[high], 3 * tokens[low], 4) << tokens[high] << " vs " << tokens[low];
}

// The order a naive scheduler would use: highest priority first, always. It starves the low
// priority sequence in the scenario below, which shows the scenario can tell.
class StrictPriorityPolicy final : public Policy {
 public:
  std::string_view name() const override { return "strict_priority"; }
  void add(SequenceId id, int priority) override { runnable_[id] = priority; }
  void remove(SequenceId id) override { runnable_.erase(id); }
  void forget(SequenceId id) override { runnable_.erase(id); }
  void order(std::vector<SequenceId>& out) const override {
    out.clear();
    for (const auto& [id, p] : runnable_) out.push_back(id);
    std::stable_sort(out.begin(), out.end(),
                     [&](SequenceId a, SequenceId b) { return runnable_.at(a) > runnable_.at(b); });
  }
  void charge(SequenceId, int) override {}

 private:
  std::map<SequenceId, int> runnable_;
};

struct StreamResult {
  std::vector<uint64_t> low_token_steps;
  std::optional<FinishReason> low_finished;
  int high_submitted = 0;
};

// A low-priority sequence wanting 10 tokens, and from the same step on a high-priority arrival
// every second step until step kStreamSteps, each wanting 4 tokens. With two sequences a step, the
// arrivals alone keep the batch full.
constexpr int kStreamSteps = 400;

StreamResult run_stream(std::unique_ptr<Policy> policy) {
  Rig r = make(1024);
  Recorder recorder;
  SchedulerOptions options;
  options.max_batch = 2;
  options.token_budget = 16;
  auto s = Scheduler::create(*r.backend, r.tiny.tokenizer(), std::move(policy), &recorder, options)
               .value();
  TinyRandom rng(4);
  StreamResult out;
  const SequenceId low = s->submit(endless(rng, 8, 10, 10)).value();
  std::vector<SequenceId> finished;
  recorder.finish_hook = [&](SequenceId id, FinishReason) { finished.push_back(id); };
  auto arrivals = [&](uint64_t step) {
    if (step < kStreamSteps && step % 2 == 0) {
      EXPECT_TRUE(s->submit(endless(rng, 4, 4, 40)).ok());
      ++out.high_submitted;
    }
    // Keep the scheduler's records small: finished sequences are released.
    for (SequenceId id : finished)
      if (id != low) {
        EXPECT_TRUE(s->release(id).ok());
      }
    finished.clear();
  };
  EXPECT_TRUE(drive(*s, recorder, kStreamSteps, arrivals).ok());
  out.low_token_steps = recorder.logs[low].token_steps;
  out.low_finished = recorder.logs[low].finished;
  return out;
}

class NoStarvation : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(NoStarvation, LowPriorityProgressesUnderAStreamOfHighPriorityArrivals) {
  StreamResult r = run_stream(make_policy({GetParam(), 4}).value());
  ASSERT_TRUE(r.low_finished.has_value())
      << "the low-priority sequence did not finish in " << kStreamSteps << " steps";
  EXPECT_EQ(*r.low_finished, FinishReason::max_tokens);
  ASSERT_EQ(r.low_token_steps.size(), 10u);
  // It finished while high-priority work was still arriving, each token within a bounded wait.
  EXPECT_LT(r.low_token_steps.back(), static_cast<uint64_t>(kStreamSteps) / 4);
  uint64_t previous = 0, longest = 0;
  for (uint64_t step : r.low_token_steps) {
    longest = std::max(longest, step - previous);
    previous = step;
  }
  EXPECT_LE(longest, 30u) << "the longest wait for a token, in steps";
  EXPECT_EQ(r.high_submitted, kStreamSteps / 2);
}

INSTANTIATE_TEST_SUITE_P(Policies, NoStarvation,
                         ::testing::Values(PolicyKind::fair_share, PolicyKind::round_robin),
                         [](const auto& p) { return std::string(policy_kind_name(p.param)); });

TEST(NoStarvation, StrictPriorityStarvesTheSameScenario) {
  StreamResult r = run_stream(std::make_unique<StrictPriorityPolicy>());
  EXPECT_FALSE(r.low_finished.has_value());
  EXPECT_LT(r.low_token_steps.size(), 10u);
}

}  // namespace
}  // namespace icam::sched::testing
