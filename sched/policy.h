// A scheduling policy: decides, before every step, the order in which runnable sequences are
// offered a place in the batch, and learns after every step how much service each one got.
//
// The scheduler keeps the policy's view of the runnable set exact: add() when a sequence becomes
// runnable (submitted, resumed, unblocked), remove() when it stops being runnable (paused, blocked,
// finished), forget() when it is released. Preemption does not change runnability: a preempted
// sequence stays in the order and is re-admitted when it comes first and pages allow.
//
// The order has three uses: the batch is filled from its front (max_batch, token budget), KV pages
// are admitted in it, and when pages run out the sequences at its back are preempted first.
//
// Thread-safety: called only from the scheduler's engine thread.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sched/sequence.h"

namespace icam::sched {

class Policy {
 public:
  virtual ~Policy() = default;

  virtual std::string_view name() const = 0;

  // `id` becomes runnable. Never called for an id that is runnable already. `priority` is in
  // [kMinPriority, kMaxPriority].
  virtual void add(SequenceId id, int priority) = 0;
  // `id` stops being runnable; it may be added again later (a policy may remember its history).
  virtual void remove(SequenceId id) = 0;
  // `id` is gone for good; drop anything remembered about it. It is not runnable.
  virtual void forget(SequenceId id) = 0;

  // Replaces `out` with every runnable sequence, the first to be served first.
  virtual void order(std::vector<SequenceId>& out) const = 0;

  // `tokens` of service `id` got in the step just run: every token fed to the engine for it,
  // prefill, recompute and decode alike (they cost the engine the same). Called once per member
  // of the step's batch, before end_step().
  virtual void charge(SequenceId id, int tokens) = 0;
  // Called once after each step's charges; sequences finished by the step are already removed.
  virtual void end_step() {}
};

enum class PolicyKind { fifo, round_robin, fair_share };

struct PolicyOptions {
  PolicyKind kind = PolicyKind::fair_share;
  int quantum = 16;  // round robin: tokens of service per turn, >= 1
};

// "fifo", "round_robin" (or "rr"), "fair_share" (or "fair").
Result<PolicyKind> parse_policy_kind(std::string_view name);
std::string_view policy_kind_name(PolicyKind kind);

Result<std::unique_ptr<Policy>> make_policy(const PolicyOptions& options);

}  // namespace icam::sched
