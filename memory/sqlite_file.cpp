#include "memory/sqlite_file.h"

#include <chrono>
#include <filesystem>

namespace icam::memory {

using sqlite::Database;

Result<Database> open_sqlite_file(const std::string& path, bool read_only, int busy_timeout_ms,
                                  std::string_view what) {
  std::error_code error;
  if (read_only && !std::filesystem::exists(path, error))
    return make_error(Errc::not_found, what, " '", path, "' does not exist");
  Database db = ICAM_TRY_CTX(Database::open(path, read_only), str_cat(what, " '", path, "'"));
  sqlite3_busy_timeout(db.handle(), busy_timeout_ms);
  // Reading the schema reads the file's header: a file that is not a database fails here.
  auto probe = db.query_int("SELECT count(*) FROM sqlite_master");
  if (!probe.ok())
    return std::move(probe).error().with_context(str_cat(what, " '", path, "'"));
  if (!read_only) {
    auto mode = db.query_text("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return std::move(mode).error().with_context(str_cat(what, " '", path, "'"));
    if (*mode != "wal")
      return make_error(Errc::io, what, " '", path, "': could not switch to WAL mode (still ",
                        *mode, ")");
    ICAM_TRY_CTX(db.exec("PRAGMA synchronous=FULL"), str_cat(what, " '", path, "'"));
  }
  return db;
}

Result<int64_t> sqlite_schema_version(const Database& db) {
  return db.query_int("PRAGMA user_version");
}

Status in_transaction(const Database& db, const std::function<Status()>& body) {
  ICAM_TRY(db.exec("BEGIN IMMEDIATE"));
  Status status = body();
  if (status.ok()) status = db.exec("COMMIT");
  // SQLite may have rolled back already (a full disk does); a second rollback is then refused,
  // which changes nothing.
  if (!status.ok() && !sqlite3_get_autocommit(db.handle())) (void)db.exec("ROLLBACK");
  return status;
}

int64_t unix_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace icam::memory
