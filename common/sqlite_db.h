// A thin RAII layer over the sqlite3 C API, shared by the SQLite files icam keeps (the audit log,
// the process journal, archival memory): a connection, prepared statements, and errors turned
// into icam Errors with SQLite's own message and a code callers can branch on.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::sqlite {

// SQLITE_BUSY and SQLITE_LOCKED -> unavailable, SQLITE_FULL -> resource_exhausted,
// SQLITE_CORRUPT and SQLITE_NOTADB -> corrupt, SQLITE_READONLY and SQLITE_PERM -> permission_denied,
// SQLITE_CONSTRAINT -> invalid_argument, anything else -> io. `what` says what was being done.
Error sqlite_error(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  ~Statement();

  // Binding is 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT).
  void bind(int index, int64_t value);
  void bind(int index, std::string_view text);
  void bind_null(int index);

  // One step: true when a row is available, false when done; an error otherwise.
  Result<bool> step();
  // Runs to completion, ignoring rows.
  Status run();
  // Clears bindings and rewinds, so the statement can be reused.
  void reset();

  int64_t column_int(int index) const;
  std::string column_text(int index) const;
  bool column_is_null(int index) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  // Opens (or creates, unless read_only) the database file.
  static Result<Database> open(const std::string& path, bool read_only);

  Database() = default;
  Database(Database&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Database& operator=(Database&& other) noexcept;
  ~Database();

  // Runs one or more statements without results.
  Status exec(const std::string& sql) const;
  Result<Statement> prepare(std::string_view sql) const;
  // The first column of the first row of `sql` as an integer (e.g. a PRAGMA).
  Result<int64_t> query_int(const std::string& sql) const;
  Result<std::string> query_text(const std::string& sql) const;

  sqlite3* handle() const { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

}  // namespace icam::sqlite
