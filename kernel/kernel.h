// The kernel: one model, one CPU backend, one scheduler and the agent loop, driven by one thread.
// The daemon (kernel/daemon/) drives it from its engine thread with step(); `icamctl run` without
// a daemon embeds one and calls run_until_idle(). Not thread-safe: every call comes from the one
// thread that drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/model.h"
#include "kernel/agent_loop.h"
#include "kernel/job.h"
#include "kernel/process.h"
#include "kernel/syscall_dispatcher.h"
#include "memory/mailbox_store.h"
#include "memory/process_journal.h"
#include "sched/policy.h"
#include "sched/scheduler.h"
#include "syscalls/capability_store.h"

namespace icam::kernel {

struct KernelOptions {
  std::string model_path;                 // GGUF file; required
  std::string backend = "cpu";            // inference backend: cpu, cuda or auto (backend_factory.h)
  int threads = 0;                        // CPU engine threads; 0 = one per online core
  uint64_t kv_pool_bytes = 256ull << 20;  // KV pool size
  int kv_page_tokens = 16;
  sched::SchedulerOptions scheduler;
  sched::PolicyOptions policy;  // fair share by default: priorities matter
  // Serves tool calls but proc.exit. null (the default): the kernel's own SyscallDispatcher,
  // configured by the three fields below. Otherwise it must outlive the kernel.
  SyscallHandler* syscalls = nullptr;
  std::string audit_path;      // the audit database; "" = no audit log (see DispatcherOptions)
  std::string driver_dir;      // the built-in drivers; "" = default_driver_dir()
  std::string workspace_root;  // default workspaces; "" = default_workspace_root()
  std::string archive_path;    // archival memory (mem.*); "" = none (see DispatcherOptions)
  // Stands between the scheduler and the agent loop when set: given the loop, it returns the
  // events the scheduler delivers to (which pass them on to the loop). For tracing, and for tests
  // that script what the model writes (tests/kernel/daemon). Kept alive by the kernel.
  std::function<std::unique_ptr<sched::SchedulerEvents>(AgentLoop& loop)> events_tap;
  // Whether a person can answer human.ask (icamd: yes, through `icamctl approve`/`deny`). When
  // not, human.ask fails at once instead of blocking until the process's wall-clock budget.
  bool human_answers = false;
  // Tool calls decoded under the tool-call grammar, so that they are well formed by construction
  // (tool_call_filter.h). Off only to measure what a model does unaided.
  bool constrained_tool_calls = true;
  // T1, the RocksDB page store the scheduler swaps KV pages through (SchedulerOptions::page_store):
  // "" = none (preempted contexts are recomputed). A store that cannot be opened (another kernel
  // holds it, a bad directory) leaves the kernel without one: page_store_error() says why.
  std::string page_store_path;
  uint64_t page_store_bytes = 1ull << 30;  // the store's bound; the oldest pages leave first
  // T2, the process journal (memory/process_journal.h; docs/memory.md): "" = none. Every process
  // is recorded there as it runs (job, owner, committed tokens, tool results, state, exit). One
  // kernel at a time uses a journal (a lock file beside it); one that cannot be opened, is
  // locked, damaged or cannot be written fails create() with an error naming it.
  std::string journal_path;
  // Whether create() picks up the journal's live processes (a restarted icamd): the first step()
  // revives each with its pid, owner, job and capabilities, from its last committed token.
  // Off, the kernel only numbers its processes after the journal's.
  bool resume_journaled = false;
};

// The options a configuration gives every kernel (icamd's, `icamctl run`'s embedded one, icamsh's):
// its model, threads, KV pool and backend, and one audit log and workspace root under `home`, so
// `icamctl audit` sees what any of them did. Callers override from their own flags.
KernelOptions kernel_options(const Config& config);

// How many exited processes a resuming kernel keeps in its journal (and icamd answers for).
inline constexpr size_t kJournaledExits = 1024;

class Kernel {
 public:
  // Loads the model and builds the backend and scheduler. Errors name the model file.
  static Result<std::unique_ptr<Kernel>> create(const KernelOptions& options);

  // Spawns a process for `job`. A job naming a model other than the kernel's is refused
  // (unsupported): one kernel serves one model for now.
  Result<Pid> spawn(const JobSpec& job, Pid parent = 0,
                    std::optional<uint32_t> owner_uid = std::nullopt);

  // Who hears streamed text and exits from step() and run_until_idle().
  void set_callbacks(AgentCallbacks callbacks) {
    callbacks_ = callbacks;
    loop_->set_callbacks(std::move(callbacks));
  }

  // Revives the journal's live processes the first time (KernelOptions::resume_journaled), resumes
  // processes whose blocking syscalls completed (or timed out), ends processes past their
  // wall-clock budget, then runs one engine step if any process can make progress and commits
  // what it produced to the journal. A failed engine step ends every live process with
  // ExitReason::error and is returned; the kernel stays usable. A failed journal commit ends the
  // processes of that step (ExitReason::error, saying why) and is returned.
  Status step();
  // True when step() would run the engine or resume a process.
  bool has_work() const {
    return !to_resume_.empty() || scheduler_->has_work() || !loop_->completions().empty();
  }
  // Live processes blocked on a pending syscall.
  size_t blocked_processes() const { return loop_->blocked_processes(); }
  // Completions that arrived for processes no longer waiting for them (dropped).
  uint64_t dropped_completions() const { return loop_->dropped_completions(); }
  // Called, from any thread, when a blocking syscall completes: the daemon's engine thread wakes
  // from its idle wait with it. Must not call into the kernel.
  void set_wakeup(std::function<void()> wake) { loop_->completions().set_wake(std::move(wake)); }
  // Waits up to `timeout` for a blocking syscall to complete; true when one did.
  bool wait_for_completion(std::chrono::milliseconds timeout) {
    return loop_->completions().wait_for(timeout);
  }
  // Answers the human.ask `pid` is blocked on (approved or not, with `text` as the answer or the
  // reason). not_found when it asks nothing; unsupported when another handler serves syscalls.
  Status answer_human(Pid pid, bool approved, const std::string& text);
  // The question `pid` waits on a person for; empty when none.
  std::string pending_question(Pid pid) const;
  // Processes that have not exited (journaled ones not yet revived included).
  size_t live_processes() const { return loop_->live_processes() + to_resume_.size(); }

  // Steps until no process can make progress, with `callbacks` set meanwhile. While every live
  // process is blocked on a syscall it waits for the completions (and enforces wall budgets).
  Status run_until_idle(const AgentCallbacks& callbacks = {});

  Status cancel(Pid pid) { return loop_->cancel(pid); }
  // Forgets an exited process (see AgentLoop::reap).
  Status reap(Pid pid) { return loop_->reap(pid); }
  const Process* process(Pid pid) const { return loop_->process(pid); }
  // Where a live process's context is: tokens, pages resident in the KV pool (T0), pages of its
  // context not resident (taken back: in the page store when there is one, else to recompute),
  // and the tokens it attached from other processes' pages instead of computing them.
  struct ProcessMemory {
    int64_t context_tokens = 0;
    int64_t cached_tokens = 0;
    int64_t resident_pages = 0;
    int64_t out_pages = 0;
    int64_t shared_tokens = 0;
  };
  std::optional<ProcessMemory> process_memory(Pid pid) const;
  // A live process's context as messages, and how often it was compacted (the context budget).
  std::vector<llm::ChatMessage> context_messages(Pid pid) const {
    return loop_->context_messages(pid);
  }
  int64_t compactions(Pid pid) const { return loop_->compactions(pid); }
  std::vector<Pid> pids() const { return loop_->pids(); }

  const llm::Model& model() const { return *model_; }
  const llm::Backend& backend() const { return *backend_; }
  const llm::KvPool& kv_pool() const { return backend_->kv_pool(); }
  const std::string& model_path() const { return model_path_; }
  const sched::Scheduler& scheduler() const { return *scheduler_; }
  // The capabilities `pid` holds (revoked ones included, as they are after it exits) and where each
  // came from; empty when the process has none or another handler serves syscalls.
  std::vector<syscalls::ProvenanceEntry> capabilities(Pid pid) const;
  // The kernel's own dispatcher; null when KernelOptions::syscalls named another handler.
  SyscallDispatcher* dispatcher() { return dispatcher_.get(); }
  // The page store the scheduler swaps through; null when none was configured or it could not be
  // opened (then page_store_error() says why).
  const memory::PageStore* page_store() const { return page_store_.get(); }
  const std::string& page_store_error() const { return page_store_error_; }

  // The process journal; null when none was configured.
  memory::ProcessJournal* journal() { return journal_.get(); }
  // Records `pid` (live or exited, journaled) as it is now under `label`, its context committed
  // first. unsupported without a journal; not_found for a pid the journal does not know.
  Result<memory::JournalCheckpoint> checkpoint(Pid pid, const std::string& label);
  // The newest checkpoint of `pid` with `label`.
  Result<int64_t> find_checkpoint(Pid pid, const std::string& label) const;
  // Starts a NEW process from a checkpoint: the checkpointed process's job, owner and
  // capabilities, its context the checkpoint's transcript prefix (with the tool results recorded
  // by then, never run again), continuing from there. `as_uid`, when set and not root, must own
  // the checkpointed process (otherwise the checkpoint does not exist for it: not_found).
  Result<Pid> restore(int64_t checkpoint_id, std::optional<uint32_t> as_uid = std::nullopt);
  // The exit records (kernel::to_json of the process) of the `limit` most recently exited
  // journaled processes, oldest first: what a restarted daemon still answers wait and ps with.
  std::vector<nlohmann::json> journaled_exits(size_t limit) const;
  // Records (kernel::to_json) of the journal's live processes still to be revived by the first
  // step, so a daemon knows them before its engine has run: `wait PID` works at once.
  std::vector<nlohmann::json> resuming_records() const;
  // Pids revived from the journal, and why others could not be (each then exited with an error).
  const std::vector<Pid>& resumed() const { return resumed_; }
  const std::vector<std::string>& resume_errors() const { return resume_errors_; }

 private:
  Kernel() = default;
  void resume_journaled();
  Status resume_one(const memory::JournalProcess& process);
  void restore_exited_children(const std::vector<memory::JournalProcess>& revived);
  void restore_mailboxes(const std::vector<memory::JournalProcess>& revived);
  // Destroyed in reverse: the scheduler (which holds pages of the backend's pool) first, then the
  // loop, the backend, the model (whose weights the backend maps), and last the dispatcher the
  // loop calls (which stops the drivers of processes still alive).
  std::string model_path_;
  std::unique_ptr<memory::MailboxStore> mailboxes_;  // outlives the dispatcher that writes to it
  std::unique_ptr<SyscallDispatcher> dispatcher_;
  std::unique_ptr<memory::ProcessJournal> journal_;  // outlives the loop that writes to it
  int journal_lock_fd_ = -1;                          // held while the kernel lives
  std::vector<memory::JournalProcess> to_resume_;
  std::vector<Pid> resumed_;
  std::vector<std::string> resume_errors_;
  AgentCallbacks callbacks_;
  std::unique_ptr<llm::Model> model_;
  std::unique_ptr<llm::Backend> backend_;
  std::unique_ptr<AgentLoop> loop_;
  std::unique_ptr<sched::SchedulerEvents> tap_;  // KernelOptions::events_tap; null when none
  std::unique_ptr<memory::PageStore> page_store_;  // outlives the scheduler that writes to it
  std::string page_store_error_;
  std::unique_ptr<sched::Scheduler> scheduler_;

 public:
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;
};

}  // namespace icam::kernel
