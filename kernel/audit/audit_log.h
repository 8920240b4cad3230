// The audit log: every syscall, allowed or denied, as an intent record written and committed
// before any side effect and a completion record written after, in a SQLite database (WAL mode,
// synchronous=FULL, so a committed record survives a power cut). docs/audit.md has the schema.
//
// The chain: record N stores prev_hash = hash of record N-1 (64 zeros for record 1) and
//
//   hash = HMAC-SHA256(key, prev_hash as 64 hex characters || canonical bytes of record N)
//
// with the key in a file outside the database (audit_key.h). Why a keyed HMAC rather than a plain
// SHA-256: with SHA-256, anyone who can write the database can edit a record and recompute every
// later hash, and the chain would still verify; with the key kept elsewhere (0600, another owner
// or another disk in production), editing, removing or reordering records is detectable by anyone
// holding the key. The cost is that verifying needs the key too, and losing the key makes old logs
// unverifiable (not unreadable). A MAC'd "head" (last id and hash) in the meta table also catches
// records cut off the end. What no chain inside one file can catch is a rollback of the whole
// file, key-MAC'd head included, to an earlier copy: anchor `verify`'s head hash elsewhere for that.
//
// Each append is one IMMEDIATE transaction: the record and the new head are written together or
// not at all (a full disk leaves no half-written record). A second writer holding the lock makes
// an append wait up to the busy timeout and then fail with `unavailable`.
//
// Recovery: open() completes every intent that has no completion with a new record of status
// outcome_unknown (never an edit of the intent); irreversible ones are marked never_replay. It is
// run before any new syscall; see last_recovery().
//
// Thread safety: one connection, guarded by a mutex; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/audit/audit_record.h"
#include "common/sqlite_db.h"

namespace icam::kernel::audit {

using sqlite::Database;
using sqlite::Statement;

inline constexpr int kAuditSchemaVersion = 1;

struct AuditOptions {
  std::string path;      // the database file; created when missing (unless read_only)
  std::string key_path;  // the HMAC key file; "" = path + ".key". Created with a new log only.
  int busy_timeout_ms = 2000;  // how long an append waits for another writer's lock
  bool read_only = false;      // inspect (query, export, verify) without recovering or writing
  int64_t max_pages = 0;       // > 0: cap on the database's pages (PRAGMA max_page_count): a quota
  std::function<int64_t()> clock;  // Unix time in microseconds; default: the system clock
};

// An intent completed by recovery.
struct RecoveredIntent {
  int64_t intent_id = 0;
  int64_t completion_id = 0;
  uint64_t pid = 0;
  std::string syscall;
  SideEffect side_effect = SideEffect::none;
  bool never_replay = false;
};

struct AuditFilter {
  std::optional<uint64_t> pid;
  std::optional<std::string> syscall;
  std::optional<Decision> decision;
  std::optional<RecordKind> kind;
  std::optional<int64_t> since_us;  // time_us >= since_us
  std::optional<int64_t> until_us;  // time_us < until_us
  int64_t after_id = 0;             // id > after_id, for paging
  int64_t limit = 1000;             // at most this many, oldest first; <= 0: no limit
};

struct VerifyReport {
  int64_t records = 0;
  int64_t last_id = 0;
  std::string last_hash;  // the head: worth writing down somewhere else
};

class AuditLog {
 public:
  // Opens or creates the log (WAL, synchronous=FULL, schema checked or created), loads or creates
  // the key, and runs recover() unless read_only. Errors: the key file is missing for an existing
  // log (not_found), is not the log's key or is readable by others (permission_denied), the
  // schema is newer than this build (unsupported), the database is locked past the busy timeout
  // (unavailable), or SQLite's own failures.
  static Result<std::unique_ptr<AuditLog>> open(AuditOptions options);

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends and commits an intent; returns its id. `args_json` is any JSON object text; it is
  // stored canonically. `capability` is the capability text used ("" when denied).
  Result<int64_t> append_intent(uint64_t pid, std::string_view syscall, std::string_view args_json,
                                std::string_view capability, Decision decision,
                                SideEffect side_effect);
  // Appends and commits the completion of `intent_id`. invalid_argument when the id is not an
  // intent or already has a completion. Returns the completion's id.
  Result<int64_t> append_completion(int64_t intent_id, CompletionStatus status,
                                    std::string_view result_digest);

  // Appends a call's intent and its completion in one transaction: for calls with no side
  // effect (reads, pure calls, denials), whose intent need not be durable before anything
  // happens, since nothing does; the caller releases the result only after this returns. The
  // intent keeps the time the call began (`intent_time_us`, from now_us(); 0 = now). Returns the
  // completion's id; the intent's is one less.
  Result<int64_t> append_call(uint64_t pid, std::string_view syscall, std::string_view args_json,
                              std::string_view capability, Decision decision,
                              SideEffect side_effect, int64_t intent_time_us,
                              CompletionStatus status, std::string_view result_digest);
  // The log's clock (AuditOptions::clock), in Unix microseconds.
  int64_t now_us() const;
  // The log's clock (AuditOptions::clock), in Unix microseconds.

  // Completes every open intent with outcome_unknown (see above); open() calls it. Call it again
  // only when no syscall is in flight, since an in-flight intent is open too.
  Result<std::vector<RecoveredIntent>> recover();
  const std::vector<RecoveredIntent>& last_recovery() const { return last_recovery_; }

  Result<std::vector<AuditRecord>> query(const AuditFilter& filter) const;
  Result<std::vector<AuditRecord>> tail(int64_t count) const;  // the last `count`, oldest first
  Result<std::optional<AuditRecord>> record(int64_t id) const;
  // Every record, oldest first, one JSON object per line (to_json); returns how many.
  Result<int64_t> export_jsonl(std::ostream& out) const;

  // Walks the whole chain. Intact: the report. Otherwise corrupt, with the message
  //   "audit log '<path>': record <id>: <what mismatched>"
  // naming the first bad record: an edited row (hash mismatch, or a field no writer produces), a
  // removed row (a gap in the ids, or records missing after the last one the head names),
  // reordered or re-linked rows (prev_hash not the previous record's hash).
  Result<VerifyReport> verify() const;

  const std::string& path() const { return options_.path; }

 private:
  AuditLog(AuditOptions options, Database db, std::vector<uint8_t> key)
      : options_(std::move(options)), db_(std::move(db)), key_(std::move(key)) {}

  Status prepare_statements();
  std::string compute_hash(std::string_view prev_hash_hex, const AuditRecord& record) const;
  std::string head_mac(int64_t id, std::string_view hash) const;
  // Begins an IMMEDIATE transaction; a lock held too long is a clear `unavailable`.
  Status begin_locked();
  // Chains `record` after the current last record, inserts it and moves the head; inside a
  // transaction. Sets record.id, prev_hash and hash.
  Status insert_locked(AuditRecord& record);
  Status commit_or_rollback_locked(Status body);
  Result<int64_t> append_locked(AuditRecord record);

  AuditOptions options_;
  Database db_;
  const std::vector<uint8_t> key_;
  mutable std::mutex mutex_;
  std::vector<RecoveredIntent> last_recovery_;
  // Reused on every append (preparing costs as much as running them).
  Statement begin_, commit_, rollback_, last_, insert_, set_head_, find_intent_;
};

}  // namespace icam::kernel::audit
