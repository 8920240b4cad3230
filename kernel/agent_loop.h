// The agent loop: turns processes into scheduler sequences and scheduler events into process
// state changes. It is the SchedulerEvents of one Scheduler and runs on its engine thread.
//
// The prompt is the job's system message (with tool_instructions() appended when the job lists
// tools) and its task as the user message, in the model's chat format.
// One process is one sequence, submitted with stop string "</tool_call>" and OnStop::pause:
//   - a turn paused on that stop string is a tool call: it is parsed and served
//     (execute_tool_call); proc.exit ends the process, anything else is answered with a tool
//     message appended to the context, and the turn resumes;
//   - a call the handler leaves pending blocks the process: its sequence stays paused, the
//     engine steps the others, and when the handler reports the completion (from any thread, into
//     the loop's CompletionQueue) deliver_completions() resumes the turn with it, on the engine
//     thread. A completion for a process that exited, or for a call it no longer waits on, is
//     dropped;
//   - a turn that ends without a tool call (end of generation, a per-turn max_tokens) completes
//     the process with the turn's text as its answer;
//   - budgets: each turn's max_tokens is capped at the tokens left in the budget, and a process
//     whose turn stops there exits with budget_tokens; check_wall_budgets() ends processes past
//     their wall-clock budget; execute_tool_call enforces the syscall budget.
// When a process exits its sequence is released at once, so its KV pages go back to the pool, and
// its live children are cancelled (their capabilities were derived from its, which are revoked).
// Many processes share the scheduler, so every step batches all of them (continuous batching).
//
// The process journal (memory/process_journal.h), when set: every process is begun in it with its
// job, owner and prompt at spawn; commit_journal() (the kernel calls it after each engine step)
// appends, in one transaction, what every process's context gained; before a tool call is served
// the call's own tokens are committed, and its result is recorded (call indexes 0, 1, 2... per
// process) before the tool message goes into the context; state changes and the exit (its record
// as JSON) are written as they happen. A token is committed only once its step's append returned;
// a failed append ends the processes it held with ExitReason::error, since the kernel cannot
// promise they would survive a restart. revive() rebuilds a process from what the journal holds
// (a restarted kernel, or a checkpoint restored as a new process).
//
// The context budget (docs/memory.md): when a tool result is about to go into a context and the
// context, the result and the next turn's max_tokens would pass the process's limit (the job's
// context_tokens, else 3/4 of the model's context length), the loop compacts it. The pinned
// prefix (the prompt: system message with the tool schemas, history, task) stays; the oldest
// turns (each an assistant turn and its tool result) are moved out as text into the process's
// archival memory (SyscallHandler::archive_context, where mem.recall finds them) and replaced by
// one marker message saying so; the most recent turns that fit stay, token for token. The
// compacted context is journaled in one transaction (ProcessJournal::replace_context) so that a
// revived process rebuilds it, and goes on as a new sequence (the old one released; the pinned
// prefix's pages come back from the prefix index or the page store), with a fresh tool-call
// filter. The process keeps its pid, accounting and budgets. Without an archive the text is
// dropped, and the marker and the log say so.
#pragma once

#include <algorithm>
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
#include "memory/process_journal.h"
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

class AgentLoop : public sched::SchedulerEvents, public ProcessControl {
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
  // The model's context length: processes whose job sets no context_tokens compact past 3/4 of
  // it. 0 (the default): only jobs that set context_tokens are compacted.
  void set_context_length(int64_t tokens) { context_length_ = std::max<int64_t>(tokens, 0); }

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

  // Resumes the processes whose pending calls completed (engine thread; the kernel calls it once
  // per step). Returns how many were resumed or ended.
  size_t deliver_completions();
  // Passes the time to the handler, so pending calls past their deadline complete.
  void tick(Clock::time_point now) { handler_.tick(now); }
  // Where handlers report completions; the kernel waits on it when every live process is blocked.
  CompletionQueue& completions() { return *completions_; }
  // Live processes waiting for a pending call.
  size_t blocked_processes() const;
  // Completions dropped because their process had exited or no longer waited for them.
  uint64_t dropped_completions() const { return dropped_completions_; }

  // ProcessControl, for the handler's proc.spawn and proc.kill.
  Result<Pid> spawn_child(const JobSpec& job, Pid parent) override;
  Status kill(Pid pid) override { return cancel(pid); }

  // Ends every live process with ExitReason::error and `message` (after a failed engine step).
  void fail_all(const std::string& message);

  // Journals every process from now on (see the header comment); `journal` must outlive the loop.
  // `workspace_of` gives a live process's workspace ("" when none), which is pinned in the
  // journaled job so that a revived process finds its files again.
  // Journals each process's page table too: the hash (memory/page_hash.h) of every full page of
  // its committed context, under `model`'s identity, `page_tokens` tokens a page. Without it the
  // journal holds transcripts only (the hashes follow from them).
  void set_page_hashing(const memory::ModelIdentity& model, int page_tokens) {
    page_model_ = model;
    page_tokens_ = page_tokens;
  }
  void set_journal(memory::ProcessJournal* journal,
                   std::function<std::string(Pid)> workspace_of);
  // Numbers new processes from `pid` on (a restarted kernel continues after the journal's).
  void set_next_pid(Pid pid) { next_pid_ = std::max(next_pid_, pid); }
  // Appends what every process's context gained since the last commit, in one transaction. A
  // trailing run of tokens that may be the start of "</tool_call>" is held back (committed with
  // the tokens after it): the scheduler's stop matcher holds that text back too, and a process
  // revived after it would not see the stop string complete. On failure the processes concerned
  // are ended (ExitReason::error) and the error is returned.
  Status commit_journal();
  // Commits one live process's context now (before a checkpoint). Nothing to do for an exited one.
  Status commit_process(Pid pid);

  // What revive() rebuilds a process from.
  struct Revival {
    Pid pid = 0;  // 0: a new pid (a restored checkpoint); else the journaled process's own
    // The live process it is a child of (revived before it); 0 for none. A child's capabilities
    // are derived again from its parent's, as proc.spawn derived them.
    Pid parent = 0;
    JobSpec job;
    uint32_t owner_uid = 0;
    std::vector<int32_t> transcript;  // every committed token: the prompt first
    std::vector<memory::JournalToolResult> tool_results;  // by call index, from 0
    bool journaled = false;  // the journal holds it already; else it is begun there now
    // The journal's page table for it (journaled only), so page hashing goes on from there.
    std::vector<memory::PageHash> page_table;
    // The transcript's compaction: the turns before context.start were moved out (their results
    // are those below context.calls, whose at_token no longer means anything).
    memory::JournalContext context;
  };
  // Re-creates a process from its transcript: capabilities granted again from its job (on_spawn),
  // the context submitted as the prompt (its KV pages come back from the page store by hash when
  // the scheduler has one), and the turn it was in continued from its last committed token, with
  // the tool-call filter primed with the turn's tokens so a half-written call goes on under the
  // grammar. A call whose result is recorded is answered with it (never run twice); a call with
  // no recorded result is run again when its syscall is idempotent, and otherwise answered with an
  // error saying its outcome is unknown. Errors (nothing is created): the transcript does not
  // begin with the job's prompt (another model or tokenizer), its tool results do not match it,
  // or the scheduler refuses it.
  Result<Pid> revive(Revival revival);
  // While held, revive() does not yet serve a revived process's unanswered call; release serves
  // those held, in the order revived. A restarted kernel revives every process first, so that a
  // parent that was waiting in proc.wait finds the child it waits for.
  void hold_unanswered_calls() { holding_calls_ = true; }
  void release_unanswered_calls();

  // Forgets an exited process (its record is no longer needed: the daemon keeps its own copy).
  // not_found for an unknown pid; invalid_argument for a live one.
  Status reap(Pid pid);

  const Process* process(Pid pid) const;
  // A live process's context as messages: the pinned ones (system, history, task), the marker
  // of a compaction ("tool"), then each turn's assistant text and tool result, the current turn
  // last (its text so far, when it has some). Empty for an unknown or exited process.
  std::vector<llm::ChatMessage> context_messages(Pid pid) const;
  // How many times a process's context was compacted; 0 for an unknown one.
  int64_t compactions(Pid pid) const;
  // The live process whose sequence `id` is; 0 when none.
  Pid pid_of(sched::SequenceId id) const;
  // The scheduler's sequence of a live process; nullopt for an exited or unknown one.
  std::optional<sched::SequenceId> sequence_of(Pid pid) const;
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
    CallTicket waiting = 0;  // the pending call the process is blocked on; 0 when none
    std::shared_ptr<ToolCallFilter> tool_filter;  // null when tool calls are unconstrained
    // Journal bookkeeping.
    int64_t journaled = 0;     // context tokens committed
    int64_t pages_journaled = 0;  // full pages whose hashes are committed (set_page_hashing)
    memory::PageHash last_page = memory::kRootPageHash;  // the hash of the last of those
    bool dirty = false;        // the context may have grown since the last commit
    size_t turn_start = 0;     // context index of the current turn's first sampled token
    int64_t calls = 0;         // tool results given so far: the next call's index
    std::string call_name;     // the call being served, for its journal record
    std::string call_arguments;
    ProcessState journal_state = ProcessState::new_;
    // A revived process whose first act is to finish serving a call has no sequence until the
    // call's result is known: its context is here, and resume_turn() submits it with the result.
    std::vector<int32_t> pending_prompt;
    // The context budget. Each turn of the context: where it begins, where its tool message
    // begins (0 until its call was made) and its messages; the last is the current turn.
    struct Turn {
      size_t start = 0;
      size_t end = 0;
      std::string assistant;
      std::string tool;
    };
    int64_t context_limit = 0;                // tokens; 0: never compacted
    std::vector<llm::ChatMessage> pinned;     // the prompt's messages
    size_t pinned_tokens = 0;                 // the prompt's tokens
    std::string marker;                       // the marker message; "" before a compaction
    std::vector<Turn> turns;
    memory::JournalContext compaction;        // what was moved out so far
  };
  enum class Compacted { no, yes, exited };

  Slot* slot_for(sched::SequenceId id);
  int turn_max_tokens(const Slot& s) const;
  void exit(Slot& s, ExitReason reason, std::string answer, std::string error = {});
  void serve_tool_call(Slot& s);
  // The filter that keeps `tools`' calls well formed (built lazily: the vocabulary's bytes are
  // gathered once per loop). tool.call is held to `external` (the job's external tools) when the
  // grammar can follow them; otherwise (logged) to the table's schema alone.
  Result<std::shared_ptr<ToolCallFilter>> make_tool_filter(
      const std::vector<std::string>& tools, const std::vector<ExternalTool>& external);
  // Appends `tool_result` as a tool message and resumes the turn (or ends the process when that
  // is impossible or its token budget is spent).
  void resume_turn(Slot& s, const std::string& tool_result);
  // The prompt of `job` as messages, and as token ids.
  std::vector<llm::ChatMessage> prompt_messages(const JobSpec& job);
  Result<std::vector<int32_t>> render_prompt(const JobSpec& job);
  // The compaction threshold of a process running `job` (0: none).
  int64_t context_limit(const JobSpec& job) const;
  // Compacts `s`'s context before `message` (the tool message of the turn just done) goes in,
  // when it would pass its limit with the next turn's `max_tokens`; see the header comment. no:
  // nothing to do (or nothing that can be moved), the caller resumes the sequence; yes: the new
  // sequence runs with `message` at its end; exited: the process ended (its journal refused).
  Compacted compact(Slot& s, const std::vector<int32_t>& message, int max_tokens);
  // The sequence spec every turn of a process is submitted with (a filter is added when
  // constrained tool calls are on).
  sched::SequenceSpec sequence_spec(const Slot& s, std::vector<int32_t> prompt, int max_tokens) const;
  // The tool message carrying `tool_result` as token ids.
  Result<std::vector<int32_t>> tool_message_tokens(const std::string& tool_result) const;
  // The uncommitted tail of a live process's context, and the hashes of the full pages it
  // completes (with set_page_hashing); `held` trailing tokens were held back (see commit_journal).
  struct JournalTail {
    std::vector<int32_t> tokens;
    std::vector<memory::PageHash> pages;
    size_t held = 0;
    bool empty() const { return tokens.empty() && pages.empty(); }
  };
  Result<JournalTail> journal_tail(const Slot& s, bool hold_back) const;
  // After `tail` was committed.
  static void journaled(Slot& s, const JournalTail& tail);
  // Commits one process's tail now; false (and the process ended) when the journal refused it.
  bool commit_slot(Slot& s, bool hold_back);
  void journal_state(Slot& s);
  // Serves the call a revived process was making when its kernel stopped (no recorded result).
  void serve_unanswered_call(Slot& s);

  const llm::Tokenizer& tokenizer_;
  llm::ChatFamily family_;
  NoSyscalls no_syscalls_;
  SyscallHandler& handler_;
  sched::Scheduler* scheduler_ = nullptr;
  AgentCallbacks callbacks_;
  bool constrained_tool_calls_ = true;
  int64_t context_length_ = 0;
  std::shared_ptr<const TokenBytes> token_bytes_;
  std::shared_ptr<CompletionQueue> completions_ = std::make_shared<CompletionQueue>();
  uint64_t dropped_completions_ = 0;
  Pid next_pid_ = 1;
  memory::ModelIdentity page_model_;
  int page_tokens_ = 0;  // 0: page tables are not journaled
  bool holding_calls_ = false;
  std::vector<Pid> held_calls_;  // revived with an unanswered call, while holding
  memory::ProcessJournal* journal_ = nullptr;
  std::function<std::string(Pid)> workspace_of_;
  std::map<Pid, Slot> slots_;
  std::map<sched::SequenceId, Pid> by_sequence_;  // live processes only
};

}  // namespace icam::kernel
