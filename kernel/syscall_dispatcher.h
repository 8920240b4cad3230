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
//             ─► served: clock.now in the kernel, at once; fs.*, exec.run, kv.* by the process's
//                driver (started lazily in the sandbox, kept warm, stopped when the process
//                exits) on a worker thread; proc.*, msg.*, human.ask in the kernel, when their
//                event happens (a child exits, a message arrives, a person answers)
//             ─► audit completion (ok or error, with the digest of the result), when it completes
//
// Denials, driver failures and audit failures are error values, which the agent loop gives the
// model as {"error": "..."}; nothing here ends the process or the kernel.
//
// Blocking. start() (the agent loop's path) answers driver calls and waiting kernel calls with a
// PendingCall: the process blocks and the engine steps the others. A driver call runs on one
// worker thread per call (a process has at most one call in flight), which writes the audit
// completion and reports to the loop's CompletionSink. Kernel events complete on the engine
// thread. When a blocked process exits (killed, out of budget, the daemon draining) its call is
// cancelled: a driver mid-call is killed, the worker joined, a waiting call's audit completion
// written as an error; the loop drops any completion that still arrives.
// call() serves a call to completion on the calling thread (tools, benchmarks); it refuses the
// syscalls that wait for kernel events.
//
// Processes (proc.spawn/wait/kill): a child's capabilities are derived from its parent's
// (CapabilityStore::derive_for_child), never granted, and its tools are a subset of the
// parent's; it shares the parent's workspace. spawn:N bounds the live children. proc.wait and
// proc.kill reach only one's own children (wait) and descendants (kill).
// Messages (msg.send/recv): one bounded mailbox per process (kMailboxMessages, kMailboxBytes);
// a sender needs msg:parent, msg:children, msg:pid/N or msg:* for the receiver (same owner only).
// People (human.ask): the question waits until answer_human() (icamctl approve/deny through
// icamd) or the table's timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/result.h"
#include "kernel/audit/audit_log.h"
#include "kernel/process.h"
#include "memory/mailbox_store.h"
#include "kernel/process_drivers.h"
#include "kernel/tool_call.h"
#include "memory/archive_store.h"
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
  // Whether anyone can answer human.ask (a daemon); when not, it fails at once.
  bool human_answers = false;
  // The archival memory database (mem.store, mem.recall; memory/archive_store.h); "" = none, and
  // those calls fail. Opened on the first of them.
  std::string archive_path;
};

// The most text of an external tool's result given to the model; the rest is cut, saying so.
inline constexpr size_t kMaxToolResultBytes = 256 * 1024;

// Mailbox bounds per process.
inline constexpr size_t kMailboxMessages = 32;
inline constexpr size_t kMailboxBytes = 64 * 1024;

// $TMPDIR/icam-workspaces-<uid>: for kernels whose owner configured no root.
std::filesystem::path default_workspace_root();

class SyscallDispatcher final : public SyscallHandler {
 public:
  static Result<std::unique_ptr<SyscallDispatcher>> create(DispatcherOptions options);
  ~SyscallDispatcher() override;

  Result<std::string> call(Process& process, const std::string& name,
                           const nlohmann::json& arguments) override;
  CallStart start(Process& process, const std::string& name,
                  const nlohmann::json& arguments) override;
  void attach(std::shared_ptr<CompletionSink> sink, ProcessControl* control) override;
  void tick(std::chrono::steady_clock::time_point now) override;
  // Sets up the process's workspace (when it lists a driver-served tool, names a workspace or
  // uses ${workspace} in a capability) and grants the job's capabilities.
  Status on_spawn(Process& process, const JobSpec& job) override;
  // Cancels its pending call, stops the process's drivers and revokes its capabilities. Its
  // workspace stays on disk: it holds what the agent produced.
  void on_exit(const Process& process) override;
  // Stores moved context text in the process's archive namespace (as mem.store would), cut into
  // entries the archive accepts, tagged "context". unavailable when no archive is configured.
  Status archive_context(const Process& process, std::string_view text) override;
  // For the prompt, made before on_spawn: the tools of the job's drivers as listed the first
  // time this kernel met each declaration, by a short-lived instance in a scratch workspace
  // (only when the job's capabilities allow the program; otherwise none, and on_spawn refuses).
  // Kept per declaration, so later spawns (and revivals) get the same list without a start.
  std::vector<ExternalTool> external_tools(const JobSpec& job) override;
  // The tools a live process's external drivers listed (started in on_spawn).
  std::vector<ExternalTool> external_tools(Pid pid) const;

  // Answers the human.ask `pid` waits on: {"answer": text, "approved": approved}. not_found when
  // it waits on no question.
  Status answer_human(Pid pid, bool approved, const std::string& text);
  // The question `pid` waits on; "" when none.
  std::string pending_question(Pid pid) const;

  // Messages are stored there (memory/mailbox_store.h) from now on, so a restart loses none; null
  // = kept in memory only. Set before any process starts; it must outlive the dispatcher.
  void set_mailboxes(memory::MailboxStore* store) { mailboxes_ = store; }
  // Puts a stored message back into live process `to`'s mailbox after a restart (in the order
  // sent; bounds not applied: it was accepted once). not_found when `to` is not a live process.
  Status restore_message(Pid to, Pid from, std::string body, int64_t id);

  // Tells live process `parent` how its child `child` ended before a restart (proc.wait answers
  // from it, as for a child that exits now). not_found when `parent` is not a live process here.
  Status restore_exited_child(Pid parent, Pid child, const ExitStatus& status);

  // The workspace of a live process; empty when it has none (or is unknown).
  std::filesystem::path workspace(Pid pid) const;
  // How many drivers a live process has running.
  size_t running_drivers(Pid pid) const;
  // The audit log, opened now if need be; null when no audit path was configured.
  Result<audit::AuditLog*> audit_log();
  const syscalls::CapabilityStore& capabilities() const { return *store_; }

 private:
  using Clock = std::chrono::steady_clock;

  // A driver call running on a worker thread, shared with it.
  struct InFlight {
    std::mutex mutex;
    pid_t driver_pid = 0;    // the driver serving the call, while it does
    int driver_pidfd = -1;   // a pidfd for it (-1 when the kernel has none)
    bool cancelled = false;  // the process exited: do not start another exchange
  };

  // A kernel call waiting for its event.
  struct Waiting {
    enum class Kind { human, child, message };
    Kind kind = Kind::human;
    CallTicket ticket = 0;
    std::string syscall;
    int64_t intent = 0;  // its audit intent (0: no audit log)
    Clock::time_point deadline;
    Pid child = 0;         // child: whom it waits for
    std::string question;  // human: what it asks
  };

  struct Message {
    Pid from = 0;
    std::string body;
    int64_t id = 0;  // the mailbox store's id, or this dispatcher's own number without one
  };

  struct ProcessState {
    std::filesystem::path workspace;  // canonical; empty: none
    std::unique_ptr<ProcessDrivers> drivers;
    Pid parent = 0;  // 0: none, or not a process of this dispatcher
    uint32_t owner = 0;
    std::vector<std::string> tools;
    std::thread worker;  // the last driver call's worker (joined before the next, and at exit)
    std::shared_ptr<InFlight> in_flight;
    std::optional<Waiting> waiting;
    std::deque<Message> mailbox;
    size_t mailbox_bytes = 0;
    // Stored messages msg.recv gave it, forgotten from the store at its next call (by then its
    // journal holds the results that gave them).
    std::vector<int64_t> delivered;
    std::set<Pid> children;                     // live children
    std::map<Pid, nlohmann::json> exited_children;  // how each ended, until waited for
    std::string archive_namespace;                  // mem.*: "<owner uid>/<job name>"
    std::vector<DriverSpec> external_drivers;       // tool.call: as the job declared them
    std::vector<ExternalDriverSetup> external_setups;  // ... with their programs checked
  };

  // A call checked, authorized and announced in the audit log.
  // A call with no side effect (a read or a pure call) is audited after it ran, intent and
  // completion in one transaction, before its result is released: nothing happened that the
  // intent would have had to precede, and one synchronous commit instead of two halves the cost
  // of the path. Everything else has its intent committed before it runs.
  struct DeferredIntent {
    Pid pid = 0;
    std::string args;  // the arguments as JSON text
    std::string capability;
    int64_t began_us = 0;  // the audit log's clock when the call began
  };
  struct Begun {
    const syscalls::SyscallSpec* spec = nullptr;
    ProcessState* state = nullptr;
    audit::AuditLog* log = nullptr;
    int64_t intent = 0;  // 0 while deferred
    syscalls::Authorization authorization;
    std::optional<DeferredIntent> deferred;
  };

  SyscallDispatcher(DispatcherOptions options, std::unique_ptr<syscalls::CapabilityStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}

  // Checks the call and, when allowed, returns the request as checked.
  Result<syscalls::Authorization> authorize(const Process& process, ProcessState& state,
                                            const syscalls::SyscallSpec& spec,
                                            const nlohmann::json& arguments);
  // The table entry, the argument check, the authorization and the audit intent (a denial is
  // recorded with its completion and returned as the error).
  Result<Begun> begin(const Process& process, const std::string& name,
                      const nlohmann::json& arguments);
  // Writes the audit completion of `intent` (or, for a deferred intent, the intent and the
  // completion together) for `result` and gives the result the syscall's name as context. A
  // deferred call whose records cannot be written gives no result: the model gets the audit
  // error instead. Any thread.
  Result<std::string> finish(audit::AuditLog* log, int64_t intent, const std::string& name,
                             Result<std::string> result,
                             const std::optional<DeferredIntent>& deferred = std::nullopt);
  // Performs an allowed call; the result text, or the error to give the model.
  Result<std::string> serve(ProcessState& state, Pid pid, const syscalls::SyscallSpec& spec,
                            const nlohmann::json& arguments,
                            const syscalls::Authorization& authorization);
  // The process's drivers, made now if need be.
  ProcessDrivers& drivers_of(ProcessState& state, Pid pid);
  // The driver part of serve(): any thread, one call per process at a time. `flight`, when set,
  // lets on_exit() kill the driver mid-call.
  static Result<std::string> serve_driver(ProcessDrivers& drivers,
                                          const syscalls::SyscallSpec& spec,
                                          const nlohmann::json& arguments,
                                          const syscalls::Authorization& authorization,
                                          InFlight* flight);
  // tool.call: the job's external driver (started afresh if it died), the tool it lists, the
  // arguments checked against its schema when supported, the result's text (or its failure).
  static Result<std::string> serve_external(ProcessDrivers& drivers,
                                            const nlohmann::json& arguments, InFlight* flight);
  // Checks the job's external drivers against the process's capabilities (exec: for each
  // program, net:*:* for one with the network), starts and lists them; on failure undoes the
  // spawn (capabilities revoked, a fresh default workspace removed).
  Status start_external_drivers(const Process& process, ProcessState& state, const JobSpec& job);
  // Lists the tools of `d` with a short-lived instance in a scratch workspace (external_tools).
  Result<std::vector<ExternalTool>> probe_driver_tools(const JobSpec& job, const DriverSpec& d);
  // The kernel's process, message and human syscalls: a result now, or a pending call.
  CallStart serve_process_call(Process& process, Begun& begun, const nlohmann::json& arguments);
  Result<std::string> spawn_child(Process& process, ProcessState& state,
                                  const nlohmann::json& arguments);
  Result<std::string> kill_descendant(const Process& process, const nlohmann::json& arguments);
  Result<std::string> send_message(const Process& process, ProcessState& state,
                                   const nlohmann::json& arguments);
  // Blocks the process on `waiting` (a PendingCall for the loop).
  PendingCall wait_for(ProcessState& state, Waiting waiting, std::string waiting_on);
  // Completes the call `pid` waits on with `result` (audit completion, then the loop's sink).
  void complete_waiting(Pid pid, ProcessState& state, Result<std::string> result);
  // Forgets from the store the messages `state` was given by its earlier calls.
  void forget_delivered(Pid pid, ProcessState& state);
  // `child` of `parent` ended: a proc.wait in progress is answered, else the status is kept.
  void child_exited(Pid parent, ProcessState& ps, Pid child, const ExitStatus& exit);
  // Stops a driver call in flight and joins its worker.
  static void cancel_worker(ProcessState& state);
  // Whether `pid` is a descendant of `ancestor` (through live processes).
  bool is_descendant(Pid pid, Pid ancestor) const;
  // The archive, opened now if need be (mem.*).
  Result<memory::ArchiveStore*> archive();

  DispatcherOptions options_;
  std::unique_ptr<syscalls::CapabilityStore> store_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<memory::ArchiveStore> archive_;
  std::mutex audit_mutex_;  // the log is written from the engine thread and driver workers
  std::map<Pid, ProcessState> processes_;
  std::shared_ptr<CompletionSink> sink_;
  ProcessControl* control_ = nullptr;
  CallTicket next_ticket_ = 1;
  memory::MailboxStore* mailboxes_ = nullptr;
  int64_t next_message_id_ = 1;  // without a store
  // external_tools(job): the listed tools per driver declaration (its JSON). Engine thread.
  std::map<std::string, std::vector<ExternalTool>> listed_tools_;
};

}  // namespace icam::kernel
