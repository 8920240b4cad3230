#include "memory/archive_store.h"

#include <cstdlib>

#include "memory/sqlite_file.h"

namespace icam::memory {
namespace {

using sqlite::Database;
using sqlite::Statement;

// Entries' ids come from one table for every namespace, so an id names one entry in the whole
// archive; each namespace's words live in its own FTS5 table fts_<namespace id>, whose rowid is
// the entry's id.
constexpr const char* kSchema = R"sql(
CREATE TABLE namespaces(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  entries INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  created_us INTEGER NOT NULL);
CREATE TABLE entries(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ns INTEGER NOT NULL REFERENCES namespaces(id),
  bytes INTEGER NOT NULL,
  created_us INTEGER NOT NULL);
CREATE INDEX entries_by_ns ON entries(ns, id);
)sql";

std::string fts_table(int64_t ns_id) {
  return "fts_" + std::to_string(ns_id);
}

bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c >= 0x80;
}

std::string join_tags(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) out += (out.empty() ? "" : " ") + t;
  return out;
}

std::vector<std::string> split_tags(const std::string& text) {
  std::vector<std::string> tags;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(' ', at);
    if (end == std::string::npos) end = text.size();
    if (end > at) tags.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return tags;
}

}  // namespace

std::string archive_match_query(std::string_view text, size_t max_words) {
  std::string query;
  size_t words = 0;
  size_t at = 0;
  while (at < text.size() && words < max_words) {
    while (at < text.size() && !is_word_byte(static_cast<unsigned char>(text[at]))) ++at;
    size_t end = at;
    while (end < text.size() && is_word_byte(static_cast<unsigned char>(text[end]))) ++end;
    if (end > at) {
      // A word holds no '"', so quoting it is enough: FTS5 reads it as a string, never as an
      // operator (AND, NEAR), a column filter or a prefix.
      query += (query.empty() ? "\"" : " OR \"") + std::string(text.substr(at, end - at)) + "\"";
      ++words;
    }
    at = end;
  }
  return query;
}

std::string process_archive_namespace(uint32_t owner_uid, std::string_view name) {
  std::string clean;
  for (char c : name.substr(0, 128)) {
    const bool keep = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      c == '_' || c == '.' || c == '-';
    clean += keep ? c : '_';
  }
  if (clean.empty()) clean.push_back('_');
  return std::to_string(owner_uid) + "/" + clean;
}

Result<std::unique_ptr<ArchiveStore>> ArchiveStore::open(const std::string& path,
                                                         ArchiveOptions options) {
  Database db =
      ICAM_TRY(open_sqlite_file(path, options.read_only, options.busy_timeout_ms, "archive"));
  std::unique_ptr<ArchiveStore> store(new ArchiveStore(std::move(db), path, options));
  ICAM_TRY_CTX(store->init_schema(), "archive '" + path + "'");
  return store;
}

Status ArchiveStore::init_schema() {
  // FTS5 is compiled into Debian's libsqlite3; a build without it cannot search at all.
  if (ICAM_TRY(db_.query_int("SELECT sqlite_compileoption_used('ENABLE_FTS5')")) == 0)
    return make_error(Errc::unsupported, "this SQLite (", sqlite3_libversion(),
                      ") was built without FTS5");
  const int64_t version = ICAM_TRY(sqlite_schema_version(db_));
  if (version == kArchiveSchemaVersion) return ok_status();
  if (version > kArchiveSchemaVersion)
    return make_error(Errc::unsupported, "schema version ", version,
                      " is newer than this icam's (", kArchiveSchemaVersion, ")");
  if (ICAM_TRY(db_.query_int("SELECT count(*) FROM sqlite_master")) != 0)
    return make_error(Errc::corrupt, "holds tables but no schema version: not an icam archive");
  if (options_.read_only) return make_error(Errc::not_found, "empty: no archive was written yet");
  return in_transaction(db_, [&]() -> Status {
    ICAM_TRY(db_.exec(kSchema));
    return db_.exec("PRAGMA user_version=" + std::to_string(kArchiveSchemaVersion));
  });
}

Status ArchiveStore::check_namespace(std::string_view ns) const {
  if (ns.empty()) return make_error(Errc::invalid_argument, "empty namespace");
  if (ns.size() > options_.limits.max_namespace_bytes)
    return make_error(Errc::invalid_argument, "namespace of ", ns.size(), " bytes (at most ",
                      options_.limits.max_namespace_bytes, ")");
  return ok_status();
}

Result<int64_t> ArchiveStore::namespace_id(std::string_view ns, bool create) {
  Statement find = ICAM_TRY(db_.prepare("SELECT id FROM namespaces WHERE name = ?"));
  find.bind(1, ns);
  if (ICAM_TRY(find.step())) return find.column_int(0);
  if (!create) return int64_t{0};
  Statement insert =
      ICAM_TRY(db_.prepare("INSERT INTO namespaces(name, created_us) VALUES (?, ?)"));
  insert.bind(1, ns);
  insert.bind(2, unix_micros());
  ICAM_TRY(insert.run());
  const int64_t id = sqlite3_last_insert_rowid(db_.handle());
  ICAM_TRY(db_.exec("CREATE VIRTUAL TABLE " + fts_table(id) + " USING fts5(text, tags)"));
  return id;
}

Result<int64_t> ArchiveStore::store(std::string_view ns, std::string_view text,
                                    const std::vector<std::string>& tags) {
  const ArchiveLimits& limits = options_.limits;
  ICAM_TRY(check_namespace(ns));
  if (options_.read_only) return make_error(Errc::permission_denied, "archive opened read-only");
  if (text.empty()) return make_error(Errc::invalid_argument, "empty text");
  if (text.size() > limits.max_text_bytes)
    return make_error(Errc::invalid_argument, "text of ", text.size(), " bytes (at most ",
                      limits.max_text_bytes, ")");
  if (tags.size() > limits.max_tags)
    return make_error(Errc::invalid_argument, tags.size(), " tags (at most ", limits.max_tags, ")");
  for (size_t i = 0; i < tags.size(); ++i) {
    const std::string& t = tags[i];
    if (t.empty() || t.size() > limits.max_tag_bytes)
      return make_error(Errc::invalid_argument, "tag ", i, ": ", t.size(), " bytes (1 to ",
                        limits.max_tag_bytes, ")");
    // Tags are kept space-separated.
    for (unsigned char c : t)
      if (c <= ' ' || c == 0x7f)
        return make_error(Errc::invalid_argument, "tag ", i, " '", t,
                          "': holds a space or a control character");
  }
  const std::string tag_text = join_tags(tags);
  const int64_t bytes = static_cast<int64_t>(text.size() + tag_text.size());

  std::lock_guard lock(mu_);
  int64_t id = 0;
  Status st = in_transaction(db_, [&]() -> Status {
    const int64_t ns_id = ICAM_TRY(namespace_id(ns, true));
    Statement size = ICAM_TRY(db_.prepare("SELECT entries, bytes FROM namespaces WHERE id = ?"));
    size.bind(1, ns_id);
    if (!ICAM_TRY(size.step())) return make_error(Errc::internal, "namespace row vanished");
    if (size.column_int(0) >= limits.max_entries_per_namespace)
      return make_error(Errc::resource_exhausted, "namespace '", ns, "' holds ",
                        size.column_int(0), " entries (at most ",
                        limits.max_entries_per_namespace, ")");
    if (size.column_int(1) + bytes > limits.max_bytes_per_namespace)
      return make_error(Errc::resource_exhausted, "namespace '", ns, "' holds ",
                        size.column_int(1), " bytes; ", bytes, " more would pass its bound of ",
                        limits.max_bytes_per_namespace);
    Statement entry =
        ICAM_TRY(db_.prepare("INSERT INTO entries(ns, bytes, created_us) VALUES (?, ?, ?)"));
    entry.bind(1, ns_id);
    entry.bind(2, bytes);
    entry.bind(3, unix_micros());
    ICAM_TRY(entry.run());
    id = sqlite3_last_insert_rowid(db_.handle());
    Statement words = ICAM_TRY(
        db_.prepare("INSERT INTO " + fts_table(ns_id) + "(rowid, text, tags) VALUES (?, ?, ?)"));
    words.bind(1, id);
    words.bind(2, text);
    words.bind(3, tag_text);
    ICAM_TRY(words.run());
    Statement count = ICAM_TRY(db_.prepare(
        "UPDATE namespaces SET entries = entries + 1, bytes = bytes + ? WHERE id = ?"));
    count.bind(1, bytes);
    count.bind(2, ns_id);
    return count.run();
  });
  if (!st.ok()) return std::move(st).error().with_context("archive '" + path_ + "': store");
  return id;
}

Result<std::vector<ArchiveHit>> ArchiveStore::recall(std::string_view ns, std::string_view query,
                                                     int limit) {
  const ArchiveLimits& limits = options_.limits;
  ICAM_TRY(check_namespace(ns));
  if (query.size() > limits.max_query_bytes)
    return make_error(Errc::invalid_argument, "query of ", query.size(), " bytes (at most ",
                      limits.max_query_bytes, ")");
  if (limit < 1 || limit > limits.max_hits)
    return make_error(Errc::invalid_argument, "limit ", limit, " (1 to ", limits.max_hits, ")");
  const std::string match = archive_match_query(query, limits.max_query_words);
  if (match.empty())
    return make_error(Errc::invalid_argument, "the query holds no word to search for");

  std::lock_guard lock(mu_);
  std::vector<ArchiveHit> hits;
  const int64_t ns_id = ICAM_TRY_CTX(namespace_id(ns, false), "archive '" + path_ + "': recall");
  if (ns_id == 0) return hits;  // nothing stored there yet
  const std::string table = fts_table(ns_id);
  // A tag match weighs twice a text match: tags are the words the agent chose as keys. The
  // wrapper reads columns as integers or text; bm25's real number comes back as its text.
  auto select = db_.prepare("SELECT rowid, text, tags, snippet(" + table +
                            ", 0, '[', ']', '...', 12), bm25(" + table + ", 1.0, 2.0) AS r FROM " +
                            table + " WHERE " + table + " MATCH ? ORDER BY r LIMIT ?");
  if (!select.ok()) return std::move(select).error().with_context("archive '" + path_ + "': recall");
  select->bind(1, match);
  select->bind(2, static_cast<int64_t>(limit));
  for (;;) {
    auto row = select->step();
    if (!row.ok()) return std::move(row).error().with_context("archive '" + path_ + "': recall");
    if (!*row) break;
    ArchiveHit hit;
    hit.id = select->column_int(0);
    hit.text = select->column_text(1);
    hit.tags = split_tags(select->column_text(2));
    hit.snippet = select->column_text(3);
    hit.score = -std::strtod(select->column_text(4).c_str(), nullptr);
    hits.push_back(std::move(hit));
  }
  return hits;
}

Result<std::vector<ArchiveNamespace>> ArchiveStore::namespaces() const {
  std::lock_guard lock(mu_);
  std::vector<ArchiveNamespace> out;
  Statement select = ICAM_TRY_CTX(
      db_.prepare("SELECT name, entries, bytes FROM namespaces ORDER BY name"), "archive '" + path_ + "'");
  for (;;) {
    const bool row = ICAM_TRY_CTX(select.step(), "archive '" + path_ + "'");
    if (!row) break;
    out.push_back({select.column_text(0), select.column_int(1), select.column_int(2)});
  }
  return out;
}

Result<std::vector<ArchiveEntry>> ArchiveStore::entries(std::string_view ns, int limit) const {
  ICAM_TRY(check_namespace(ns));
  std::lock_guard lock(mu_);
  std::vector<ArchiveEntry> out;
  const std::string where = "archive '" + path_ + "'";
  Statement find = ICAM_TRY_CTX(db_.prepare("SELECT id FROM namespaces WHERE name = ?"), where);
  find.bind(1, ns);
  if (!ICAM_TRY_CTX(find.step(), where))
    return make_error(Errc::not_found, where, ": no namespace '", ns, "'");
  const std::string table = fts_table(find.column_int(0));
  Statement select = ICAM_TRY_CTX(
      db_.prepare("SELECT e.id, f.text, f.tags, e.created_us FROM entries e JOIN " + table +
                  " f ON f.rowid = e.id WHERE e.ns = ? ORDER BY e.id DESC LIMIT ?"),
      where);
  select.bind(1, find.column_int(0));
  select.bind(2, static_cast<int64_t>(limit));
  for (;;) {
    const bool row = ICAM_TRY_CTX(select.step(), where);
    if (!row) break;
    out.push_back({select.column_int(0), select.column_text(1), split_tags(select.column_text(2)),
                   select.column_int(3)});
  }
  return out;
}

}  // namespace icam::memory
