// First come, first served: runnable sequences in the order they became runnable. A resumed or
// unblocked sequence joins at the back, as a new arrival would. Priorities are ignored. Under
// pressure the newest arrivals are preempted first.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>

#include "sched/policy.h"

namespace icam::sched {

class FifoPolicy final : public Policy {
 public:
  std::string_view name() const override { return "fifo"; }
  void add(SequenceId id, int priority) override;
  void remove(SequenceId id) override;
  void forget(SequenceId id) override { remove(id); }
  void order(std::vector<SequenceId>& out) const override;
  void charge(SequenceId, int) override {}

 private:
  uint64_t next_ticket_ = 0;
  std::map<uint64_t, SequenceId> queue_;  // arrival ticket -> sequence
  std::unordered_map<SequenceId, uint64_t> tickets_;
};

}  // namespace icam::sched
