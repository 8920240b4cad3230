// Tool calls: how an agent asks the kernel to do something, and how the answer goes back.
//
// Syntax (documented in docs/jobs.md and explained to the model by tool_instructions()): the model
// writes one line
//
//   <tool_call>{"name": "proc.exit", "arguments": {"answer": "..."}}</tool_call>
//
// The scheduler stops the turn at "</tool_call>" (a stop string, so the closing tag is not part of
// the turn's text) and pauses the sequence. The kernel takes the text after the last
// "<tool_call>" of the turn, parses it, and either ends the process (proc.exit) or answers with a
// tool message — the result, or a structured error {"error": "..."} — appended to the context
// before the turn resumes.
//
// Hand-off to the syscall layer: every call except the built-in proc.exit goes to a
// SyscallHandler. The kernel's is the SyscallDispatcher (syscall_dispatcher.h): the syscall table,
// capabilities, the audit log and the sandboxed drivers. The names a job may list and the
// instructions the model reads both come from the syscall table (syscalls/syscall_table.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kernel/process.h"

namespace icam::kernel {

inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

struct ToolCall {
  std::string name;
  nlohmann::json arguments;  // always an object
};

// Parses the JSON between the tags. Errors (invalid_argument): malformed JSON, not an object,
// "/name" missing or not a non-empty string, "/arguments" missing or not an object, another key.
Result<ToolCall> parse_tool_call(std::string_view body);

// Finds the call in a turn's text (which ends where "</tool_call>" began) and parses it. An error
// when the turn holds no "<tool_call>".
Result<ToolCall> extract_tool_call(std::string_view turn_text);

// Serves tool calls other than proc.exit. Contract: returns the result text given back to the
// model, or an error whose message is given back to the model as {"error": message}. Must not
// change `process` except its accounting. Called on the engine thread; must not block for long
// (asynchronous drivers come later; see syscall_dispatcher.h).
class SyscallHandler {
 public:
  virtual ~SyscallHandler() = default;
  virtual Result<std::string> call(Process& process, const std::string& name,
                                   const nlohmann::json& arguments) = 0;
  // The agent loop tells the handler about each process's life, so per-process state (granted
  // capabilities, a workspace, warm drivers) starts with it and ends with it.
  // on_spawn: before the process's first turn; it may fill process.capabilities. An error refuses
  // the spawn (the process is not created, and on_exit is not called for it).
  virtual Status on_spawn(Process& /*process*/, const JobSpec& /*job*/) { return ok_status(); }
  // on_exit: once, when a process that on_spawn accepted exits (or its spawn failed later on).
  virtual void on_exit(const Process& /*process*/) {}
};

// The handler used when none is given: every name is an unknown tool.
class NoSyscalls : public SyscallHandler {
 public:
  Result<std::string> call(Process& process, const std::string& name,
                           const nlohmann::json& arguments) override;
};

// What the agent loop does after a tool call.
struct ToolOutcome {
  enum class Kind {
    exit,    // the process exits with `text` as its answer (proc.exit)
    resume,  // `text` is appended as a tool message and the turn resumes
    budget,  // the syscall budget ran out; the process exits with budget_syscalls
  };
  Kind kind = Kind::resume;
  std::string text;
};

// Parses and serves the tool call ending `turn_text` on behalf of `process`: counts it in
// process.accounting.syscalls, enforces the syscall budget (proc.exit is always allowed, so a
// process can always exit), runs proc.exit itself and everything else through `handler`.
// Malformed calls, calls to tools the job did not list, and handler errors become resume
// outcomes whose text is a JSON object {"error": "..."}.
ToolOutcome execute_tool_call(Process& process, std::string_view turn_text,
                              SyscallHandler& handler);

// The paragraph appended to the system message that tells the model how to call `tools`: each
// one's name, argument signature and summary from the syscall table (proc.exit always).
std::string tool_instructions(const std::vector<std::string>& tools);

}  // namespace icam::kernel
