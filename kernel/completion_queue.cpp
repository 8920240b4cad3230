#include "kernel/completion_queue.h"

namespace icam::kernel {

void CompletionQueue::complete(Pid pid, CallTicket ticket, Result<std::string> result) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Completion{pid, ticket, std::move(result)});
    wake = wake_;
  }
  queued_.notify_all();
  if (wake) wake();
}

std::vector<Completion> CompletionQueue::drain() {
  std::lock_guard lock(mutex_);
  std::vector<Completion> out = std::move(queue_);
  queue_.clear();
  return out;
}

bool CompletionQueue::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return queued_.wait_for(lock, timeout, [this] { return !queue_.empty(); });
}

bool CompletionQueue::empty() const {
  std::lock_guard lock(mutex_);
  return queue_.empty();
}

void CompletionQueue::set_wake(std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  wake_ = std::move(wake);
}

}  // namespace icam::kernel
