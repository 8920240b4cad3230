#include "sched/round_robin_policy.h"

#include <algorithm>

namespace icam::sched {

void RoundRobinPolicy::add(SequenceId id, int /*priority*/) {
  ring_.push_back(id);
  used_[id] = 0;
}

void RoundRobinPolicy::remove(SequenceId id) {
  auto it = std::find(ring_.begin(), ring_.end(), id);
  if (it != ring_.end()) ring_.erase(it);
  used_.erase(id);
}

void RoundRobinPolicy::order(std::vector<SequenceId>& out) const {
  out.assign(ring_.begin(), ring_.end());
}

void RoundRobinPolicy::charge(SequenceId id, int tokens) {
  auto it = used_.find(id);
  if (it != used_.end()) it->second += tokens;
}

void RoundRobinPolicy::end_step() {
  // Every sequence whose quantum is spent rotates to the back, keeping their relative order, so
  // a batch that served several of them hands the front to the ones that waited.
  std::deque<SequenceId> stay, rotate;
  for (SequenceId id : ring_) {
    int& used = used_[id];
    if (used >= quantum_) {
      used = 0;
      rotate.push_back(id);
    } else {
      stay.push_back(id);
    }
  }
  ring_ = std::move(stay);
  ring_.insert(ring_.end(), rotate.begin(), rotate.end());
}

}  // namespace icam::sched
