#include "memory/process_journal.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "memory/sqlite_file.h"

namespace icam::memory {
namespace {

using sqlite::Database;
using sqlite::Statement;

// The transcript is kept in rows of one appended batch each: (pid, start, count, tokens); a
// process's rows cover [0, processes.tokens) without gap or overlap, which load() checks.
// A checkpoint is self-contained: its transcript is one text (it is written and read whole) after
// its other columns (so listings, which do not read it, do not load it), and its results are
// copies in checkpoint_results, keyed by the checkpoint's id.
constexpr const char* kSchema = R"sql(
CREATE TABLE processes(
  pid INTEGER PRIMARY KEY,
  job TEXT NOT NULL,
  owner INTEGER NOT NULL,
  state TEXT NOT NULL,
  exit TEXT NOT NULL DEFAULT '',
  tokens INTEGER NOT NULL DEFAULT 0,
  pages INTEGER NOT NULL DEFAULT 0,
  page_table TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  context TEXT NOT NULL DEFAULT '');
CREATE TABLE transcript(
  pid INTEGER NOT NULL,
  start INTEGER NOT NULL,
  count INTEGER NOT NULL,
  tokens TEXT NOT NULL,
  PRIMARY KEY (pid, start)) WITHOUT ROWID;
CREATE TABLE tool_results(
  pid INTEGER NOT NULL,
  call_index INTEGER NOT NULL,
  name TEXT NOT NULL,
  arguments TEXT NOT NULL,
  result TEXT NOT NULL,
  at_token INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  PRIMARY KEY (pid, call_index)) WITHOUT ROWID;
CREATE TABLE checkpoints(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pid INTEGER NOT NULL,
  label TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  tool_calls INTEGER NOT NULL,
  page_table TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  context TEXT NOT NULL DEFAULT '',
  transcript TEXT NOT NULL DEFAULT '');
CREATE INDEX checkpoints_by_pid ON checkpoints(pid, id);
)sql";
// Part of the schema (created after kSchema), and of the upgrade to version 3.
constexpr const char* kCheckpointResults = R"sql(
CREATE TABLE checkpoint_results(
  checkpoint INTEGER NOT NULL,
  call_index INTEGER NOT NULL,
  name TEXT NOT NULL,
  arguments TEXT NOT NULL,
  result TEXT NOT NULL,
  at_token INTEGER NOT NULL,
  PRIMARY KEY (checkpoint, call_index));
)sql";

// Version 1 to 2: the context budget's compactions.
constexpr const char* kUpgradeTo2 = R"sql(
ALTER TABLE processes ADD COLUMN context TEXT NOT NULL DEFAULT '';
ALTER TABLE checkpoints ADD COLUMN context TEXT NOT NULL DEFAULT '';
)sql";

// Version 2 to 3: self-contained checkpoints (with kCheckpointResults; the rows are filled by
// fill_checkpoints_locked).
constexpr const char* kUpgradeTo3 = R"sql(
ALTER TABLE checkpoints ADD COLUMN transcript TEXT NOT NULL DEFAULT '';
)sql";

std::string encode_tokens(std::span<const int32_t> tokens) {
  std::string out;
  out.reserve(tokens.size() * 6);
  for (int32_t t : tokens) {
    if (!out.empty()) out += ' ';
    out += std::to_string(t);
  }
  return out;
}

// Appends the tokens of `text` to `out`; false when it is not a list of integers.
bool decode_tokens(std::string_view text, std::vector<int32_t>& out) {
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == ' ') {
      ++p;
      continue;
    }
    int32_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || (next < end && *next != ' ')) return false;
    out.push_back(v);
    p = next;
  }
  return true;
}

std::string encode_hashes(std::span<const PageHash> hashes) {
  std::string out;
  for (const auto& h : hashes) {
    if (!out.empty()) out += ' ';
    out += to_hex(h);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode_hashes(std::string_view text, std::vector<PageHash>& out) {
  size_t at = 0;
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    if (text.size() - at < 64) return false;
    PageHash h{};
    for (size_t i = 0; i < 32; ++i) {
      const int hi = hex_value(text[at + 2 * i]), lo = hex_value(text[at + 2 * i + 1]);
      if (hi < 0 || lo < 0) return false;
      h[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    out.push_back(h);
    at += 64;
  }
  return true;
}

int64_t as_int(uint64_t pid) {
  return static_cast<int64_t>(pid);
}

// The process's transcript length and state; not_found when it was never begun.
struct Row {
  int64_t tokens = 0;
  std::string state;
};
Result<Row> process_row(const Database& db, uint64_t pid) {
  Statement s = ICAM_TRY(db.prepare("SELECT tokens, state FROM processes WHERE pid = ?"));
  s.bind(1, as_int(pid));
  if (!ICAM_TRY(s.step())) return make_error(Errc::not_found, "no process ", pid);
  return Row{s.column_int(0), s.column_text(1)};
}

Result<Row> live_row(const Database& db, uint64_t pid) {
  Row row = ICAM_TRY(process_row(db, pid));
  if (row.state == kJournalExited)
    return make_error(Errc::invalid_argument, "process ", pid, " has exited");
  return row;
}

// The transcript of `pid` from its rows, which must cover [0, tokens) without gap or overlap.
Result<std::vector<int32_t>> read_transcript(const Database& db, uint64_t pid, int64_t tokens,
                                             const std::string& where) {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(tokens));
  Statement t = ICAM_TRY_CTX(
      db.prepare("SELECT start, count, tokens FROM transcript WHERE pid = ? ORDER BY start"),
      where);
  t.bind(1, as_int(pid));
  while (ICAM_TRY_CTX(t.step(), where)) {
    const int64_t start = t.column_int(0), count = t.column_int(1);
    if (start != static_cast<int64_t>(out.size()) || !decode_tokens(t.column_text(2), out) ||
        static_cast<int64_t>(out.size()) != start + count)
      return make_error(Errc::corrupt, where, ": transcript row at token ", start,
                        " does not follow the rows before it");
  }
  if (static_cast<int64_t>(out.size()) != tokens)
    return make_error(Errc::corrupt, where, ": the transcript holds ", out.size(),
                      " tokens, the process row says ", tokens);
  return out;
}

// A version-1 or -2 checkpoint recorded only lengths: its transcript was the first `tokens` of
// the process's (a compaction deleted the process's checkpoints then, so each one left is a
// prefix of it) and its results those below `tool_calls` but a kept call's result past that
// prefix, as restore() and the kernel computed them then. A transcript shorter than `tokens` is
// left short, for restore() to find corrupt.
void legacy_checkpoint_data(const JournalProcess& p, JournalCheckpoint& c) {
  const auto n = std::min(static_cast<size_t>(std::max<int64_t>(c.tokens, 0)), p.transcript.size());
  c.transcript.assign(p.transcript.begin(), p.transcript.begin() + static_cast<std::ptrdiff_t>(n));
  c.tool_results.clear();
  for (const JournalToolResult& r : p.tool_results)
    if (r.call_index < c.tool_calls &&
        (r.call_index < c.context.calls || r.at_token <= static_cast<int64_t>(n)))
      c.tool_results.push_back(r);
}

Status touch(const Database& db, uint64_t pid) {
  Statement s = ICAM_TRY(db.prepare("UPDATE processes SET updated_us = ? WHERE pid = ?"));
  s.bind(1, unix_micros());
  s.bind(2, as_int(pid));
  return s.run();
}

}  // namespace

std::string to_json_text(const JournalContext& c) {
  if (!c.compacted()) return {};
  return nlohmann::json{{"compactions", c.compactions}, {"calls", c.calls},
                        {"start", c.start},             {"generated", c.generated},
                        {"appended", c.appended},       {"turns", c.turns}}
      .dump();
}

Result<JournalContext> parse_journal_context(std::string_view text) {
  JournalContext c;
  if (text.empty()) return c;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return make_error(Errc::corrupt, "its context record is not a JSON object");
  for (auto [key, field] : {std::pair{"compactions", &c.compactions}, {"calls", &c.calls},
                            {"start", &c.start}, {"generated", &c.generated},
                            {"appended", &c.appended}, {"turns", &c.turns}}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      return make_error(Errc::corrupt, "its context record has no count '", key, "'");
    *field = j[key].get<int64_t>();
  }
  return c;
}

Result<std::unique_ptr<ProcessJournal>> ProcessJournal::open(const std::string& path,
                                                             JournalOptions options) {
  Database db =
      ICAM_TRY(open_sqlite_file(path, options.read_only, options.busy_timeout_ms, "journal"));
  std::unique_ptr<ProcessJournal> journal(new ProcessJournal(std::move(db), path, options));
  ICAM_TRY_CTX(journal->init_schema(), "journal '" + path + "'");
  return journal;
}

Status ProcessJournal::init_schema() {
  if (options_.max_pages > 0)
    ICAM_TRY(db_.query_int("PRAGMA max_page_count=" + std::to_string(options_.max_pages)));
  const int64_t version = ICAM_TRY(sqlite_schema_version(db_));
  if (version == kJournalSchemaVersion) return ok_status();
  if (version == 1 || version == 2) {
    // Version 1 was written before compactions: nothing in it is compacted. Versions 1 and 2
    // kept checkpoints as lengths into the process's transcript.
    if (options_.read_only) {
      if (version == 1) context_column_ = "''";
      legacy_checkpoints_ = true;
      return ok_status();
    }
    return in_transaction(db_, [&]() -> Status {
      if (version == 1) ICAM_TRY(db_.exec(kUpgradeTo2));
      ICAM_TRY(db_.exec(kUpgradeTo3));
      ICAM_TRY(db_.exec(kCheckpointResults));
      ICAM_TRY(fill_checkpoints_locked());
      return db_.exec("PRAGMA user_version=" + std::to_string(kJournalSchemaVersion));
    });
  }
  if (version > kJournalSchemaVersion)
    return make_error(Errc::unsupported, "schema version ", version,
                      " is newer than this icam's (", kJournalSchemaVersion, ")");
  if (ICAM_TRY(db_.query_int("SELECT count(*) FROM sqlite_master")) != 0)
    return make_error(Errc::corrupt, "holds tables but no schema version: not an icam journal");
  if (options_.read_only) return make_error(Errc::not_found, "empty: no journal was written yet");
  return in_transaction(db_, [&]() -> Status {
    ICAM_TRY(db_.exec(kSchema));
    ICAM_TRY(db_.exec(kCheckpointResults));
    return db_.exec("PRAGMA user_version=" + std::to_string(kJournalSchemaVersion));
  });
}

Status ProcessJournal::fill_checkpoints_locked() {
  std::vector<JournalCheckpoint> old;
  std::vector<uint64_t> pids;
  {
    Statement s = ICAM_TRY(db_.prepare(
        "SELECT id, pid, tokens, tool_calls, context FROM checkpoints ORDER BY pid, id"));
    while (ICAM_TRY(s.step())) {
      JournalCheckpoint c;
      c.id = s.column_int(0);
      c.tokens = s.column_int(2);
      c.tool_calls = s.column_int(3);
      // A malformed context stays in the row, where restore() reports it.
      auto context = parse_journal_context(s.column_text(4));
      if (context.ok()) c.context = *context;
      old.push_back(std::move(c));
      pids.push_back(static_cast<uint64_t>(s.column_int(1)));
    }
  }
  Statement set = ICAM_TRY(db_.prepare("UPDATE checkpoints SET transcript = ? WHERE id = ?"));
  Statement add = ICAM_TRY(db_.prepare(
      "INSERT INTO checkpoint_results(checkpoint, call_index, name, arguments, result, at_token) "
      "VALUES (?, ?, ?, ?, ?, ?)"));
  std::optional<JournalProcess> process;  // the last one loaded: the rows come by pid
  for (size_t i = 0; i < old.size(); ++i) {
    if (!process || process->pid != pids[i]) {
      // A process that does not load (a damaged row) leaves its checkpoints empty, so that
      // restore() reports them corrupt, rather than stop every kernel opening the file.
      auto loaded = load_locked(pids[i]);
      if (loaded.ok()) {
        process = std::move(*loaded);
      } else {
        process.reset();
        continue;
      }
    }
    JournalCheckpoint& c = old[i];
    legacy_checkpoint_data(*process, c);
    set.reset();
    set.bind(1, encode_tokens(c.transcript));
    set.bind(2, c.id);
    ICAM_TRY(set.run());
    for (const JournalToolResult& r : c.tool_results) {
      add.reset();
      add.bind(1, c.id);
      add.bind(2, r.call_index);
      add.bind(3, r.name);
      add.bind(4, r.arguments);
      add.bind(5, r.result);
      add.bind(6, r.at_token);
      ICAM_TRY(add.run());
    }
  }
  return ok_status();
}

Status ProcessJournal::write(std::string_view what, const std::function<Status()>& body) {
  if (options_.read_only)
    return make_error(Errc::permission_denied, "journal '", path_, "': opened read-only");
  Status st = in_transaction(db_, body);
  if (!st.ok()) return std::move(st).error().with_context(str_cat("journal '", path_, "': ", what));
  return st;
}

Status ProcessJournal::begin_process(uint64_t pid, std::string_view job, uint32_t owner_uid,
                                     std::span<const int32_t> tokens) {
  if (pid == 0) return make_error(Errc::invalid_argument, "pid 0");
  if (!nlohmann::json::accept(job))
    return make_error(Errc::invalid_argument, "process ", pid, ": the job is not JSON");
  std::lock_guard lock(mu_);
  return write(str_cat("begin ", pid), [&]() -> Status {
    Statement exists = ICAM_TRY(db_.prepare("SELECT 1 FROM processes WHERE pid = ?"));
    exists.bind(1, as_int(pid));
    if (ICAM_TRY(exists.step()))
      return make_error(Errc::invalid_argument, "process ", pid, " is journaled already");
    Statement s = ICAM_TRY(db_.prepare(
        "INSERT INTO processes(pid, job, owner, state, created_us, updated_us) "
        "VALUES (?, ?, ?, 'new', ?, ?)"));
    const int64_t now = unix_micros();
    s.bind(1, as_int(pid));
    s.bind(2, job);
    s.bind(3, static_cast<int64_t>(owner_uid));
    s.bind(4, now);
    s.bind(5, now);
    ICAM_TRY(s.run());
    return append_locked(StepAppend{pid, tokens, {}});
  });
}

Status ProcessJournal::append_locked(const StepAppend& a) {
  if (a.tokens.empty() && a.pages.empty()) return ok_status();
  const Row row = ICAM_TRY(live_row(db_, a.pid));
  if (!a.tokens.empty()) {
    Statement s = ICAM_TRY(
        db_.prepare("INSERT INTO transcript(pid, start, count, tokens) VALUES (?, ?, ?, ?)"));
    s.bind(1, as_int(a.pid));
    s.bind(2, row.tokens);
    s.bind(3, static_cast<int64_t>(a.tokens.size()));
    s.bind(4, encode_tokens(a.tokens));
    ICAM_TRY(s.run());
  }
  Statement u = ICAM_TRY(db_.prepare(
      "UPDATE processes SET tokens = tokens + ?, pages = pages + ?, "
      "page_table = page_table || (CASE WHEN page_table = '' OR ? = '' THEN '' ELSE ' ' END) || ?, "
      "updated_us = ? WHERE pid = ?"));
  const std::string hashes = encode_hashes(a.pages);
  u.bind(1, static_cast<int64_t>(a.tokens.size()));
  u.bind(2, static_cast<int64_t>(a.pages.size()));
  u.bind(3, hashes);
  u.bind(4, hashes);
  u.bind(5, unix_micros());
  u.bind(6, as_int(a.pid));
  return u.run();
}

Status ProcessJournal::append_tokens(uint64_t pid, std::span<const int32_t> tokens) {
  std::lock_guard lock(mu_);
  return write(str_cat("append to ", pid),
               [&] { return append_locked(StepAppend{pid, tokens, {}}); });
}

Status ProcessJournal::append_pages(uint64_t pid, std::span<const PageHash> pages) {
  std::lock_guard lock(mu_);
  return write(str_cat("append pages to ", pid),
               [&] { return append_locked(StepAppend{pid, {}, pages}); });
}

Status ProcessJournal::append_step(std::span<const StepAppend> step) {
  std::lock_guard lock(mu_);
  return write("append a step", [&]() -> Status {
    for (const auto& a : step) ICAM_TRY_CTX(append_locked(a), str_cat("process ", a.pid));
    return ok_status();
  });
}

Status ProcessJournal::record_tool_result(uint64_t pid, int64_t call_index, std::string_view name,
                                          std::string_view arguments, std::string_view result,
                                          int64_t at_token) {
  if (call_index < 0) return make_error(Errc::invalid_argument, "call index ", call_index);
  std::lock_guard lock(mu_);
  return write(str_cat("record tool result ", call_index, " of ", pid), [&]() -> Status {
    const Row row = ICAM_TRY(live_row(db_, pid));
    if (at_token > row.tokens)
      return make_error(Errc::invalid_argument, "call ", call_index, " at token ", at_token,
                        " is past the transcript's ", row.tokens, " tokens");
    Statement exists =
        ICAM_TRY(db_.prepare("SELECT name FROM tool_results WHERE pid = ? AND call_index = ?"));
    exists.bind(1, as_int(pid));
    exists.bind(2, call_index);
    if (ICAM_TRY(exists.step()))
      return make_error(Errc::invalid_argument, "call ", call_index, " (",
                        exists.column_text(0), ") has a result recorded already");
    Statement s = ICAM_TRY(db_.prepare(
        "INSERT INTO tool_results(pid, call_index, name, arguments, result, at_token, created_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"));
    s.bind(1, as_int(pid));
    s.bind(2, call_index);
    s.bind(3, name);
    s.bind(4, arguments);
    s.bind(5, result);
    s.bind(6, at_token < 0 ? row.tokens : at_token);
    s.bind(7, unix_micros());
    ICAM_TRY(s.run());
    return touch(db_, pid);
  });
}

Result<std::optional<JournalToolResult>> ProcessJournal::tool_result(uint64_t pid,
                                                                     int64_t call_index) const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT name, arguments, result, at_token FROM tool_results "
                  "WHERE pid = ? AND call_index = ?"),
      where);
  s.bind(1, as_int(pid));
  s.bind(2, call_index);
  if (!ICAM_TRY_CTX(s.step(), where)) return std::optional<JournalToolResult>();
  return std::optional<JournalToolResult>(JournalToolResult{
      call_index, s.column_text(0), s.column_text(1), s.column_text(2), s.column_int(3)});
}

Status ProcessJournal::replace_context(uint64_t pid, std::span<const int32_t> tokens,
                                       const JournalContext& context, int64_t shift) {
  if (context.start < 0 || context.start > static_cast<int64_t>(tokens.size()) ||
      context.calls < 0)
    return make_error(Errc::invalid_argument, "process ", pid, ": a compacted context whose kept ",
                      "turns start at token ", context.start, " of ", tokens.size());
  std::lock_guard lock(mu_);
  return write(str_cat("compact the context of ", pid), [&]() -> Status {
    ICAM_TRY(live_row(db_, pid));
    // The checkpoints stay: each holds its own transcript and results.
    Statement d = ICAM_TRY(db_.prepare("DELETE FROM transcript WHERE pid = ?"));
    d.bind(1, as_int(pid));
    ICAM_TRY(d.run());
    Statement r = ICAM_TRY(db_.prepare(
        "UPDATE tool_results SET at_token = at_token - ? WHERE pid = ? AND call_index >= ?"));
    r.bind(1, shift);
    r.bind(2, as_int(pid));
    r.bind(3, context.calls);
    ICAM_TRY(r.run());
    Statement bad = ICAM_TRY(db_.prepare(
        "SELECT count(*) FROM tool_results WHERE pid = ? AND call_index >= ? AND "
        "(at_token < ? OR at_token > ?)"));
    bad.bind(1, as_int(pid));
    bad.bind(2, context.calls);
    bad.bind(3, context.start);
    bad.bind(4, static_cast<int64_t>(tokens.size()));
    ICAM_TRY(bad.step());
    if (bad.column_int(0) != 0)
      return make_error(Errc::invalid_argument, "process ", pid, ": ", bad.column_int(0),
                        " kept tool results would fall outside the compacted context");
    Statement u = ICAM_TRY(db_.prepare(
        "UPDATE processes SET tokens = 0, pages = 0, page_table = '', context = ?, "
        "updated_us = ? WHERE pid = ?"));
    u.bind(1, to_json_text(context));
    u.bind(2, unix_micros());
    u.bind(3, as_int(pid));
    ICAM_TRY(u.run());
    return append_locked(StepAppend{pid, tokens, {}});
  });
}

Status ProcessJournal::set_state(uint64_t pid, std::string_view state) {
  if (state.empty() || state == kJournalExited)
    return make_error(Errc::invalid_argument, "state '", state, "' (exit() ends a process)");
  std::lock_guard lock(mu_);
  return write(str_cat("set the state of ", pid), [&]() -> Status {
    ICAM_TRY(live_row(db_, pid));
    Statement s =
        ICAM_TRY(db_.prepare("UPDATE processes SET state = ?, updated_us = ? WHERE pid = ?"));
    s.bind(1, state);
    s.bind(2, unix_micros());
    s.bind(3, as_int(pid));
    return s.run();
  });
}

Status ProcessJournal::exit(uint64_t pid, std::string_view exit_status) {
  if (!nlohmann::json::accept(exit_status))
    return make_error(Errc::invalid_argument, "process ", pid, ": the exit status is not JSON");
  std::lock_guard lock(mu_);
  return write(str_cat("exit ", pid), [&]() -> Status {
    ICAM_TRY(live_row(db_, pid));
    Statement s = ICAM_TRY(db_.prepare(
        "UPDATE processes SET state = 'exited', exit = ?, updated_us = ? WHERE pid = ?"));
    s.bind(1, exit_status);
    s.bind(2, unix_micros());
    s.bind(3, as_int(pid));
    return s.run();
  });
}

Result<int64_t> ProcessJournal::checkpoint(uint64_t pid, std::string_view label) {
  if (label.empty() || label.size() > 128)
    return make_error(Errc::invalid_argument, "checkpoint label of ", label.size(),
                      " bytes (1 to 128)");
  std::lock_guard lock(mu_);
  int64_t id = 0;
  Status st = write(str_cat("checkpoint ", pid), [&]() -> Status {
    const Row row = ICAM_TRY(process_row(db_, pid));
    // Decoded and encoded again, so that a damaged transcript is refused here, not copied.
    const std::vector<int32_t> transcript =
        ICAM_TRY(read_transcript(db_, pid, row.tokens, str_cat("process ", pid)));
    Statement s = ICAM_TRY(db_.prepare(
        "INSERT INTO checkpoints(pid, label, tokens, tool_calls, page_table, created_us, context, "
        "transcript) "
        "SELECT pid, ?, tokens, (SELECT count(*) FROM tool_results WHERE pid = ?), page_table, ?, "
        "context, ? FROM processes WHERE pid = ?"));
    s.bind(1, label);
    s.bind(2, as_int(pid));
    s.bind(3, unix_micros());
    s.bind(4, encode_tokens(transcript));
    s.bind(5, as_int(pid));
    ICAM_TRY(s.run());
    id = sqlite3_last_insert_rowid(db_.handle());
    Statement r = ICAM_TRY(db_.prepare(
        "INSERT INTO checkpoint_results(checkpoint, call_index, name, arguments, result, at_token) "
        "SELECT ?, call_index, name, arguments, result, at_token FROM tool_results WHERE pid = ?"));
    r.bind(1, id);
    r.bind(2, as_int(pid));
    return r.run();
  });
  if (!st.ok()) return std::move(st).error();
  return id;
}

Result<JournalCheckpoint> ProcessJournal::restore(uint64_t pid, int64_t checkpoint_id) const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "': restore ", pid);
  Statement s = ICAM_TRY_CTX(
      db_.prepare(str_cat("SELECT label, tokens, tool_calls, page_table, created_us, ",
                          context_column_, ", ", legacy_checkpoints_ ? "''" : "transcript",
                          " FROM checkpoints WHERE id = ? AND pid = ?")),
      where);
  s.bind(1, checkpoint_id);
  s.bind(2, as_int(pid));
  if (!ICAM_TRY_CTX(s.step(), where))
    return make_error(Errc::not_found, where, ": no checkpoint ", checkpoint_id);
  const std::string what = str_cat(where, ": checkpoint ", checkpoint_id);
  JournalCheckpoint c;
  c.id = checkpoint_id;
  c.label = s.column_text(0);
  c.tokens = s.column_int(1);
  c.tool_calls = s.column_int(2);
  c.created_us = s.column_int(4);
  c.context = ICAM_TRY_CTX(parse_journal_context(s.column_text(5)), what);
  if (!decode_hashes(s.column_text(3), c.page_table))
    return make_error(Errc::corrupt, what, ": malformed page table");
  if (legacy_checkpoints_) {
    legacy_checkpoint_data(ICAM_TRY(load_locked(pid)), c);
  } else {
    if (!decode_tokens(s.column_text(6), c.transcript))
      return make_error(Errc::corrupt, what, ": malformed transcript");
    Statement r = ICAM_TRY_CTX(
        db_.prepare("SELECT call_index, name, arguments, result, at_token FROM checkpoint_results "
                    "WHERE checkpoint = ? ORDER BY call_index"),
        what);
    r.bind(1, checkpoint_id);
    while (ICAM_TRY_CTX(r.step(), what))
      c.tool_results.push_back({r.column_int(0), r.column_text(1), r.column_text(2),
                                r.column_text(3), r.column_int(4)});
  }
  if (static_cast<int64_t>(c.transcript.size()) != c.tokens)
    return make_error(Errc::corrupt, what, ": its transcript holds ", c.transcript.size(),
                      " tokens, the checkpoint says ", c.tokens);
  if (static_cast<int64_t>(c.tool_results.size()) != c.tool_calls)
    return make_error(Errc::corrupt, what, ": it holds ", c.tool_results.size(),
                      " tool results, the checkpoint says ", c.tool_calls);
  for (size_t i = 0; i < c.tool_results.size(); ++i) {
    const JournalToolResult& r = c.tool_results[i];
    // A moved call's position means nothing; a kept one's lies in the transcript.
    const bool moved = r.call_index < c.context.calls;
    if (r.call_index != static_cast<int64_t>(i) ||
        (!moved && (r.at_token < 0 || r.at_token > c.tokens)))
      return make_error(Errc::corrupt, what, ": tool result ", i,
                        " is missing or outside its transcript");
  }
  return c;
}

Result<uint64_t> ProcessJournal::checkpoint_pid(int64_t checkpoint_id) const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  Statement s = ICAM_TRY_CTX(db_.prepare("SELECT pid FROM checkpoints WHERE id = ?"), where);
  s.bind(1, checkpoint_id);
  if (!ICAM_TRY_CTX(s.step(), where))
    return make_error(Errc::not_found, "no checkpoint ", checkpoint_id);
  return static_cast<uint64_t>(s.column_int(0));
}

Result<int64_t> ProcessJournal::find_checkpoint(uint64_t pid, std::string_view label) const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT max(id) FROM checkpoints WHERE pid = ? AND label = ?"), where);
  s.bind(1, as_int(pid));
  s.bind(2, label);
  if (!ICAM_TRY_CTX(s.step(), where) || s.column_int(0) == 0)
    return make_error(Errc::not_found, "process ", pid, " has no checkpoint labelled '", label,
                      "'");
  return s.column_int(0);
}

Status ProcessJournal::forget(uint64_t pid) {
  std::lock_guard lock(mu_);
  return write(str_cat("forget ", pid), [&]() -> Status {
    const Row row = ICAM_TRY(process_row(db_, pid));
    if (row.state != kJournalExited)
      return make_error(Errc::invalid_argument, "process ", pid, " has not exited");
    Statement copies = ICAM_TRY(db_.prepare(
        "DELETE FROM checkpoint_results WHERE checkpoint IN "
        "(SELECT id FROM checkpoints WHERE pid = ?)"));
    copies.bind(1, as_int(pid));
    ICAM_TRY(copies.run());
    for (const char* table : {"transcript", "tool_results", "checkpoints", "processes"}) {
      Statement s = ICAM_TRY(db_.prepare(str_cat("DELETE FROM ", table, " WHERE pid = ?")));
      s.bind(1, as_int(pid));
      ICAM_TRY(s.run());
    }
    return ok_status();
  });
}

Result<int64_t> ProcessJournal::prune_exited(size_t keep) {
  std::lock_guard lock(mu_);
  int64_t removed = 0;
  Status st = write("prune exited processes", [&]() -> Status {
    // The victims, into a temporary table, so each table's DELETE names the same set.
    ICAM_TRY(db_.exec("CREATE TEMP TABLE IF NOT EXISTS prune(pid INTEGER PRIMARY KEY)"));
    ICAM_TRY(db_.exec("DELETE FROM temp.prune"));
    Statement pick = ICAM_TRY(db_.prepare(
        "INSERT INTO temp.prune(pid) SELECT pid FROM (SELECT pid FROM processes "
        "WHERE state = 'exited' AND pid NOT IN (SELECT pid FROM checkpoints) "
        "ORDER BY updated_us DESC, pid DESC LIMIT -1 OFFSET ?) "
        "WHERE pid <> (SELECT max(pid) FROM processes)"));
    pick.bind(1, static_cast<int64_t>(keep));
    ICAM_TRY(pick.run());
    removed = ICAM_TRY(db_.query_int("SELECT count(*) FROM temp.prune"));
    for (const char* table : {"transcript", "tool_results", "processes"}) {
      ICAM_TRY(db_.exec(str_cat("DELETE FROM ", table, " WHERE pid IN (SELECT pid FROM temp.prune)")));
    }
    return db_.exec("DELETE FROM temp.prune");
  });
  if (!st.ok()) return std::move(st).error();
  return removed;
}

Result<JournalProcess> ProcessJournal::load(uint64_t pid) const {
  std::lock_guard lock(mu_);
  return load_locked(pid);
}

Result<JournalProcess> ProcessJournal::load_locked(uint64_t pid) const {
  const std::string where = str_cat("journal '", path_, "': process ", pid);
  JournalProcess p;
  p.pid = pid;
  {
    Statement s = ICAM_TRY_CTX(
        db_.prepare("SELECT job, owner, state, exit, tokens, pages, page_table, created_us, "
                    "updated_us, " + context_column_ + " FROM processes WHERE pid = ?"),
        where);
    s.bind(1, as_int(pid));
    if (!ICAM_TRY_CTX(s.step(), where)) return make_error(Errc::not_found, where, ": unknown");
    p.job = s.column_text(0);
    p.owner_uid = static_cast<uint32_t>(s.column_int(1));
    p.state = s.column_text(2);
    p.exit = s.column_text(3);
    const int64_t tokens = s.column_int(4);
    const int64_t pages = s.column_int(5);
    if (!decode_hashes(s.column_text(6), p.page_table) ||
        static_cast<int64_t>(p.page_table.size()) != pages)
      return make_error(Errc::corrupt, where, ": the page table does not hold ", pages,
                        " hashes");
    p.created_us = s.column_int(7);
    p.updated_us = s.column_int(8);
    p.context = ICAM_TRY_CTX(parse_journal_context(s.column_text(9)), where);
    p.transcript = ICAM_TRY(read_transcript(db_, pid, tokens, where));
  }
  Statement r = ICAM_TRY_CTX(
      db_.prepare("SELECT call_index, name, arguments, result, at_token FROM tool_results "
                  "WHERE pid = ? ORDER BY call_index"),
      where);
  r.bind(1, as_int(pid));
  while (ICAM_TRY_CTX(r.step(), where))
    p.tool_results.push_back({r.column_int(0), r.column_text(1), r.column_text(2),
                              r.column_text(3), r.column_int(4)});
  Statement c = ICAM_TRY_CTX(
      db_.prepare("SELECT id, label, tokens, tool_calls, page_table, created_us, " +
                  context_column_ + " FROM checkpoints WHERE pid = ? ORDER BY id"),
      where);
  c.bind(1, as_int(pid));
  while (ICAM_TRY_CTX(c.step(), where)) {
    JournalCheckpoint k;
    k.id = c.column_int(0);
    k.label = c.column_text(1);
    k.tokens = c.column_int(2);
    k.tool_calls = c.column_int(3);
    if (!decode_hashes(c.column_text(4), k.page_table))
      return make_error(Errc::corrupt, where, ": checkpoint ", k.id, ": malformed page table");
    k.created_us = c.column_int(5);
    k.context = ICAM_TRY_CTX(parse_journal_context(c.column_text(6)), where);
    p.checkpoints.push_back(std::move(k));
  }
  return p;
}

Result<std::vector<JournalProcess>> ProcessJournal::live_processes() const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  std::vector<uint64_t> pids;
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT pid FROM processes WHERE state != 'exited' ORDER BY pid"), where);
  while (ICAM_TRY_CTX(s.step(), where)) pids.push_back(static_cast<uint64_t>(s.column_int(0)));
  std::vector<JournalProcess> out;
  for (uint64_t pid : pids) out.push_back(ICAM_TRY(load_locked(pid)));
  return out;
}

Result<std::vector<JournalSummary>> ProcessJournal::summaries() const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT pid, job, owner, state, tokens, pages, "
                  "(SELECT count(*) FROM tool_results r WHERE r.pid = p.pid), "
                  "(SELECT count(*) FROM checkpoints c WHERE c.pid = p.pid), updated_us "
                  "FROM processes p ORDER BY pid"),
      where);
  std::vector<JournalSummary> out;
  while (ICAM_TRY_CTX(s.step(), where)) {
    JournalSummary j;
    j.pid = static_cast<uint64_t>(s.column_int(0));
    const auto job = nlohmann::json::parse(s.column_text(1), nullptr, false);
    if (job.is_object() && job.contains("name") && job["name"].is_string())
      j.name = job["name"].get<std::string>();
    j.owner_uid = static_cast<uint32_t>(s.column_int(2));
    j.state = s.column_text(3);
    j.tokens = s.column_int(4);
    j.pages = s.column_int(5);
    j.tool_results = s.column_int(6);
    j.checkpoints = s.column_int(7);
    j.updated_us = s.column_int(8);
    out.push_back(std::move(j));
  }
  return out;
}

Result<uint64_t> ProcessJournal::max_pid() const {
  std::lock_guard lock(mu_);
  return static_cast<uint64_t>(ICAM_TRY_CTX(
      db_.query_int("SELECT coalesce(max(pid), 0) FROM processes"), "journal '" + path_ + "'"));
}

Result<std::vector<std::pair<uint64_t, std::string>>> ProcessJournal::exit_records(
    size_t limit) const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT pid, exit FROM (SELECT pid, exit, updated_us FROM processes "
                  "WHERE state = 'exited' ORDER BY updated_us DESC, pid DESC LIMIT ?) "
                  "ORDER BY updated_us, pid"),
      where);
  s.bind(1, static_cast<int64_t>(limit));
  std::vector<std::pair<uint64_t, std::string>> out;
  while (ICAM_TRY_CTX(s.step(), where))
    out.emplace_back(static_cast<uint64_t>(s.column_int(0)), s.column_text(1));
  return out;
}

Status ProcessJournal::check_writable() {
  std::lock_guard lock(mu_);
  return write("check that it can be written", [] { return ok_status(); });
}

Result<JournalStats> ProcessJournal::stats() const {
  std::lock_guard lock(mu_);
  const std::string where = str_cat("journal '", path_, "'");
  JournalStats st;
  st.processes = ICAM_TRY_CTX(db_.query_int("SELECT count(*) FROM processes"), where);
  st.live = ICAM_TRY_CTX(
      db_.query_int("SELECT count(*) FROM processes WHERE state != 'exited'"), where);
  st.transcript_rows = ICAM_TRY_CTX(db_.query_int("SELECT count(*) FROM transcript"), where);
  st.tokens =
      ICAM_TRY_CTX(db_.query_int("SELECT coalesce(sum(tokens), 0) FROM processes"), where);
  st.tool_results = ICAM_TRY_CTX(db_.query_int("SELECT count(*) FROM tool_results"), where);
  st.checkpoints = ICAM_TRY_CTX(db_.query_int("SELECT count(*) FROM checkpoints"), where);
  for (const std::string& file : {path_, path_ + "-wal"}) {
    std::error_code error;
    const auto size = std::filesystem::file_size(file, error);
    if (!error) st.file_bytes += static_cast<int64_t>(size);
  }
  return st;
}

}  // namespace icam::memory
