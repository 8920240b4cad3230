// The policies on their own: the order each one gives, how service moves it, and where newcomers
// and returning sequences land. Also the token budget split of a step.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sched/fair_share_policy.h"
#include "sched/fifo_policy.h"
#include "sched/round_robin_policy.h"
#include "sched/step_plan.h"

namespace icam::sched {
namespace {

std::vector<SequenceId> order_of(const Policy& p) {
  std::vector<SequenceId> out;
  p.order(out);
  return out;
}

using Ids = std::vector<SequenceId>;

TEST(FifoPolicy, ArrivalOrderIgnoringPriorityAndService) {
  FifoPolicy p;
  p.add(3, 1);
  p.add(1, 100);
  p.add(2, 50);
  EXPECT_EQ(order_of(p), (Ids{3, 1, 2}));
  p.charge(3, 1000);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{3, 1, 2}));
  // Coming back (resumed, unblocked) counts as a new arrival.
  p.remove(3);
  EXPECT_EQ(order_of(p), (Ids{1, 2}));
  p.add(3, 1);
  EXPECT_EQ(order_of(p), (Ids{1, 2, 3}));
  p.forget(1);
  EXPECT_EQ(order_of(p), (Ids{2, 3}));
}

TEST(RoundRobinPolicy, RotatesAfterTheQuantum) {
  RoundRobinPolicy p(4);
  p.add(1, 10);
  p.add(2, 10);
  p.add(3, 10);
  EXPECT_EQ(order_of(p), (Ids{1, 2, 3}));
  p.charge(1, 3);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{1, 2, 3})) << "3 tokens of a quantum of 4: still its turn";
  p.charge(1, 1);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{2, 3, 1}));
  // An overshooting chunk ends the turn too, and the next turn starts with a fresh quantum.
  p.charge(2, 9);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{3, 1, 2}));
  p.charge(3, 3);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{3, 1, 2}));
  // Several expiring in one step keep their relative order at the back.
  p.charge(3, 1);
  p.charge(1, 4);
  p.end_step();
  EXPECT_EQ(order_of(p), (Ids{2, 3, 1}));
  // Newcomers and returning sequences join at the back with a fresh quantum.
  p.add(4, 10);
  p.remove(2);
  p.add(2, 10);
  EXPECT_EQ(order_of(p), (Ids{3, 1, 4, 2}));
}

TEST(FairSharePolicy, ServiceIsProportionalToPriority) {
  FairSharePolicy p;
  p.add(1, 10);
  p.add(2, 30);
  p.add(3, 20);
  // Serve only the first of the order, one token a step, as a batch of one would.
  std::map<SequenceId, int> served;
  for (int i = 0; i < 600; ++i) {
    const SequenceId first = order_of(p).front();
    p.charge(first, 1);
    p.end_step();
    ++served[first];
  }
  EXPECT_NEAR(served[1], 100, 1);
  EXPECT_NEAR(served[2], 300, 1);
  EXPECT_NEAR(served[3], 200, 1);
}

TEST(FairSharePolicy, TiesGoToTheEarlierArrival) {
  FairSharePolicy p;
  p.add(7, 10);
  p.add(5, 10);
  EXPECT_EQ(order_of(p), (Ids{7, 5}));
}

TEST(FairSharePolicy, NewcomersStartAtTheFloorNotAtZero) {
  FairSharePolicy p;
  p.add(1, 10);
  p.add(2, 10);
  p.charge(1, 100);  // vtime 10
  p.charge(2, 50);   // vtime 5
  p.end_step();
  EXPECT_DOUBLE_EQ(p.floor(), 5.0);
  p.add(3, 100);
  EXPECT_DOUBLE_EQ(p.virtual_time(3), 5.0) << "a newcomer starts level with the least served";
  // Level with 2 but later: 2 goes first; then the newcomer, and 1 last.
  EXPECT_EQ(order_of(p), (Ids{2, 3, 1}));
}

TEST(FairSharePolicy, ReturningSequencesBankNoCredit) {
  FairSharePolicy p;
  p.add(1, 10);
  p.add(2, 10);
  p.charge(1, 10);  // 1
  p.end_step();
  p.remove(1);       // paused at vtime 1
  p.charge(2, 100);  // 2 runs alone to vtime 10
  p.end_step();
  p.add(1, 10);
  EXPECT_DOUBLE_EQ(p.virtual_time(1), 10.0) << "paused time is not credit";
  // One that is ahead of the floor when it comes back keeps its own time.
  p.charge(2, 50);  // 15
  p.end_step();
  p.remove(2);
  p.charge(1, 10);  // 11
  p.end_step();
  p.add(2, 10);
  EXPECT_DOUBLE_EQ(p.virtual_time(2), 15.0);
  EXPECT_EQ(order_of(p), (Ids{1, 2}));
  // With nothing runnable, the floor stays where it last was (2 alone at 15).
  p.remove(1);
  p.remove(2);
  p.add(9, 10);
  EXPECT_DOUBLE_EQ(p.virtual_time(9), 15.0);
  p.forget(1);
  EXPECT_DOUBLE_EQ(p.virtual_time(1), 0.0);
}

TEST(MakePolicy, KindsAndErrors) {
  auto fifo = make_policy({PolicyKind::fifo});
  ASSERT_TRUE(fifo.ok());
  EXPECT_EQ((*fifo)->name(), "fifo");
  auto rr = make_policy({PolicyKind::round_robin, 8});
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ((*rr)->name(), "round_robin");
  auto bad = make_policy({PolicyKind::round_robin, 0});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
  EXPECT_NE(bad.error().message().find("quantum"), std::string::npos);
  EXPECT_EQ(parse_policy_kind("rr").value_or(PolicyKind::fifo), PolicyKind::round_robin);
  EXPECT_EQ(parse_policy_kind("fair_share").value_or(PolicyKind::fifo), PolicyKind::fair_share);
  auto unknown = parse_policy_kind("lottery");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("lottery"), std::string::npos);
}

TEST(TokenBudget, DecodesAreServedAheadOfPrefills) {
  TokenBudget b(16, 3);
  EXPECT_EQ(b.take(StepKind::prefill, 100, 100), 13) << "three tokens are set aside for decodes";
  EXPECT_EQ(b.take(StepKind::prefill, 5, 100), 0);
  EXPECT_EQ(b.take(StepKind::decode, 1, 100), 1);
  EXPECT_EQ(b.take(StepKind::decode, 1, 100), 1);
  EXPECT_EQ(b.take(StepKind::decode, 1, 100), 1);
  EXPECT_EQ(b.left(), 0);
  EXPECT_EQ(b.take(StepKind::decode, 1, 100), 0);
}

TEST(TokenBudget, ChunkCapAndGiveBack) {
  TokenBudget b(16, 0);
  EXPECT_EQ(b.take(StepKind::prefill, 100, 6), 6);
  EXPECT_EQ(b.take(StepKind::prefill, 3, 6), 3);
  b.give_back(3);
  EXPECT_EQ(b.left(), 10);
  EXPECT_EQ(b.take(StepKind::prefill, 100, 100), 10);
}

TEST(TokenBudget, TheReserveNeverTakesTheWholeBudget) {
  // A budget of 1 with decodes waiting still lets the first prefill in the order through.
  TokenBudget b(1, 5);
  EXPECT_EQ(b.reserved(), 0);
  EXPECT_EQ(b.take(StepKind::prefill, 10, 10), 1);
  TokenBudget c(4, 9);
  EXPECT_EQ(c.reserved(), 3);
  EXPECT_EQ(c.take(StepKind::prefill, 10, 10), 1);
}

}  // namespace
}  // namespace icam::sched
