// The process journal (tier T2): the durable record of every agent process, from which a daemon
// killed mid-run resumes each process at its last committed token. Per process it holds
//
//   - the job (its JSON), the owner and the state ("ready", "running", "blocked", ..., "exited"
//     with the exit status as JSON);
//   - the token transcript: every token id of the context (prompt, sampled tokens, tool results
//     as fed back), appended in committed batches;
//   - each tool call's result, as its own row keyed by the call's index in the process, so that
//     a resumed process is given the recorded result and the call is never run twice;
//   - the page table: the hashes (page_hash.h) of the context's full pages, by which a resumed
//     process fetches its KV from the page store (T1) or, when a page is not there, recomputes it
//     from the transcript;
//   - named checkpoints, each self-contained: the transcript as it was at that point, the tool
//     results recorded by then (with their positions then), the page table and the compaction,
//     which restore() gives back however the process went on (compacted included);
//   - the context budget's compactions (JournalContext): when the agent loop moves the middle of
//     a context out to archival memory, replace_context() swaps the transcript for the compacted
//     context in one transaction, so a revived process rebuilds that context, not the old one.
//
// Durability: SQLite in WAL mode with synchronous=FULL, and every write method is one
// transaction, so after a crash the file holds each call's effect entirely or not at all. The
// kernel calls append_step() once per engine step with every process's new tokens (one
// transaction, one sync, for dozens of processes).
//
// Tokens are stored as decimal text and hashes as hex, which costs little next to the sync and
// keeps the file readable with the sqlite3 shell. A checkpoint's transcript is one such text in
// its row (it is written and read whole, never appended to) and its tool results are copied into
// checkpoint_results: a checkpoint costs about its transcript's size (6 to 7 bytes a token) plus
// its results. Their number is not bounded here: they are taken only when asked for (icamctl
// checkpoint), kept while their process is (prune_exited() keeps a process holding one) and
// deleted by forget().
//
// Errors: an unknown pid is Errc::not_found; writing to an exited process, a pid begun twice, a
// tool result recorded twice or malformed job JSON Errc::invalid_argument; a file locked by
// another process Errc::unavailable (after busy_timeout_ms); a full disk (or max_pages)
// Errc::resource_exhausted; a damaged file Errc::corrupt; a newer schema Errc::unsupported.
//
// Thread-safety: one mutex serialises every call.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/sqlite_db.h"
#include "memory/page_hash.h"

namespace icam::memory {

struct JournalOptions {
  bool read_only = false;  // icamctl: no schema creation, no writes
  int busy_timeout_ms = 2000;
  // A bound on the file, in database pages (PRAGMA max_page_count); 0 = none. Past it a write is
  // refused as a full disk would refuse it.
  int64_t max_pages = 0;
};

inline constexpr std::string_view kJournalExited = "exited";
// 2: processes.context and checkpoints.context (JournalContext).
// 3: self-contained checkpoints (checkpoints.transcript, the checkpoint_results table), so that a
//    compaction keeps them.
// An older file is upgraded when opened for writing (its checkpoints filled from the transcript
// they are prefixes of, as restore() computed them then) and read as it is when opened read-only.
inline constexpr int64_t kJournalSchemaVersion = 3;

struct JournalToolResult {
  int64_t call_index = 0;  // 0, 1, 2... in the order the process made its calls
  std::string name;        // the syscall
  std::string arguments;   // JSON text
  std::string result;      // what the model was given
  int64_t at_token = 0;    // transcript length when it was recorded
};

// Where a compacted transcript's kept turns begin, and what the turns moved out of it had counted
// (a revived process's accounting goes on from there). All zero for a process never compacted.
// The transcript is then: the job's prompt (the pinned prefix), a marker message, and from
// `start` the kept turns, whose tool results are those from call index `calls` on.
struct JournalContext {
  int64_t compactions = 0;  // how many times the context was compacted
  int64_t calls = 0;        // tool results whose messages were moved out (indexes below it)
  int64_t start = 0;        // transcript index of the first kept turn
  int64_t generated = 0;    // tokens the moved turns generated
  int64_t appended = 0;     // tokens fed in with the moved turns (tool messages, markers)
  int64_t turns = 0;        // turns moved
  bool compacted() const { return compactions > 0; }
};
std::string to_json_text(const JournalContext& context);  // "" for a never compacted one
// "" is a never compacted context; malformed text is Errc::corrupt.
Result<JournalContext> parse_journal_context(std::string_view text);

struct JournalCheckpoint {
  int64_t id = 0;
  std::string label;
  int64_t tokens = 0;      // transcript length at the checkpoint
  int64_t tool_calls = 0;  // tool results recorded by then
  std::vector<PageHash> page_table;
  int64_t created_us = 0;
  JournalContext context;  // the transcript's compaction when it was taken
  // restore() only (listings leave them empty, to stay cheap): the transcript as it was (`tokens`
  // tokens) and the `tool_calls` results recorded by then, by call index, with the positions
  // they had then (those below context.calls were moved out: their at_token means nothing).
  std::vector<int32_t> transcript;
  std::vector<JournalToolResult> tool_results;
};

struct JournalProcess {
  uint64_t pid = 0;
  std::string job;  // JSON text
  uint32_t owner_uid = 0;
  std::string state;
  std::string exit;  // JSON text; "" until exited
  std::vector<int32_t> transcript;
  std::vector<PageHash> page_table;
  std::vector<JournalToolResult> tool_results;
  std::vector<JournalCheckpoint> checkpoints;  // without their transcripts and results
  JournalContext context;                      // the transcript's compaction, if any
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

// One line per process, for listings (icamctl mem).
struct JournalSummary {
  uint64_t pid = 0;
  std::string name;  // the job's "name", when it has one
  uint32_t owner_uid = 0;
  std::string state;
  int64_t tokens = 0;
  int64_t pages = 0;
  int64_t tool_results = 0;
  int64_t checkpoints = 0;
  int64_t updated_us = 0;
};

struct JournalStats {
  int64_t processes = 0;
  int64_t live = 0;  // not exited
  int64_t transcript_rows = 0;
  int64_t tokens = 0;
  int64_t tool_results = 0;
  int64_t checkpoints = 0;
  int64_t file_bytes = 0;  // the database and its write-ahead log
};

// What one process gained in one engine step.
struct StepAppend {
  uint64_t pid = 0;
  std::span<const int32_t> tokens;  // appended to the transcript
  std::span<const PageHash> pages;  // appended to the page table (pages filled this step)
};

class ProcessJournal {
 public:
  static Result<std::unique_ptr<ProcessJournal>> open(const std::string& path,
                                                      JournalOptions options = {});

  // A new process in state "new". `job` must be JSON. `tokens`, when given, start its
  // transcript in the same transaction (the kernel records a process and its prompt at once).
  Status begin_process(uint64_t pid, std::string_view job, uint32_t owner_uid,
                       std::span<const int32_t> tokens = {});
  Status append_tokens(uint64_t pid, std::span<const int32_t> tokens);
  Status append_pages(uint64_t pid, std::span<const PageHash> pages);
  // Every process's tokens and pages of one step, in one transaction: all or none.
  Status append_step(std::span<const StepAppend> step);
  // Records the result of the process's call number `call_index`; once only. `at_token` is the
  // transcript length the call ended at; -1 (the default) = the transcript's length now. A
  // restored process copies its checkpoint's results with their original positions.
  Status record_tool_result(uint64_t pid, int64_t call_index, std::string_view name,
                            std::string_view arguments, std::string_view result,
                            int64_t at_token = -1);
  // The recorded result of call `call_index`, if any: a resumed process is given it instead of
  // making the call again.
  Result<std::optional<JournalToolResult>> tool_result(uint64_t pid, int64_t call_index) const;
  // A compaction (the context budget, docs/memory.md), in one transaction: the transcript becomes
  // `tokens` (its page table is emptied: its pages are other pages now), the process's context
  // becomes `context`, the results of the kept calls (index context.calls and on) move `shift`
  // tokens back (their turns moved that far forward in the context). The process's checkpoints
  // stay as they were: each holds its own transcript and results. Errors: an unknown or exited
  // process; `context.start` past `tokens`; a kept result that would land outside it.
  Status replace_context(uint64_t pid, std::span<const int32_t> tokens,
                         const JournalContext& context, int64_t shift);
  Status set_state(uint64_t pid, std::string_view state);
  // State "exited" with `exit_status` (JSON); nothing is appended after.
  Status exit(uint64_t pid, std::string_view exit_status);
  // Records the process as it is now under `label` (a copy of its transcript and tool results);
  // the checkpoint's id.
  Result<int64_t> checkpoint(uint64_t pid, std::string_view label);
  // A checkpoint with its transcript and tool results: what a process restored to it starts
  // from. Errc::corrupt when its stored data does not add up (a malformed transcript, one of
  // another length than recorded, results missing or past it).
  Result<JournalCheckpoint> restore(uint64_t pid, int64_t checkpoint_id) const;
  // The process a checkpoint belongs to; not_found when there is no such checkpoint.
  Result<uint64_t> checkpoint_pid(int64_t checkpoint_id) const;
  // The newest checkpoint of `pid` labelled `label`; not_found when none.
  Result<int64_t> find_checkpoint(uint64_t pid, std::string_view label) const;
  // Removes an exited process and everything recorded for it (its checkpoints included).
  Status forget(uint64_t pid);
  // Forgets the exited processes but the `keep` most recently updated ones and those holding a
  // checkpoint (which someone may still restore), in one transaction; how many were forgotten.
  // The newest process always stays, so max_pid() and the numbering above it are unchanged.
  Result<int64_t> prune_exited(size_t keep);

  Result<JournalProcess> load(uint64_t pid) const;
  // Every process not exited, by pid: what a restarted daemon resumes.
  Result<std::vector<JournalProcess>> live_processes() const;
  Result<std::vector<JournalSummary>> summaries() const;
  // The highest pid ever begun (0 when none): a restarted kernel numbers new processes above it.
  Result<uint64_t> max_pid() const;
  // The exit statuses (JSON text as given to exit()) of the `limit` most recently exited
  // processes, oldest first, with their pids: a restarted daemon still answers for them.
  Result<std::vector<std::pair<uint64_t, std::string>>> exit_records(size_t limit) const;
  // Takes and releases the write lock (an empty write transaction): unavailable when another
  // process holds the file locked, so a kernel finds out at startup, not at its first step.
  Status check_writable();
  Result<JournalStats> stats() const;

  const std::string& path() const { return path_; }

 private:
  ProcessJournal(sqlite::Database db, std::string path, JournalOptions options)
      : db_(std::move(db)), path_(std::move(path)), options_(options) {}
  Status init_schema();
  // One write transaction, errors prefixed with the file and `what`.
  Status write(std::string_view what, const std::function<Status()>& body);
  Status append_locked(const StepAppend& a);
  Result<JournalProcess> load_locked(uint64_t pid) const;
  // Upgrading to version 3: fills every checkpoint's transcript and results.
  Status fill_checkpoints_locked();
  // The context column in queries: "context", or "''" for a version-1 file opened read-only.
  std::string context_column_ = "context";
  // A version-1 or -2 file opened read-only: its checkpoints hold only lengths, and restore()
  // computes them from the process's transcript as it did then.
  bool legacy_checkpoints_ = false;

  mutable std::mutex mu_;
  sqlite::Database db_;
  std::string path_;
  JournalOptions options_;
};

}  // namespace icam::memory
