#include "kernel/audit/audit_log.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "kernel/audit/audit_key.h"
#include "syscalls/crypto.h"

namespace icam::kernel::audit {
namespace {

constexpr size_t kMaxSyscallBytes = 128;
constexpr size_t kMaxCapabilityBytes = 4096;
constexpr size_t kMaxArgsBytes = 1 << 20;
constexpr size_t kMaxDigestBytes = 256;

// The columns of audit_records in the order read_row() expects.
constexpr std::string_view kColumns =
    "id, kind, time_us, pid, syscall, args, capability, decision, side_effect, intent_id, status, "
    "result_digest, never_replay, prev_hash, hash";

constexpr std::string_view kSchema = R"sql(
CREATE TABLE audit_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE audit_records (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  syscall TEXT NOT NULL,
  args TEXT NOT NULL,
  capability TEXT NOT NULL,
  decision TEXT NOT NULL,
  side_effect TEXT NOT NULL,
  intent_id INTEGER NOT NULL,
  status TEXT NOT NULL,
  result_digest TEXT NOT NULL,
  never_replay INTEGER NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_records_pid ON audit_records (pid);
CREATE INDEX audit_records_syscall ON audit_records (syscall);
CREATE INDEX audit_records_time ON audit_records (time_us);
CREATE UNIQUE INDEX audit_records_completion ON audit_records (intent_id)
  WHERE kind = 'completion';
)sql";

// Rewinds a reused statement at the end of a scope, so it holds no read lock afterwards.
struct ResetOnExit {
  Statement& stmt;
  ~ResetOnExit() { stmt.reset(); }
};

bool valid_utf8(std::string_view text) {
  try {
    (void)nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

Status check_text(std::string_view what, std::string_view text, size_t max_bytes,
                  bool allow_empty) {
  if (!allow_empty && text.empty())
    return make_error(Errc::invalid_argument, what, ": must not be empty");
  if (text.size() > max_bytes)
    return make_error(Errc::invalid_argument, what, ": longer than ", max_bytes, " bytes");
  if (!valid_utf8(text)) return make_error(Errc::invalid_argument, what, ": not valid UTF-8");
  return ok_status();
}

// A row (in kColumns order) as a record; a field no writer produces is corrupt, naming the record.
Result<AuditRecord> read_row(const Statement& s) {
  AuditRecord r;
  r.id = s.column_int(0);
  auto bad = [&](const Error& e) {
    return make_error(Errc::corrupt, "record ", r.id, ": ", e.message(), " (edited?)");
  };
  auto kind = parse_record_kind(s.column_text(1));
  if (!kind.ok()) return bad(kind.error());
  r.kind = *kind;
  r.time_us = s.column_int(2);
  r.pid = static_cast<uint64_t>(s.column_int(3));
  r.syscall = s.column_text(4);
  r.args = s.column_text(5);
  r.capability = s.column_text(6);
  auto decision = parse_decision(s.column_text(7));
  if (!decision.ok()) return bad(decision.error());
  r.decision = *decision;
  auto effect = parse_side_effect(s.column_text(8));
  if (!effect.ok()) return bad(effect.error());
  r.side_effect = *effect;
  r.intent_id = s.column_int(9);
  const std::string status = s.column_text(10);
  if (!status.empty()) {
    auto parsed = parse_completion_status(status);
    if (!parsed.ok()) return bad(parsed.error());
    r.status = *parsed;
  }
  r.result_digest = s.column_text(11);
  const int64_t never_replay = s.column_int(12);
  if (never_replay != 0 && never_replay != 1)
    return bad(Error(Errc::corrupt, str_cat("never_replay holds ", never_replay)));
  r.never_replay = never_replay == 1;
  r.prev_hash = s.column_text(13);
  r.hash = s.column_text(14);
  return r;
}

void bind_record(Statement& s, const AuditRecord& r) {
  s.bind(1, r.id);
  s.bind(2, name_of(r.kind));
  s.bind(3, r.time_us);
  s.bind(4, static_cast<int64_t>(r.pid));
  s.bind(5, r.syscall);
  s.bind(6, r.args);
  s.bind(7, r.capability);
  s.bind(8, name_of(r.decision));
  s.bind(9, name_of(r.side_effect));
  s.bind(10, r.intent_id);
  s.bind(11, r.status ? name_of(*r.status) : std::string_view());
  s.bind(12, r.result_digest);
  s.bind(13, static_cast<int64_t>(r.never_replay ? 1 : 0));
  s.bind(14, r.prev_hash);
  s.bind(15, r.hash);
}

struct Head {
  int64_t id = 0;
  std::string hash;
  std::string mac;
};

std::optional<Head> parse_head(const std::string& text) {
  std::istringstream in(text);
  Head head;
  if (!(in >> head.id >> head.hash >> head.mac)) return std::nullopt;
  return head;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(AuditOptions options) {
  if (options.path.empty()) return make_error(Errc::invalid_argument, "audit log: no path given");
  if (options.key_path.empty()) options.key_path = options.path + ".key";
  const std::string where = str_cat("audit log '", options.path, "'");
  struct stat st {};
  if (options.read_only && ::stat(options.path.c_str(), &st) != 0)
    return make_error(Errc::not_found, where, ": no such file");

  Database db = ICAM_TRY_CTX(Database::open(options.path, options.read_only), where);
  sqlite3_busy_timeout(db.handle(), options.busy_timeout_ms);
  if (!options.read_only) {
    // WAL lets readers (icamctl audit) run while the daemon appends; FULL makes every commit
    // durable (the WAL is synced at each commit), which an audit record must be before the
    // side effect it announces.
    const std::string mode = ICAM_TRY_CTX(db.query_text("PRAGMA journal_mode=WAL"), where);
    if (mode != "wal")
      return make_error(Errc::unsupported, where, ": cannot use WAL mode (journal mode is '", mode,
                        "')");
  }
  ICAM_TRY_CTX(db.exec("PRAGMA synchronous=FULL"), where);
  if (options.max_pages > 0)
    ICAM_TRY_CTX(db.query_int(str_cat("PRAGMA max_page_count=", options.max_pages)), where);

  const int64_t version = ICAM_TRY_CTX(db.query_int("PRAGMA user_version"), where);
  if (version > kAuditSchemaVersion)
    return make_error(Errc::unsupported, where, ": schema version ", version,
                      " is newer than this build's (", kAuditSchemaVersion, ")");

  std::vector<uint8_t> key;
  if (version == 0) {
    if (options.read_only) return make_error(Errc::not_found, where, ": not an audit log (empty)");
    // A new log: use the key file if someone provisioned one, otherwise make it.
    auto loaded = load_audit_key(options.key_path);
    if (!loaded.ok() && loaded.error().code() == Errc::not_found) {
      loaded = create_audit_key(options.key_path);
      if (!loaded.ok()) loaded = load_audit_key(options.key_path);  // created by a racing opener
    }
    key = ICAM_TRY_CTX(std::move(loaded), where);
    ICAM_TRY_CTX(db.exec("BEGIN IMMEDIATE"), where);
    // Another process may have created the schema while this one waited for the lock.
    auto created = [&]() -> Status {
      if (ICAM_TRY(db.query_int("PRAGMA user_version")) != 0) return ok_status();
      ICAM_TRY(db.exec(std::string(kSchema)));
      Statement meta = ICAM_TRY(db.prepare("INSERT INTO audit_meta (key, value) VALUES (?1, ?2)"));
      const std::pair<std::string, std::string> rows[] = {
          {"schema_version", std::to_string(kAuditSchemaVersion)},
          {"hash", "hmac-sha256"},
          {"key_id", audit_key_id(key)},
      };
      for (const auto& [k, v] : rows) {
        meta.bind(1, k);
        meta.bind(2, v);
        ICAM_TRY(meta.run());
        meta.reset();
      }
      return db.exec(str_cat("PRAGMA user_version=", kAuditSchemaVersion));
    }();
    if (!created.ok()) {
      (void)db.exec("ROLLBACK");
      return std::move(created).error().with_context(where);
    }
    ICAM_TRY_CTX(db.exec("COMMIT"), where);
  } else {
    auto loaded = load_audit_key(options.key_path);
    if (!loaded.ok() && loaded.error().code() == Errc::not_found)
      return make_error(Errc::not_found, where, ": its key file '", options.key_path,
                        "' is missing; without it the log can be read but not verified or "
                        "extended");
    key = ICAM_TRY_CTX(std::move(loaded), where);
  }
  const std::string key_id = ICAM_TRY_CTX(
      db.query_text("SELECT value FROM audit_meta WHERE key = 'key_id'"), where);
  if (key_id != audit_key_id(key))
    return make_error(Errc::permission_denied, where, ": key file '", options.key_path,
                      "' is not the key this log was written with (key id ", audit_key_id(key),
                      ", log expects ", key_id, ")");

  std::unique_ptr<AuditLog> log(new AuditLog(std::move(options), std::move(db), std::move(key)));
  ICAM_TRY_CTX(log->prepare_statements(), where);
  if (!log->options_.read_only) log->last_recovery_ = ICAM_TRY(log->recover());
  return log;
}

Status AuditLog::prepare_statements() {
  begin_ = ICAM_TRY(db_.prepare("BEGIN IMMEDIATE"));
  commit_ = ICAM_TRY(db_.prepare("COMMIT"));
  rollback_ = ICAM_TRY(db_.prepare("ROLLBACK"));
  last_ = ICAM_TRY(db_.prepare("SELECT id, hash FROM audit_records ORDER BY id DESC LIMIT 1"));
  insert_ = ICAM_TRY(db_.prepare(str_cat("INSERT INTO audit_records (", kColumns,
                                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                                         "?11, ?12, ?13, ?14, ?15)")));
  set_head_ =
      ICAM_TRY(db_.prepare("INSERT OR REPLACE INTO audit_meta (key, value) VALUES ('head', ?1)"));
  find_intent_ =
      ICAM_TRY(db_.prepare(str_cat("SELECT ", kColumns, " FROM audit_records WHERE id = ?1")));
  return ok_status();
}

int64_t AuditLog::now_us() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string AuditLog::compute_hash(std::string_view prev_hash_hex,
                                   const AuditRecord& record) const {
  std::string message(prev_hash_hex);
  message += record.canonical_bytes();
  return syscalls::to_hex(syscalls::hmac_sha256(key_, message));
}

std::string AuditLog::head_mac(int64_t id, std::string_view hash) const {
  // A different message shape from any record's, so a record hash never passes as a head MAC.
  return syscalls::to_hex(
      syscalls::hmac_sha256(key_, str_cat("icam-audit-head-v1\n", id, "\n", hash)));
}

Status AuditLog::begin_locked() {
  if (options_.read_only)
    return make_error(Errc::permission_denied, "audit log '", options_.path,
                      "': opened read-only");
  ResetOnExit reset{begin_};
  auto begun = begin_.run();
  if (!begun.ok() && begun.error().code() == Errc::unavailable)
    return make_error(Errc::unavailable, "audit log '", options_.path,
                      "': another connection holds the write lock; gave up after ",
                      options_.busy_timeout_ms, " ms");
  return begun;
}

Status AuditLog::insert_locked(AuditRecord& record) {
  {
    ResetOnExit reset{last_};
    const bool any = ICAM_TRY(last_.step());
    record.id = any ? last_.column_int(0) + 1 : 1;
    record.prev_hash = any ? last_.column_text(1) : std::string(kGenesisHash);
  }
  record.hash = compute_hash(record.prev_hash, record);
  {
    ResetOnExit reset{insert_};
    bind_record(insert_, record);
    ICAM_TRY(insert_.run());
  }
  ResetOnExit reset{set_head_};
  set_head_.bind(1, str_cat(record.id, " ", record.hash, " ", head_mac(record.id, record.hash)));
  return set_head_.run();
}

Status AuditLog::commit_or_rollback_locked(Status body) {
  if (body.ok()) {
    ResetOnExit reset{commit_};
    body = commit_.run();
    if (body.ok()) return body;
  }
  // SQLite may already have rolled back (e.g. after SQLITE_FULL); a failing ROLLBACK then only
  // says there is no transaction, which is the state wanted.
  ResetOnExit reset{rollback_};
  (void)rollback_.run();
  Error error = std::move(body).error();
  if (error.code() == Errc::resource_exhausted)
    return make_error(Errc::resource_exhausted, "audit log '", options_.path,
                      "': disk full or page quota reached; the record was not written: ",
                      error.message());
  return std::move(error).with_context(str_cat("audit log '", options_.path, "'"));
}

Result<int64_t> AuditLog::append_locked(AuditRecord record) {
  ICAM_TRY(begin_locked());
  ICAM_TRY(commit_or_rollback_locked(insert_locked(record)));
  return record.id;
}

namespace {

// An intent record from a caller's fields, checked (sizes, canonical JSON); not yet timed or
// chained.
Result<AuditRecord> intent_record(uint64_t pid, std::string_view syscall,
                                  std::string_view args_json, std::string_view capability,
                                  Decision decision, SideEffect side_effect) {
  ICAM_TRY(check_text("syscall", syscall, kMaxSyscallBytes, false));
  ICAM_TRY(check_text("capability", capability, kMaxCapabilityBytes, true));
  if (args_json.size() > kMaxArgsBytes)
    return make_error(Errc::invalid_argument, "arguments: longer than ", kMaxArgsBytes, " bytes");
  AuditRecord record;
  record.kind = RecordKind::intent;
  record.pid = pid;
  record.syscall = syscall;
  record.args = ICAM_TRY(canonical_json(args_json));
  record.capability = capability;
  record.decision = decision;
  record.side_effect = side_effect;
  return record;
}

}  // namespace

Result<int64_t> AuditLog::append_intent(uint64_t pid, std::string_view syscall,
                                        std::string_view args_json, std::string_view capability,
                                        Decision decision, SideEffect side_effect) {
  AuditRecord record =
      ICAM_TRY(intent_record(pid, syscall, args_json, capability, decision, side_effect));
  std::lock_guard lock(mutex_);
  record.time_us = now_us();
  return append_locked(std::move(record));
}

Result<int64_t> AuditLog::append_completion(int64_t intent_id, CompletionStatus status,
                                            std::string_view result_digest) {
  ICAM_TRY(check_text("result digest", result_digest, kMaxDigestBytes, true));
  std::lock_guard lock(mutex_);
  ICAM_TRY(begin_locked());
  AuditRecord completion;
  auto body = [&]() -> Status {
    AuditRecord intent;
    {
      ResetOnExit reset{find_intent_};
      find_intent_.bind(1, intent_id);
      if (!ICAM_TRY(find_intent_.step()))
        return make_error(Errc::invalid_argument, "record ", intent_id, " does not exist");
      intent = ICAM_TRY(read_row(find_intent_));
    }
    if (intent.kind != RecordKind::intent)
      return make_error(Errc::invalid_argument, "record ", intent_id,
                        " is a completion, not an intent");
    completion.kind = RecordKind::completion;
    completion.time_us = now_us();
    completion.pid = intent.pid;
    completion.syscall = intent.syscall;
    completion.capability = intent.capability;
    completion.decision = intent.decision;
    completion.side_effect = intent.side_effect;
    completion.intent_id = intent_id;
    completion.status = status;
    completion.result_digest = result_digest;
    Status inserted = insert_locked(completion);
    if (!inserted.ok() && inserted.error().code() == Errc::invalid_argument)  // the unique index
      return make_error(Errc::invalid_argument, "intent ", intent_id, " already has a completion");
    return inserted;
  }();
  ICAM_TRY(commit_or_rollback_locked(std::move(body)));
  return completion.id;
}

Result<int64_t> AuditLog::append_call(uint64_t pid, std::string_view syscall,
                                      std::string_view args_json, std::string_view capability,
                                      Decision decision, SideEffect side_effect,
                                      int64_t intent_time_us, CompletionStatus status,
                                      std::string_view result_digest) {
  ICAM_TRY(check_text("result digest", result_digest, kMaxDigestBytes, true));
  AuditRecord intent =
      ICAM_TRY(intent_record(pid, syscall, args_json, capability, decision, side_effect));
  std::lock_guard lock(mutex_);
  const int64_t now = now_us();
  intent.time_us = intent_time_us > 0 ? std::min(intent_time_us, now) : now;
  AuditRecord completion;
  ICAM_TRY(begin_locked());
  auto body = [&]() -> Status {
    ICAM_TRY(insert_locked(intent));
    completion.kind = RecordKind::completion;
    completion.time_us = now;
    completion.pid = pid;
    completion.syscall = intent.syscall;
    completion.capability = intent.capability;
    completion.decision = decision;
    completion.side_effect = side_effect;
    completion.intent_id = intent.id;
    completion.status = status;
    completion.result_digest = result_digest;
    return insert_locked(completion);
  }();
  ICAM_TRY(commit_or_rollback_locked(std::move(body)));
  return completion.id;
}

Result<std::vector<RecoveredIntent>> AuditLog::recover() {
  std::lock_guard lock(mutex_);
  ICAM_TRY(begin_locked());
  std::vector<RecoveredIntent> recovered;
  // One transaction: either every open intent is completed, or none is.
  auto body = [&]() -> Status {
    std::vector<AuditRecord> open_intents;
    {
      Statement open = ICAM_TRY(db_.prepare(str_cat(
          "SELECT ", kColumns,
          " FROM audit_records AS i WHERE i.kind = 'intent' AND NOT EXISTS (SELECT 1 FROM "
          "audit_records AS c WHERE c.kind = 'completion' AND c.intent_id = i.id) ORDER BY i.id")));
      while (ICAM_TRY(open.step())) open_intents.push_back(ICAM_TRY(read_row(open)));
    }
    for (const AuditRecord& intent : open_intents) {
      AuditRecord completion;
      completion.kind = RecordKind::completion;
      completion.time_us = now_us();
      completion.pid = intent.pid;
      completion.syscall = intent.syscall;
      completion.capability = intent.capability;
      completion.decision = intent.decision;
      completion.side_effect = intent.side_effect;
      completion.intent_id = intent.id;
      completion.status = CompletionStatus::outcome_unknown;
      completion.never_replay = intent.side_effect == SideEffect::irreversible;
      ICAM_TRY(insert_locked(completion));
      recovered.push_back({intent.id, completion.id, intent.pid, intent.syscall,
                           intent.side_effect, completion.never_replay});
    }
    return ok_status();
  }();
  ICAM_TRY(commit_or_rollback_locked(std::move(body)));
  return recovered;
}

Result<std::vector<AuditRecord>> AuditLog::query(const AuditFilter& filter) const {
  std::string sql = str_cat("SELECT ", kColumns, " FROM audit_records WHERE id > ?1");
  int next = 2;
  std::vector<std::function<void(Statement&)>> binds;
  auto add = [&](std::string_view clause, auto value) {
    sql += str_cat(" AND ", clause, " ?", next);
    binds.push_back([index = next, value](Statement& s) { s.bind(index, value); });
    ++next;
  };
  if (filter.pid) add("pid =", static_cast<int64_t>(*filter.pid));
  if (filter.syscall) add("syscall =", std::string(*filter.syscall));
  if (filter.decision) add("decision =", std::string(name_of(*filter.decision)));
  if (filter.kind) add("kind =", std::string(name_of(*filter.kind)));
  if (filter.since_us) add("time_us >=", *filter.since_us);
  if (filter.until_us) add("time_us <", *filter.until_us);
  sql += " ORDER BY id";
  if (filter.limit > 0) sql += str_cat(" LIMIT ", filter.limit);

  std::lock_guard lock(mutex_);
  const std::string where = str_cat("audit log '", options_.path, "'");
  Statement stmt = ICAM_TRY_CTX(db_.prepare(sql), where);
  stmt.bind(1, filter.after_id);
  for (auto& bind : binds) bind(stmt);
  std::vector<AuditRecord> out;
  while (ICAM_TRY_CTX(stmt.step(), where)) out.push_back(ICAM_TRY_CTX(read_row(stmt), where));
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::tail(int64_t count) const {
  std::lock_guard lock(mutex_);
  const std::string where = str_cat("audit log '", options_.path, "'");
  Statement stmt = ICAM_TRY_CTX(
      db_.prepare(str_cat("SELECT ", kColumns, " FROM audit_records ORDER BY id DESC LIMIT ?1")),
      where);
  stmt.bind(1, count);
  std::vector<AuditRecord> out;
  while (ICAM_TRY_CTX(stmt.step(), where)) out.push_back(ICAM_TRY_CTX(read_row(stmt), where));
  std::reverse(out.begin(), out.end());
  return out;
}

Result<std::optional<AuditRecord>> AuditLog::record(int64_t id) const {
  std::lock_guard lock(mutex_);
  const std::string where = str_cat("audit log '", options_.path, "'");
  Statement stmt = ICAM_TRY_CTX(
      db_.prepare(str_cat("SELECT ", kColumns, " FROM audit_records WHERE id = ?1")), where);
  stmt.bind(1, id);
  if (!ICAM_TRY_CTX(stmt.step(), where)) return std::optional<AuditRecord>();
  return std::optional<AuditRecord>(ICAM_TRY_CTX(read_row(stmt), where));
}

Result<int64_t> AuditLog::export_jsonl(std::ostream& out) const {
  std::lock_guard lock(mutex_);
  const std::string where = str_cat("audit log '", options_.path, "'");
  Statement stmt =
      ICAM_TRY_CTX(db_.prepare(str_cat("SELECT ", kColumns, " FROM audit_records ORDER BY id")),
                   where);
  int64_t count = 0;
  while (ICAM_TRY_CTX(stmt.step(), where)) {
    const AuditRecord r = ICAM_TRY_CTX(read_row(stmt), where);
    out << to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    if (!out) return make_error(Errc::io, where, ": export: the output stream failed at record ", r.id);
    ++count;
  }
  out.flush();
  if (!out) return make_error(Errc::io, where, ": export: the output stream failed");
  return count;
}

Result<VerifyReport> AuditLog::verify() const {
  std::lock_guard lock(mutex_);
  const std::string where = str_cat("audit log '", options_.path, "'");
  auto bad = [&](int64_t id, std::string_view what) {
    return make_error(Errc::corrupt, where, ": record ", id, ": ", what);
  };
  // One read transaction, so the records and the head come from the same snapshot.
  ICAM_TRY_CTX(db_.exec("BEGIN"), where);
  auto walk = [&]() -> Result<VerifyReport> {
    VerifyReport report;
    report.last_hash = std::string(kGenesisHash);
    Statement rows = ICAM_TRY(
        db_.prepare(str_cat("SELECT ", kColumns, " FROM audit_records ORDER BY id")));
    while (ICAM_TRY(rows.step())) {
      const int64_t expected = report.last_id + 1;
      auto parsed = read_row(rows);
      if (!parsed.ok())
        return make_error(Errc::corrupt, where, ": ", parsed.error().message());
      const AuditRecord& r = *parsed;
      if (r.id != expected)
        return bad(expected, str_cat("missing: the ids jump from ", report.last_id, " to ", r.id,
                                     " (a record was removed)"));
      if (r.prev_hash != report.last_hash)
        return bad(r.id, str_cat("prev_hash ", r.prev_hash.substr(0, 16), "... is not record ",
                                 report.last_id, "'s hash ", report.last_hash.substr(0, 16),
                                 "... (records reordered, removed or re-linked)"));
      const std::string computed = compute_hash(r.prev_hash, r);
      if (computed != r.hash)
        return bad(r.id, str_cat("hash mismatch: stored ", r.hash.substr(0, 16),
                                 "..., computed ", computed.substr(0, 16),
                                 "... (the record was edited)"));
      if (r.kind == RecordKind::completion && (r.intent_id <= 0 || r.intent_id >= r.id))
        return bad(r.id, str_cat("completes record ", r.intent_id, ", which is not earlier"));
      report.last_id = r.id;
      report.last_hash = r.hash;
      ++report.records;
    }
    Statement head_stmt =
        ICAM_TRY(db_.prepare("SELECT value FROM audit_meta WHERE key = 'head'"));
    const bool has_head = ICAM_TRY(head_stmt.step());
    if (!has_head) {
      if (report.records == 0) return report;
      return bad(report.last_id, "the log's head is missing from audit_meta (edited?)");
    }
    const auto head = parse_head(head_stmt.column_text(0));
    if (!head) return bad(report.last_id, "the log's head is malformed (edited?)");
    if (head->mac != head_mac(head->id, head->hash))
      return bad(head->id, "the head naming this record has a wrong MAC (audit_meta edited)");
    if (head->id > report.last_id)
      return bad(report.last_id + 1,
                 str_cat("missing: the head names record ", head->id,
                         " as the last, but the log ends at ", report.last_id,
                         " (records removed from the end)"));
    if (head->id < report.last_id)
      return bad(head->id + 1, str_cat("written after the head (record ", head->id,
                                       "), not through the log"));
    if (head->hash != report.last_hash)
      return bad(report.last_id, "its hash differs from the one the head recorded");
    return report;
  }();
  (void)db_.exec("COMMIT");
  return walk;
}

}  // namespace icam::kernel::audit
