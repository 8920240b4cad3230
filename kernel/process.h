// An agent process (L5): the kernel's record of one running job. It holds identity (pid, parent,
// owner), scheduling inputs (priority, budgets, sampling, capabilities) and accounting, and ends
// with an ExitStatus. The agent loop (agent_loop.h) drives the state machine:
//
//   new ─► ready ─► running ─► blocked (a tool call is served, or pending) ─► ready ...
//                      └────────────────────────────────────────► exited
//
// `ready` means queued in the scheduler but not yet producing tokens for the current turn;
// `running` means its sequence is producing tokens. Any state but `exited` may go to `exited`.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/sampling/sampling_params.h"
#include "kernel/job.h"

namespace icam::kernel {

using Pid = uint64_t;  // from 1; 0 means "no parent" (spawned by a user)

enum class ProcessState { new_, ready, running, blocked, exited };
inline constexpr size_t kProcessStateCount = 5;
std::string_view process_state_name(ProcessState state);

enum class ExitReason {
  completed,        // the model ended its turn without a tool call, or called proc.exit
  budget_tokens,    // generated tokens reached the token budget
  budget_time,      // wall-clock budget ran out
  budget_syscalls,  // more tool calls than the syscall budget
  cancelled,        // cancelled by a user or the kernel
  error,            // the engine or the scheduler failed for this process
};
std::string_view exit_reason_name(ExitReason reason);
// The reason exit_reason_name() names; nullopt for any other text.
std::optional<ExitReason> exit_reason_from_name(std::string_view name);

struct ExitStatus {
  ExitReason reason = ExitReason::completed;
  std::string answer;  // the final answer: proc.exit's "answer", or the last turn's text
  std::string error;   // what failed, for ExitReason::error
};

struct Accounting {
  int64_t prompt_tokens = 0;     // the rendered prompt plus every appended tool message
  int64_t generated_tokens = 0;  // sampled tokens, all turns
  int64_t syscalls = 0;          // tool calls made (well-formed or not)
  int turns = 0;                 // model turns started
  // Seconds spent in each state, indexed by ProcessState.
  std::array<double, kProcessStateCount> state_seconds{};
  double wall_seconds() const;  // sum of state_seconds
};

struct Process {
  Pid pid = 0;
  Pid parent = 0;
  std::string name;
  uint32_t owner_uid = 0;  // the user the process acts for (getuid() of the spawner for now)
  ProcessState state = ProcessState::new_;
  int priority = 10;
  Budgets budgets;
  std::vector<std::string> capabilities;  // none yet; the syscall layer (L4) fills this in
  std::vector<std::string> tools;         // from the job
  llm::SamplingParams sampling;
  Accounting accounting;
  std::optional<ExitStatus> exit;  // set exactly when state == exited
  // While blocked on a pending syscall: what it waits for ("human.ask: QUESTION", "proc.wait 4",
  // "exec.run"); empty otherwise.
  std::string blocked_on;

  // Moves to `next`, charging the time since the last change to the old state.
  void set_state(ProcessState next, std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point state_since{};
  std::chrono::steady_clock::time_point started{};
};

// The process record as JSON (what `icamctl run --json` prints).
nlohmann::json to_json(const Process& process);

}  // namespace icam::kernel
