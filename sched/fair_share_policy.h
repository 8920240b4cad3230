// Weighted fair share in virtual token time. Each sequence has a virtual time that grows by
// tokens_served / priority; the runnable sequence with the smallest virtual time is served first
// (ties: the earlier arrival). Over any stretch where several sequences all want service, each one
// gets tokens in proportion to its priority.
//
// A sequence that becomes runnable (new, resumed, unblocked) starts at max(its own virtual time,
// the smallest virtual time among the runnable ones), so that time spent waiting or paused is not
// banked as credit: a newcomer cannot monopolise the engine, and neither can an old sequence
// coming back. Because a newcomer starts level with the least-served sequence and not below it, a
// stream of new arrivals, whatever their priority, cannot keep a low-priority sequence from being
// served: it advances the floor that every newcomer starts from.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "sched/policy.h"

namespace icam::sched {

class FairSharePolicy final : public Policy {
 public:
  std::string_view name() const override { return "fair_share"; }
  void add(SequenceId id, int priority) override;
  void remove(SequenceId id) override;
  void forget(SequenceId id) override;
  void order(std::vector<SequenceId>& out) const override;
  void charge(SequenceId id, int tokens) override;
  void end_step() override;

  // The virtual time of `id` (0 for an unknown id), and the floor newcomers start from.
  double virtual_time(SequenceId id) const;
  double floor() const;

 private:
  struct Entry {
    double vtime = 0;
    int weight = kDefaultPriority;
    uint64_t ticket = 0;  // first arrival, breaks ties
    bool runnable = false;
  };

  void advance_clock() { clock_ = floor(); }

  std::unordered_map<SequenceId, Entry> entries_;
  uint64_t next_ticket_ = 0;
  // The floor when last looked at; used while nothing is runnable. Never decreases.
  double clock_ = 0;
};

}  // namespace icam::sched
