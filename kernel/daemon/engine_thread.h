// The daemon's engine thread: it owns the Kernel (model, backend, scheduler, agent loop) and is
// the only thread that touches it. Other threads hand it work with post(); it reports what
// happened (new text, changed process records, counters) through a sink, once per step.
//
// The daemon keeps exited processes' records (ProcessDirectory), so the kernel forgets each
// process once its exit has been published: a long-running daemon does not grow with every job.
//
// Loop: run the posted commands, then one kernel step if any process can make progress; when none
// can, sleep until a command arrives (or, while processes are alive, at most kBudgetTick so that
// wall-clock budgets are enforced).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kernel/kernel.h"

namespace icam::daemon {

// What the engine thread publishes after a step or a batch of commands.
struct EngineReport {
  std::vector<std::pair<kernel::Pid, std::string>> text;  // new output, in order
  std::vector<nlohmann::json> records;                    // process records that changed
  nlohmann::json stats;                                   // kernel counters; null if unchanged
};

class EngineThread {
 public:
  using Command = std::function<void(kernel::Kernel&)>;
  // Called on the engine thread; must not block (the daemon posts the report to its I/O loop).
  using ReportSink = std::function<void(EngineReport)>;

  // Takes a created kernel and starts the thread.
  EngineThread(std::unique_ptr<kernel::Kernel> kernel, ReportSink sink);
  ~EngineThread();  // stop()
  EngineThread(const EngineThread&) = delete;
  EngineThread& operator=(const EngineThread&) = delete;

  // Runs `command` on the engine thread before its next step. Thread-safe. Commands posted after
  // stop() are dropped.
  void post(Command command);

  // From inside a command: runs `fn` on the engine thread right after the report that follows
  // the command has gone to the sink. A command's reply posted this way reaches the I/O thread
  // after the report, so a client that hears the reply and asks again sees the new state.
  void after_publish(std::function<void()> fn) { after_publish_.push_back(std::move(fn)); }

  // Finishes the current step, runs the commands already posted, and joins the thread. Idempotent.
  void stop();

  // The kernel's counters as JSON (what kernel.stats reports). Engine thread only.
  static nlohmann::json stats_json(const kernel::Kernel& kernel);

 private:
  void run();
  void publish(bool force_records);

  std::unique_ptr<kernel::Kernel> kernel_;
  ReportSink sink_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Command> commands_;
  bool stopping_ = false;

  // Engine-thread state: output and exits gathered by the kernel's callbacks during a step.
  EngineReport pending_;
  std::vector<kernel::Pid> exited_;  // reaped once their exit record is published
  std::vector<std::function<void()>> after_publish_;
  std::chrono::steady_clock::time_point last_full_publish_{};

  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace icam::daemon
