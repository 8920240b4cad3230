// The syscall table: one declarative entry per syscall an agent can make as a tool call. It is the
// single source for everything that names syscalls: which tools a job may list (kernel/job.cpp),
// how they are explained to the model (kernel/tool_call.cpp), how arguments are checked and which
// capability a call needs (the kernel's dispatcher), and docs/syscalls.md (syscalls_markdown()).
//
// An entry says what the call takes (a JSON Schema, arg_schema.h), what it returns, which
// capability kind it needs and how the capability's target is derived from the arguments, how
// dangerous it is (side-effect class), whether repeating it is harmless, how long it may take,
// and who serves it (the kernel itself, one of the built-in drivers and the driver's tool, or an
// external driver the job declares, for tool.call).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "syscalls/capability.h"

namespace icam::syscalls {

// How far a call's effects reach. The audit log records reads and pure calls as side effect
// "none", writes as "reversible" and irreversible calls as "irreversible", which decides what
// recovery may replay.
enum class SideEffectClass {
  pure,          // no effect outside the kernel, no outside state read (clock.now)
  read,          // reads outside state, changes nothing
  write,         // changes outside state in a way a later write can undo
  irreversible,  // cannot be undone (a file removed, a program run)
};
std::string_view side_effect_class_name(SideEffectClass effect);

// Who serves a call.
enum class Server {
  kernel,       // in the kernel (clock.now, proc.*, msg.*, human.ask; proc.exit in the agent loop)
  fs_driver,    // icam-driver-fs
  exec_driver,  // icam-driver-exec
  kv_driver,    // icam-driver-kv
  external,     // an external driver the job declares (tool.call): the arguments name it
};
std::string_view server_name(Server server);

// How the capability target is derived from the arguments.
enum class TargetRule {
  none,            // no capability is needed
  workspace_path,  // a path relative to the process's workspace, canonicalised before matching
  program_path,    // an absolute program path, canonicalised (exec)
  name,            // the argument as written (a kv namespace)
  constant,        // always target_default (tool:human.ask)
  children,        // spawn: how many live children the process would have after the call
  recipient,       // msg: who the argument names as seen from the caller: "parent", "children"
                   // (a direct child) or "pid/N" (any other process)
  driver_tool,     // tool.call: "DRIVER/TOOL" from the arguments /driver and /tool
};

struct SyscallSpec {
  std::string name;                   // "fs.read"
  std::string summary;                // one sentence, for the model and the docs
  nlohmann::json arguments;           // JSON Schema of the arguments object (arg_schema.h's subset)
  std::string result;                 // what a successful call returns
  std::optional<CapKind> capability;  // the capability kind it needs; none for pure calls
  TargetRule target = TargetRule::none;
  std::string target_argument;  // JSON pointer into the arguments: "/path", "/argv/0"
  std::string target_default;   // the target when that optional argument is absent
  SideEffectClass side_effect = SideEffectClass::pure;
  bool idempotent = true;  // repeating the call with the same arguments changes nothing more
  // A call that is not idempotent but is made again when a restarted kernel finds it was in
  // progress: a wait whose only effect is on kernel state that the restart rebuilt, so it cannot
  // take effect twice (proc.wait: a restarted kernel gives a parent its children's exit statuses
  // again, but those it was given; msg.recv: mailboxes do not survive a restart; human.ask: the
  // person is asked again). Other calls in progress at a crash have an unknown outcome.
  bool again_after_restart = false;
  std::chrono::milliseconds timeout{5000};  // how long the kernel waits for the answer
  Server server = Server::kernel;
  std::string driver_tool;  // the driver's tool that serves it ("read_file"); "" for the kernel
                            // and for external drivers (the arguments name the tool)
};

inline constexpr std::string_view kSyscallProcExit = "proc.exit";

// Every syscall, in a fixed order (grouped by kind).
const std::vector<SyscallSpec>& syscall_table();
// The entry for `name`, or null.
const SyscallSpec* find_syscall(std::string_view name);
// The names, in table order, comma-separated: for "known: ..." in error messages.
std::string syscall_names();

// Checks `arguments` against the entry's schema; errors name "/arguments/..." paths.
Status validate_syscall_arguments(const SyscallSpec& spec, const nlohmann::json& arguments);

// The raw capability target named by validated `arguments` (the argument at target_argument, or
// target_default): a workspace-relative path, a program path or a name, not yet resolved; for
// TargetRule::constant, target_default; for TargetRule::driver_tool, "DRIVER/TOOL". invalid_argument when the entry needs no capability, its
// target is computed by the kernel (children, recipient), or the argument is not a string.
Result<std::string> raw_capability_target(const SyscallSpec& spec, const nlohmann::json& arguments);

// The reference section of docs/syscalls.md, generated from the table (a test keeps the file in
// step with it).
std::string syscalls_markdown();

}  // namespace icam::syscalls
