#include "kernel/process.h"

#include <nlohmann/json.hpp>

namespace icam::kernel {

std::string_view process_state_name(ProcessState state) {
  switch (state) {
    case ProcessState::new_:
      return "new";
    case ProcessState::ready:
      return "ready";
    case ProcessState::running:
      return "running";
    case ProcessState::blocked:
      return "blocked";
    case ProcessState::exited:
      return "exited";
  }
  return "?";
}

std::string_view exit_reason_name(ExitReason reason) {
  switch (reason) {
    case ExitReason::completed:
      return "completed";
    case ExitReason::budget_tokens:
      return "budget_tokens";
    case ExitReason::budget_time:
      return "budget_time";
    case ExitReason::budget_syscalls:
      return "budget_syscalls";
    case ExitReason::cancelled:
      return "cancelled";
    case ExitReason::error:
      return "error";
  }
  return "?";
}

std::optional<ExitReason> exit_reason_from_name(std::string_view name) {
  for (ExitReason r : {ExitReason::completed, ExitReason::budget_tokens, ExitReason::budget_time,
                       ExitReason::budget_syscalls, ExitReason::cancelled, ExitReason::error})
    if (exit_reason_name(r) == name) return r;
  return std::nullopt;
}

double Accounting::wall_seconds() const {
  double total = 0;
  for (double s : state_seconds) total += s;
  return total;
}

void Process::set_state(ProcessState next, std::chrono::steady_clock::time_point now) {
  accounting.state_seconds[static_cast<size_t>(state)] +=
      std::chrono::duration<double>(now - state_since).count();
  state = next;
  state_since = now;
}

nlohmann::json to_json(const Process& p) {
  // A live process has also spent the time since its last change in its current state.
  std::array<double, kProcessStateCount> state_seconds = p.accounting.state_seconds;
  if (p.state != ProcessState::exited)
    state_seconds[static_cast<size_t>(p.state)] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - p.state_since).count();
  nlohmann::json seconds = nlohmann::json::object();
  double wall = 0;
  for (size_t i = 0; i < kProcessStateCount; ++i) {
    seconds[std::string(process_state_name(static_cast<ProcessState>(i)))] = state_seconds[i];
    wall += state_seconds[i];
  }
  nlohmann::json j = {
      {"pid", p.pid},
      {"parent", p.parent},
      {"name", p.name},
      {"owner_uid", p.owner_uid},
      {"state", process_state_name(p.state)},
      {"priority", p.priority},
      {"budgets",
       {{"tokens", p.budgets.tokens},
        {"wall_seconds", p.budgets.wall_seconds},
        {"syscalls", p.budgets.syscalls}}},
      {"capabilities", p.capabilities},
      {"tools", p.tools},
      {"sampling", llm::to_json(p.sampling)},
      {"accounting",
       {{"prompt_tokens", p.accounting.prompt_tokens},
        {"generated_tokens", p.accounting.generated_tokens},
        {"syscalls", p.accounting.syscalls},
        {"turns", p.accounting.turns},
        {"state_seconds", seconds},
        {"wall_seconds", wall}}},
  };
  // What a blocked process waits for (a pending syscall); absent otherwise.
  if (p.state == ProcessState::blocked && !p.blocked_on.empty()) j["blocked_on"] = p.blocked_on;
  if (p.exit) {
    j["exit"] = {{"reason", exit_reason_name(p.exit->reason)}, {"answer", p.exit->answer}};
    if (!p.exit->error.empty()) j["exit"]["error"] = p.exit->error;
  } else {
    j["exit"] = nullptr;
  }
  return j;
}

}  // namespace icam::kernel
