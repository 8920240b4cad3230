// Round robin with a token quantum. Runnable sequences wait in a ring; the one at the front is
// served until it has consumed `quantum` tokens of service in its turn, then goes to the back with
// a fresh quantum. Every sequence the batch has room for is served each step, so the ring decides
// who gets in when max_batch or the token budget is short. A turn ends at the first step boundary
// at or after the quantum (a long prefill chunk can overshoot it). New, resumed and unblocked
// sequences join at the back; priorities are ignored.
#pragma once

#include <deque>
#include <unordered_map>

#include "sched/policy.h"

namespace icam::sched {

class RoundRobinPolicy final : public Policy {
 public:
  // quantum >= 1 (make_policy checks it).
  explicit RoundRobinPolicy(int quantum) : quantum_(quantum) {}

  std::string_view name() const override { return "round_robin"; }
  void add(SequenceId id, int priority) override;
  void remove(SequenceId id) override;
  void forget(SequenceId id) override { remove(id); }
  void order(std::vector<SequenceId>& out) const override;
  void charge(SequenceId id, int tokens) override;
  void end_step() override;

  int quantum() const { return quantum_; }

 private:
  int quantum_;
  std::deque<SequenceId> ring_;
  std::unordered_map<SequenceId, int> used_;  // tokens of service in the current turn
};

}  // namespace icam::sched
