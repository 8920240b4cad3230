// Tier T2's SQLite files (the process journal and the archive) are opened, versioned and written
// the same way, here: WAL mode so that icamctl can read while the daemon writes, synchronous=FULL
// so that a committed transaction survives a power cut, a busy timeout so that a short lock by a
// reader is waited out (a long one becomes Errc::unavailable), and every write as one transaction
// that either commits whole or leaves nothing behind.
//
// The SQL layer itself is the audit log's wrapper (kernel/audit/sqlite_db.h), reused as it is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "common/sqlite_db.h"

namespace icam::memory {

// Opens `path` (creating it unless read_only; a missing file is Errc::not_found when read_only)
// and reads its first page, so that a file that is not a database is Errc::corrupt here and not at
// the first query. `what` names the file in errors ("journal", "archive").
Result<sqlite::Database> open_sqlite_file(const std::string& path, bool read_only,
                                                 int busy_timeout_ms, std::string_view what);

// The schema version kept in PRAGMA user_version (0 for a new, empty file).
Result<int64_t> sqlite_schema_version(const sqlite::Database& db);

// Runs `body` between BEGIN IMMEDIATE and COMMIT; when `body` or the commit fails, rolls back and
// returns that error, so a failed write leaves the file as it was.
Status in_transaction(const sqlite::Database& db, const std::function<Status()>& body);

// Microseconds since 1970 (UTC).
int64_t unix_micros();

}  // namespace icam::memory
