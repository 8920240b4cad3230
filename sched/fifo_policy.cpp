#include "sched/fifo_policy.h"

namespace icam::sched {

void FifoPolicy::add(SequenceId id, int /*priority*/) {
  const uint64_t ticket = next_ticket_++;
  queue_.emplace(ticket, id);
  tickets_[id] = ticket;
}

void FifoPolicy::remove(SequenceId id) {
  auto it = tickets_.find(id);
  if (it == tickets_.end()) return;
  queue_.erase(it->second);
  tickets_.erase(it);
}

void FifoPolicy::order(std::vector<SequenceId>& out) const {
  out.clear();
  for (const auto& [ticket, id] : queue_) out.push_back(id);
}

}  // namespace icam::sched
