// The agent loop: turns processes into scheduler sequences and scheduler events into process
// state changes. It is the SchedulerEvents of one Scheduler and runs on its engine thread.
//
// The prompt is the job's system message (with tool_instructions() appended when the job lists
// tools) and its task as the user message, in the model's chat format.
// One process is one sequence, submitted with stop string "</tool_call>" and OnStop::pause:
//   - a turn paused on that stop string is a tool call: it is parsed and served
//     (execute_tool_call); proc.exit ends the process, anything else is answered with a tool
//     message appended to the context, and the turn resumes;
//   - a turn that ends without a tool call (end of generation, a per-turn max_tokens) completes
//     the process with the turn's text as its answer;
//   - budgets: each turn's max_tokens is capped at the tokens left in the budget, and a process
//     whose turn stops there exits with budget_tokens; check_wall_budgets() ends processes past
//     their wall-clock budget; execute_tool_call enforces the syscall budget.
// When a process exits its sequence is released at once, so its KV pages go back to the pool.
// Many processes share the scheduler, so every step batches all of them (continuous batching).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/tokenizer/chat_template.h"
#include "drivers/llm/tokenizer/tokenizer.h"
#include "kernel/job.h"
#include "kernel/process.h"
#include "kernel/tool_call.h"
#include "kernel/tool_call_filter.h"
#include "sched/events.h"
#include "sched/scheduler.h"

namespace icam::kernel {

// What the owner of the loop hears about processes. Either may be empty.
struct AgentCallbacks {
  // Text that became final for `pid`: the model's output (a tool call shows with its closing tag).
  std::function<void(Pid, std::string_view)> on_text;
  // `process` just exited (process.exit is set).
  std::function<void(const Process&)> on_exit;
};

class AgentLoop : public sched::SchedulerEvents {
 public:
  using Clock = std::chrono::steady_clock;

  // `tokenizer` must outlive the loop. `handler` serves every tool call but proc.exit; null means
  // NoSyscalls. The loop is created before its scheduler (which needs it as events) and attached.
  AgentLoop(const llm::Tokenizer& tokenizer, llm::ChatFamily family, SyscallHandler* handler);
  void attach(sched::Scheduler& scheduler) { scheduler_ = &scheduler; }
  void set_callbacks(AgentCallbacks callbacks) { callbacks_ = std::move(callbacks); }
  // Whether processes spawned from now on decode their tool calls under the tool-call grammar
  // (tool_call_filter.h). On by default; off only to measure what the model does unaided.
  void set_constrained_tool_calls(bool on) { constrained_tool_calls_ = on; }

  // Creates a process for `job`, acting for `owner_uid` (default: this process's user), and
  // submits its first turn. Errors (nothing is created): the
  // prompt cannot be rendered or encoded, or the scheduler refuses it (e.g. too long).
  Result<Pid> spawn(const JobSpec& job, Pid parent = 0,
                    std::optional<uint32_t> owner_uid = std::nullopt);

  // Ends a live process with ExitReason::cancelled. not_found for an unknown pid;
  // invalid_argument for one that already exited.
  Status cancel(Pid pid);

  // Ends every live process whose wall-clock budget ran out by `now` (budget_time).
  void check_wall_budgets(Clock::time_point now);

  // Ends every live process with ExitReason::error and `message` (after a failed engine step).
  void fail_all(const std::string& message);

  // Forgets an exited process (its record is no longer needed: the daemon keeps its own copy).
  // not_found for an unknown pid; invalid_argument for a live one.
  Status reap(Pid pid);

  const Process* process(Pid pid) const;
  std::vector<Pid> pids() const;
  size_t live_processes() const;

  // SchedulerEvents.
  void on_token(sched::SequenceId id, const llm::SampleResult& sample,
                std::string_view text) override;
  void on_pause(sched::SequenceId id, sched::FinishReason reason) override;
  void on_finish(sched::SequenceId id, sched::FinishReason reason) override;

  // The tokens appended to a paused turn to give the model `tool_result`: the end of the
  // assistant's turn, a tool message and the header of the next assistant turn, in `family`'s
  // chat format. Public for tests.
  static Result<std::string> tool_message_text(llm::ChatFamily family,
                                               std::string_view tool_result);

 private:
  struct Slot {
    Process process;
    sched::SequenceId sequence = 0;
    std::string turn_text;  // final text of the current turn
    std::shared_ptr<ToolCallFilter> tool_filter;  // null when tool calls are unconstrained
  };

  Slot* slot_for(sched::SequenceId id);
  int turn_max_tokens(const Slot& s) const;
  void exit(Slot& s, ExitReason reason, std::string answer, std::string error = {});
  void serve_tool_call(Slot& s);
  // The filter that keeps `tools`' calls well formed (built lazily: the vocabulary's bytes are
  // gathered once per loop).
  Result<std::shared_ptr<ToolCallFilter>> make_tool_filter(const std::vector<std::string>& tools);

  const llm::Tokenizer& tokenizer_;
  llm::ChatFamily family_;
  NoSyscalls no_syscalls_;
  SyscallHandler& handler_;
  sched::Scheduler* scheduler_ = nullptr;
  AgentCallbacks callbacks_;
  bool constrained_tool_calls_ = true;
  std::shared_ptr<const TokenBytes> token_bytes_;
  Pid next_pid_ = 1;
  std::map<Pid, Slot> slots_;
  std::map<sched::SequenceId, Pid> by_sequence_;  // live processes only
};

}  // namespace icam::kernel
