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

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "kernel/completion_queue.h"
#include "kernel/job.h"
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

// A call that completes later: the handler gave it `ticket` and reports its result through the
// CompletionSink it was attached to (completion_queue.h). `waiting_on` says what the process waits
// for, for people ("human.ask: may I delete build/?", "proc.wait 4"); it shows in `icamctl ps`.
struct PendingCall {
  CallTicket ticket = 0;
  std::string waiting_on;
};

// What starting a call gives: the result now, or a pending call.
using CallStart = std::variant<Result<std::string>, PendingCall>;

// A tool of an external driver (tool.call), as the driver listed it: shown to the model in the
// tool instructions.
struct ExternalTool {
  std::string driver;  // the job's name for the driver
  std::string name;
  std::string description;
  // The inputSchema reduced to syscalls/arg_schema.h's subset (supported_schema), against which
  // tool.call checks the arguments; null when the driver's schema goes beyond the subset (the
  // arguments are then only checked to be an object and the driver checks them itself).
  nlohmann::json checked_schema;
};

// What a handler may ask of the kernel's process table (the agent loop implements it): the
// process-management syscalls (proc.spawn, proc.kill) go through it. Engine thread only.
class ProcessControl {
 public:
  virtual ~ProcessControl() = default;
  // Spawns a child of `parent` for `job`, acting for the parent's owner. The handler's on_spawn
  // runs for it as for any process.
  virtual Result<Pid> spawn_child(const JobSpec& job, Pid parent) = 0;
  // Ends a live process with ExitReason::cancelled (its own children with it).
  virtual Status kill(Pid pid) = 0;
};

// Serves tool calls other than proc.exit. Contract: a result text given back to the model, or an
// error whose message is given back to the model as {"error": message}. Must not change `process`
// except its accounting. Called on the engine thread.
class SyscallHandler {
 public:
  virtual ~SyscallHandler() = default;
  // Serves a call to completion on the calling thread.
  virtual Result<std::string> call(Process& process, const std::string& name,
                                   const nlohmann::json& arguments) = 0;
  // Starts a call the agent loop may block its process on: the result now (fast calls), or a
  // PendingCall whose completion the handler later reports exactly once through the sink given to
  // attach() -- unless the process exits first, when the handler may drop it (a late completion
  // is dropped by the loop anyway). The default serves it with call().
  virtual CallStart start(Process& process, const std::string& name,
                          const nlohmann::json& arguments) {
    return call(process, name, arguments);
  }
  // The agent loop hands the handler its completion sink and its process table once, when the
  // loop is made. The sink may outlive the loop (the handler keeps it for its worker threads).
  virtual void attach(std::shared_ptr<CompletionSink> /*sink*/, ProcessControl* /*control*/) {}
  // Called on every kernel step with the time: pending calls whose deadline passed complete
  // with a timed_out error.
  virtual void tick(std::chrono::steady_clock::time_point /*now*/) {}
  // The agent loop tells the handler about each process's life, so per-process state (granted
  // capabilities, a workspace, warm drivers) starts with it and ends with it.
  // on_spawn: before the process's first turn; it may fill process.capabilities. An error refuses
  // the spawn (the process is not created, and on_exit is not called for it).
  virtual Status on_spawn(Process& /*process*/, const JobSpec& /*job*/) { return ok_status(); }
  // on_exit: once, when a process that on_spawn accepted exits (or its spawn failed later on).
  // A call still pending for it is cancelled here: its drivers stopped, its threads joined.
  virtual void on_exit(const Process& /*process*/) {}
  // The tools of the external drivers `job` declares (what each lists and the job allows), for
  // the tool instructions in the prompt, which is made before on_spawn. Engine thread. The same
  // job gets the same answer (the prompt of a revived process must match its transcript).
  virtual std::vector<ExternalTool> external_tools(const JobSpec& /*job*/) { return {}; }
  // The context budget (agent_loop.h): `text`, moved out of `process`'s context, is kept in the
  // process's archival memory, where its mem.recall finds it. Engine thread. The default keeps
  // no archive (unavailable): the loop then drops the text and says so in the context.
  virtual Status archive_context(const Process& /*process*/, std::string_view /*text*/) {
    return make_error(Errc::unavailable, "no archival memory");
  }
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
    blocked,  // the call is pending: the process waits for `pending` to complete
  };
  Kind kind = Kind::resume;
  std::string text;
  PendingCall pending;  // for blocked
};

// Parses and serves the tool call ending `turn_text` on behalf of `process`: counts it in
// process.accounting.syscalls, enforces the syscall budget (proc.exit is always allowed, so a
// process can always exit), runs proc.exit itself and everything else through `handler`.
// Malformed calls, calls to tools the job did not list, and handler errors become resume
// outcomes whose text is a JSON object {"error": "..."}; a call the handler left pending is a
// blocked outcome (its result, once complete, goes through tool_result_text()).
ToolOutcome execute_tool_call(Process& process, std::string_view turn_text,
                              SyscallHandler& handler);

// The tool message text for a handler's result: the text itself, or {"error": message}.
std::string tool_result_text(const Result<std::string>& result);

// The paragraph appended to the system message that tells the model how to call `tools`: each
// one's name, argument signature and summary from the syscall table (proc.exit always). When
// `tools` holds tool.call, the `external` tools follow it, one line each: the driver, the tool,
// the signature of its checked schema ("object" when it has none) and its description (one line, at
// most kMaxToolDescriptionBytes: it is the driver's text, not the kernel's).
std::string tool_instructions(const std::vector<std::string>& tools,
                              const std::vector<ExternalTool>& external = {});
inline constexpr size_t kMaxToolDescriptionBytes = 300;

}  // namespace icam::kernel
