// Archival memory (tier T2): text an agent chose to keep, searchable by words, in SQLite FTS5.
// Each namespace (one per owner and agent, see process_archive_namespace) has its own FTS5 table,
// so one agent's words never weigh on another's ranking and a query can only ever reach its own
// namespace's rows. Hits are ranked by bm25 and carry a snippet.
//
// The query comes from a model, so it is never given to FTS5 as written: it is cut into words
// (letters, digits, '_' and any non-ASCII byte) and each word is quoted, the words joined with OR.
// No text a model writes can be an FTS5 operator, a column filter or a syntax error.
//
// Every write is one transaction; the database is in WAL mode with synchronous=FULL, so a stored
// entry survives a crash once store() returns. Errors: a locked file is Errc::unavailable (after
// busy_timeout_ms), a full disk or a namespace over its bounds Errc::resource_exhausted, a damaged
// file Errc::corrupt, text or a query out of bounds Errc::invalid_argument.
//
// Thread-safety: one mutex serialises every call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/sqlite_db.h"

namespace icam::memory {

struct ArchiveLimits {
  size_t max_text_bytes = 8 * 1024;  // one entry
  size_t max_tags = 16;
  size_t max_tag_bytes = 64;
  size_t max_query_bytes = 1024;
  size_t max_query_words = 32;
  int max_hits = 20;                               // recall's limit
  size_t max_namespace_bytes = 256;                // the namespace's name
  int64_t max_entries_per_namespace = 100'000;
  int64_t max_bytes_per_namespace = 64 << 20;      // text and tags
};

struct ArchiveOptions {
  ArchiveLimits limits;
  bool read_only = false;  // icamctl: no schema creation, no writes
  int busy_timeout_ms = 2000;
};

struct ArchiveHit {
  int64_t id = 0;
  std::string text;
  std::vector<std::string> tags;
  std::string snippet;  // the best matching fragment, matched words in [brackets]
  double score = 0;     // -bm25: higher is better
};

struct ArchiveEntry {
  int64_t id = 0;
  std::string text;
  std::vector<std::string> tags;
  int64_t created_us = 0;  // Unix microseconds
};

struct ArchiveNamespace {
  std::string name;
  int64_t entries = 0;
  int64_t bytes = 0;  // text and tags
};

inline constexpr int64_t kArchiveSchemaVersion = 1;

class ArchiveStore {
 public:
  // Opens (or creates, unless read_only) the archive database at `path`.
  static Result<std::unique_ptr<ArchiveStore>> open(const std::string& path,
                                                    ArchiveOptions options = {});

  // Stores `text` with optional `tags` in `ns` (made on first use); the entry's id.
  Result<int64_t> store(std::string_view ns, std::string_view text,
                        const std::vector<std::string>& tags = {});
  // The best `limit` entries of `ns` for `query` (any of its words, in text or tags), best first.
  // An unknown namespace has no hits; a query without a word is invalid_argument.
  Result<std::vector<ArchiveHit>> recall(std::string_view ns, std::string_view query, int limit);

  // Every namespace with its size, by name.
  Result<std::vector<ArchiveNamespace>> namespaces() const;
  // The newest `limit` entries of `ns`, newest first.
  Result<std::vector<ArchiveEntry>> entries(std::string_view ns, int limit) const;

  const std::string& path() const { return path_; }
  const ArchiveLimits& limits() const { return options_.limits; }

 private:
  ArchiveStore(sqlite::Database db, std::string path, ArchiveOptions options)
      : db_(std::move(db)), path_(std::move(path)), options_(options) {}
  Status init_schema();
  // The namespace's id, or 0 when it does not exist (and `create` is false).
  Result<int64_t> namespace_id(std::string_view ns, bool create);
  Status check_namespace(std::string_view ns) const;

  mutable std::mutex mu_;
  sqlite::Database db_;
  std::string path_;
  ArchiveOptions options_;
};

// The FTS5 query for model-written text: each word quoted, joined with OR; empty when the text
// holds no word. At most `max_words` words are kept.
std::string archive_match_query(std::string_view text, size_t max_words);

// The namespace of an agent process: "<owner uid>/<name>", the job's name with every character
// outside [A-Za-z0-9_.-] replaced by '_' and cut to 128 bytes. The same job run again by the same
// user finds what it stored before; another user's agent of the same name does not (the uid and
// its '/' come first, and a name cannot hold a '/').
std::string process_archive_namespace(uint32_t owner_uid, std::string_view name);

}  // namespace icam::memory
