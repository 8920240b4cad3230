// Completions of blocking syscalls. A tool call may block its process: the handler answers "pending"
// (a ticket), the process waits with its sequence paused, and the engine steps everyone else. When
// the result is ready -- a driver answered on a worker thread, a person answered human.ask, a
// message or a child's exit arrived -- the handler reports it here, from any thread. The engine
// thread drains the queue once per loop iteration (AgentLoop::deliver_completions) and resumes the
// process's turn with the result as its tool message.
//
// A completion names the process and the ticket it answers. One that finds its process exited, or
// waiting on another ticket (a late answer to a call that was cancelled), is dropped: the kernel
// never resumes a process with a result it is not waiting for.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/process.h"

namespace icam::kernel {

// Names one pending call; unique within a kernel, never 0.
using CallTicket = uint64_t;

struct Completion {
  Pid pid = 0;
  CallTicket ticket = 0;
  Result<std::string> result;  // the tool's result text, or the error given to the model
};

// Where handlers report completed calls. Thread-safe.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  virtual void complete(Pid pid, CallTicket ticket, Result<std::string> result) = 0;
};

// The agent loop's sink: a queue the engine thread drains, and a way to wake it.
class CompletionQueue final : public CompletionSink {
 public:
  // Queues the completion, then calls the wake function (outside the lock).
  void complete(Pid pid, CallTicket ticket, Result<std::string> result) override;
  // Everything queued, oldest first.
  std::vector<Completion> drain();
  // Waits until something is queued or `timeout` passes; true when something is queued.
  bool wait_for(std::chrono::milliseconds timeout);
  bool empty() const;
  // Called after each completion is queued, on the completing thread: the daemon's engine thread
  // uses it to wake from its idle wait. Must not call back into the queue.
  void set_wake(std::function<void()> wake);

 private:
  mutable std::mutex mutex_;
  std::condition_variable queued_;
  std::vector<Completion> queue_;
  std::function<void()> wake_;
};

}  // namespace icam::kernel
