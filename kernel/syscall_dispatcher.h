// The kernel's syscall path: the SyscallHandler that turns an agent's tool call into a checked,
// audited syscall served in the kernel or by a sandboxed built-in driver.
//
//   tool call ─► syscall table entry (unknown name: error)
//             ─► arguments checked against the entry's JSON Schema (error naming the path)
//             ─► capability target derived from the arguments: fs paths are taken relative to
//                the process's workspace and canonicalised (links, "..") before matching
//             ─► CapabilityStore::authorize (the process's capabilities, granted from its job)
//             ─► audit intent, committed before any side effect: allow with the capability
//                used, or deny (then a "denied" completion, and the call is refused)
//             ─► served: clock.now in the kernel; fs.*, exec.run, kv.* by the process's driver
//                (started lazily in the sandbox, kept warm, stopped when the process exits)
//             ─► audit completion (ok or error, with the digest of the result)
//
// Denials, driver failures and audit failures are error values, which the agent loop gives the
// model as {"error": "..."}; nothing here ends the process or the kernel.
//
// For this slice calls are synchronous on the engine thread, bounded by the table's timeout
// (at most 25 s for exec.run): while a call runs, the engine does not step other processes.
// Asynchronous serving (the process blocked, the engine stepping on) is the next slice.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "kernel/audit/audit_log.h"
#include "kernel/process.h"
#include "kernel/process_drivers.h"
#include "kernel/tool_call.h"
#include "syscalls/capability_store.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {

struct DispatcherOptions {
  // The audit database; "" = no audit log. Opened (and recovered) on the first syscall, so
  // kernels whose processes make none create no file; a log that cannot be opened then refuses
  // every syscall (nothing runs unaudited).
  std::string audit_path;
  std::string audit_key_path;  // "" = audit_path + ".key"
  // Where icam-driver-fs, -exec and -kv are; "" = default_driver_dir().
  std::string driver_dir;
  // Where default workspaces are made (one fresh directory per process); "" =
  // default_workspace_root().
  std::string workspace_root;
};

// $TMPDIR/icam-workspaces-<uid>: for kernels whose owner configured no root.
std::filesystem::path default_workspace_root();

class SyscallDispatcher final : public SyscallHandler {
 public:
  static Result<std::unique_ptr<SyscallDispatcher>> create(DispatcherOptions options);
  ~SyscallDispatcher() override;

  Result<std::string> call(Process& process, const std::string& name,
                           const nlohmann::json& arguments) override;
  // Sets up the process's workspace (when it lists a driver-served tool, names a workspace or
  // uses ${workspace} in a capability) and grants the job's capabilities.
  Status on_spawn(Process& process, const JobSpec& job) override;
  // Stops the process's drivers and revokes its capabilities. Its workspace stays on disk: it
  // holds what the agent produced.
  void on_exit(const Process& process) override;

  // The workspace of a live process; empty when it has none (or is unknown).
  std::filesystem::path workspace(Pid pid) const;
  // How many drivers a live process has running.
  size_t running_drivers(Pid pid) const;
  // The audit log, opened now if need be; null when no audit path was configured.
  Result<audit::AuditLog*> audit_log();
  const syscalls::CapabilityStore& capabilities() const { return *store_; }

 private:
  struct ProcessState {
    std::filesystem::path workspace;  // canonical; empty: none
    std::unique_ptr<ProcessDrivers> drivers;
  };

  SyscallDispatcher(DispatcherOptions options, std::unique_ptr<syscalls::CapabilityStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}

  // Checks the call and, when allowed, returns the request as checked.
  Result<syscalls::Authorization> authorize(const Process& process, ProcessState& state,
                                            const syscalls::SyscallSpec& spec,
                                            const nlohmann::json& arguments);
  // Performs an allowed call; the result text, or the error to give the model.
  Result<std::string> serve(ProcessState& state, Pid pid, const syscalls::SyscallSpec& spec,
                            const nlohmann::json& arguments,
                            const syscalls::Authorization& authorization);

  DispatcherOptions options_;
  std::unique_ptr<syscalls::CapabilityStore> store_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::map<Pid, ProcessState> processes_;
};

}  // namespace icam::kernel
