#include "common/sqlite_db.h"

#include <utility>

namespace icam::sqlite {

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  Errc code = Errc::io;
  switch (rc & 0xff) {  // the primary code; extended codes add detail above the low byte
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = Errc::unavailable;
      break;
    case SQLITE_FULL:
      code = Errc::resource_exhausted;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = Errc::corrupt;
      break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      code = Errc::permission_denied;
      break;
    case SQLITE_CONSTRAINT:
      code = Errc::invalid_argument;
      break;
    default:
      break;
  }
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return make_error(code, what, ": ", detail, " (", sqlite3_errstr(rc), ")");
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
}

void Statement::bind(int index, std::string_view text) {
  // An empty view may have a null data pointer, which SQLite would store as NULL, not ''.
  sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
}

void Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db_, rc, str_cat("running \"", sqlite3_sql(stmt_), "\""));
}

Status Statement::run() {
  for (;;) {
    const bool row = ICAM_TRY(step());
    if (!row) return ok_status();
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::column_int(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::string Statement::column_text(int index) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  const int size = sqlite3_column_bytes(stmt_, index);
  return text == nullptr ? std::string() : std::string(text, static_cast<size_t>(size));
}

bool Statement::column_is_null(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

Result<Database> Database::open(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  // NOMUTEX: the audit log serialises calls with its own mutex.
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Error error = sqlite_error(db, rc, str_cat("opening '", path, "'"));
    sqlite3_close_v2(db);
    return error;
  }
  sqlite3_extended_result_codes(db, 1);
  return Database(db);
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Database::~Database() {
  sqlite3_close_v2(db_);
}

Status Database::exec(const std::string& sql) const {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  sqlite3_free(message);  // sqlite_error reads the same text from the connection
  if (rc != SQLITE_OK) return sqlite_error(db_, rc, str_cat("running \"", sql, "\""));
  return ok_status();
}

Result<Statement> Database::prepare(std::string_view sql) const {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db_, rc, str_cat("preparing \"", sql, "\""));
  return Statement(db_, stmt);
}

Result<int64_t> Database::query_int(const std::string& sql) const {
  Statement stmt = ICAM_TRY(prepare(sql));
  if (!ICAM_TRY(stmt.step())) return make_error(Errc::internal, "\"", sql, "\" returned no row");
  return stmt.column_int(0);
}

Result<std::string> Database::query_text(const std::string& sql) const {
  Statement stmt = ICAM_TRY(prepare(sql));
  if (!ICAM_TRY(stmt.step())) return make_error(Errc::internal, "\"", sql, "\" returned no row");
  return stmt.column_text(0);
}

}  // namespace icam::sqlite
