#include "sched/fair_share_policy.h"

#include <algorithm>
#include <limits>

namespace icam::sched {

double FairSharePolicy::floor() const {
  double least = std::numeric_limits<double>::infinity();
  for (const auto& [id, e] : entries_)
    if (e.runnable) least = std::min(least, e.vtime);
  // With nothing runnable the floor stays where it was; it never goes back (a runnable sequence's
  // time only grows, and every sequence joins at or above the floor).
  return least == std::numeric_limits<double>::infinity() ? clock_ : std::max(clock_, least);
}

void FairSharePolicy::add(SequenceId id, int priority) {
  const double start = floor();
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& e = it->second;
  if (inserted) e.ticket = next_ticket_++;
  e.weight = std::clamp(priority, kMinPriority, kMaxPriority);
  e.vtime = std::max(e.vtime, start);
  e.runnable = true;
}

void FairSharePolicy::remove(SequenceId id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.runnable) return;
  advance_clock();
  it->second.runnable = false;
}

void FairSharePolicy::forget(SequenceId id) {
  remove(id);
  entries_.erase(id);
}

void FairSharePolicy::order(std::vector<SequenceId>& out) const {
  std::vector<const std::pair<const SequenceId, Entry>*> runnable;
  for (const auto& kv : entries_)
    if (kv.second.runnable) runnable.push_back(&kv);
  std::sort(runnable.begin(), runnable.end(), [](const auto* a, const auto* b) {
    if (a->second.vtime != b->second.vtime) return a->second.vtime < b->second.vtime;
    return a->second.ticket < b->second.ticket;
  });
  out.clear();
  for (const auto* kv : runnable) out.push_back(kv->first);
}

void FairSharePolicy::charge(SequenceId id, int tokens) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.vtime += static_cast<double>(tokens) / it->second.weight;
}

void FairSharePolicy::end_step() {
  advance_clock();
}

double FairSharePolicy::virtual_time(SequenceId id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? 0.0 : it->second.vtime;
}

}  // namespace icam::sched
