// Archival memory on real SQLite files: FTS5 present, store and recall ranked by bm25 with
// snippets, namespaces kept apart, model-written queries that would be FTS5 syntax errors, bounds,
// a locked file, a file that is not a database, reopening.
#include "memory/archive_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/sqlite_db.h"
#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

std::unique_ptr<ArchiveStore> open_ok(const std::string& path, ArchiveOptions options = {}) {
  auto store = ArchiveStore::open(path, options);
  EXPECT_TRUE(store.ok()) << store.error().message();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(ArchiveStore, Fts5IsCompiledIntoTheSystemSqlite) {
  EXPECT_EQ(sqlite3_compileoption_used("ENABLE_FTS5"), 1) << sqlite3_libversion();
  TempDir dir;
  auto store = open_ok(dir.path() + "/archive.db");
  ASSERT_TRUE(store);
}

TEST(ArchiveStore, RecallsTheBestMatchesFirstWithSnippets) {
  TempDir dir;
  auto store = open_ok(dir.path() + "/archive.db");
  ASSERT_TRUE(store);
  const std::string ns = "1000/agent";
  const int64_t a = *store->store(ns, "The build server lives in rack seven, next to the router.");
  const int64_t b = *store->store(ns, "Lunch is at noon. The build is green.", {"lunch"});
  const int64_t c = *store->store(ns, "Kangaroos hop.");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);

  auto hits = store->recall(ns, "where is the build server rack?", 5);
  ASSERT_TRUE(hits.ok()) << hits.error().message();
  ASSERT_EQ(hits->size(), 2u);  // any word matches; "Kangaroos hop." has none of them
  EXPECT_EQ((*hits)[0].id, a);  // more of the words, rarer ones
  EXPECT_EQ((*hits)[1].id, b);
  EXPECT_GT((*hits)[0].score, (*hits)[1].score);
  EXPECT_THAT((*hits)[0].snippet, HasSubstr("[build]"));
  EXPECT_EQ((*hits)[0].text, "The build server lives in rack seven, next to the router.");

  // Tags are searched (and weigh more than text) and come back.
  auto tagged = store->recall(ns, "lunch", 5);
  ASSERT_TRUE(tagged.ok());
  ASSERT_EQ(tagged->size(), 1u);
  EXPECT_EQ((*tagged)[0].tags, std::vector<std::string>{"lunch"});

  auto limited = store->recall(ns, "build", 1);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 1u);
  auto none = store->recall(ns, "submarine", 5);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ArchiveStore, NamespacesAreKeptApart) {
  TempDir dir;
  auto store = open_ok(dir.path() + "/archive.db");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->store("1000/a", "the password hint is octopus").ok());
  ASSERT_TRUE(store->store("1001/a", "nothing to see").ok());
  auto other = store->recall("1001/a", "password octopus", 5);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
  auto unknown = store->recall("1002/a", "password", 5);
  ASSERT_TRUE(unknown.ok());  // a namespace never written to has no hits
  EXPECT_TRUE(unknown->empty());
  auto own = store->recall("1000/a", "octopus", 5);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->size(), 1u);

  auto listed = store->namespaces();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "1000/a");
  EXPECT_EQ((*listed)[0].entries, 1);
  EXPECT_EQ((*listed)[0].bytes, 28);
  auto entries = store->entries("1000/a", 10);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].text, "the password hint is octopus");
  EXPECT_EQ(store->entries("nope", 10).error().code(), Errc::not_found);
}

TEST(ArchiveStore, ModelWrittenQueriesNeverReachFts5AsSyntax) {
  TempDir dir;
  auto store = open_ok(dir.path() + "/archive.db");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->store("ns", "alpha beta gamma NEAR delta").ok());
  ASSERT_TRUE(store->store("ns", "text: tags are columns").ok());
  // Each of these is an FTS5 syntax error or an operator when given as written.
  for (const std::string q :
       {"\"alpha unbalanced", "alpha AND", "NEAR(alpha", "tags:alpha", "alpha*", "(beta", "-gamma",
        "alpha OR OR beta", "^alpha", "text:\"\" NOT", "{text tags}: alpha", "alpha\"; DROP TABLE"}) {
    auto hits = store->recall("ns", q, 5);
    ASSERT_TRUE(hits.ok()) << q << ": " << hits.error().message();
    EXPECT_FALSE(hits->empty()) << q;
  }
  // Operators are plain words: "NEAR" matches the entry that holds it.
  auto near = store->recall("ns", "NEAR", 5);
  ASSERT_TRUE(near.ok());
  ASSERT_EQ(near->size(), 1u);
  // No word at all is a clear error, not an SQL one.
  auto empty = store->recall("ns", "?! ** \"\"", 5);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), Errc::invalid_argument);
  EXPECT_THAT(empty.error().message(), HasSubstr("no word"));
  EXPECT_EQ(archive_match_query("what's \"up\" doc?", 32), "\"what\" OR \"s\" OR \"up\" OR \"doc\"");
  EXPECT_EQ(archive_match_query("a b c d", 2), "\"a\" OR \"b\"");
  // Non-ASCII words are kept whole.
  ASSERT_TRUE(store->store("ns", "la crème brûlée").ok());
  auto accented = store->recall("ns", "brûlée", 5);
  ASSERT_TRUE(accented.ok());
  EXPECT_EQ(accented->size(), 1u);
}

TEST(ArchiveStore, BoundsAreClearErrors) {
  TempDir dir;
  ArchiveOptions options;
  options.limits.max_text_bytes = 32;
  options.limits.max_entries_per_namespace = 2;
  auto store = open_ok(dir.path() + "/archive.db", options);
  ASSERT_TRUE(store);
  auto code = [](const auto& r) { return r.ok() ? Errc::internal : r.error().code(); };
  EXPECT_EQ(code(store->store("ns", std::string(33, 'x'))), Errc::invalid_argument);
  EXPECT_EQ(code(store->store("ns", "")), Errc::invalid_argument);
  EXPECT_EQ(code(store->store("", "text")), Errc::invalid_argument);
  EXPECT_EQ(code(store->store("ns", "text", {"two words"})), Errc::invalid_argument);
  EXPECT_EQ(code(store->store("ns", "text", {""})), Errc::invalid_argument);
  EXPECT_EQ(code(store->store("ns", "text", std::vector<std::string>(17, "t"))),
            Errc::invalid_argument);
  EXPECT_EQ(code(store->recall("ns", std::string(2000, 'q'), 5)), Errc::invalid_argument);
  EXPECT_EQ(code(store->recall("ns", "q", 0)), Errc::invalid_argument);
  EXPECT_EQ(code(store->recall("ns", "q", 21)), Errc::invalid_argument);
  ASSERT_TRUE(store->store("ns", "one").ok());
  ASSERT_TRUE(store->store("ns", "two").ok());
  auto full = store->store("ns", "three");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), Errc::resource_exhausted);
  EXPECT_THAT(full.error().message(), HasSubstr("at most 2"));
  // The refused entry left nothing behind.
  EXPECT_EQ((*store->namespaces())[0].entries, 2);
  EXPECT_TRUE(store->recall("ns", "three", 5)->empty());
}

TEST(ArchiveStore, SurvivesReopeningAndReadsReadOnly) {
  TempDir dir;
  const std::string path = dir.path() + "/archive.db";
  int64_t id = 0;
  {
    auto store = open_ok(path);
    ASSERT_TRUE(store);
    id = *store->store("ns", "persistent memory");
  }
  ArchiveOptions ro;
  ro.read_only = true;
  auto store = open_ok(path, ro);
  ASSERT_TRUE(store);
  auto hits = store->recall("ns", "memory", 5);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, id);
  EXPECT_EQ(store->store("ns", "x").error().code(), Errc::permission_denied);
  // Read-only never creates a file.
  auto missing = ArchiveStore::open(dir.path() + "/none.db", ro);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);
}

TEST(ArchiveStore, ALockedFileIsUnavailableAndNothingIsHalfWritten) {
  TempDir dir;
  const std::string path = dir.path() + "/archive.db";
  ArchiveOptions options;
  options.busy_timeout_ms = 0;
  auto store = open_ok(path, options);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->store("ns", "before the lock").ok());
  // Another connection (as another process would) holds the write lock.
  auto other = sqlite::Database::open(path, false);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other->exec("BEGIN EXCLUSIVE").ok());
  auto locked = store->store("ns", "during the lock");
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().code(), Errc::unavailable);
  EXPECT_THAT(locked.error().message(), HasSubstr(path));
  ASSERT_TRUE(other->exec("ROLLBACK").ok());
  ASSERT_TRUE(store->store("ns", "after the lock").ok());
  EXPECT_EQ((*store->namespaces())[0].entries, 2);
  EXPECT_TRUE(store->recall("ns", "during", 5)->empty());
}

TEST(ArchiveStore, AFileThatIsNotADatabaseIsCorrupt) {
  TempDir dir;
  const std::string path = dir.path() + "/archive.db";
  std::ofstream(path) << std::string(8192, 'z');
  auto store = ArchiveStore::open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), Errc::corrupt);
  EXPECT_THAT(store.error().message(), HasSubstr("archive '" + path + "'"));
}

TEST(ArchiveStore, ANewerSchemaIsRefused) {
  TempDir dir;
  const std::string path = dir.path() + "/archive.db";
  {
    auto db = sqlite::Database::open(path, false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("PRAGMA user_version=7").ok());
  }
  auto store = ArchiveStore::open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), Errc::unsupported);
  EXPECT_THAT(store.error().message(), HasSubstr("schema version 7"));
}

TEST(ArchiveStore, ProcessNamespacesAreOwnerThenCleanName) {
  EXPECT_EQ(process_archive_namespace(1000, "memory"), "1000/memory");
  EXPECT_EQ(process_archive_namespace(0, "my agent/../x"), "0/my_agent_.._x");
  EXPECT_EQ(process_archive_namespace(5, ""), "5/_");
  EXPECT_EQ(process_archive_namespace(5, std::string(300, 'a')).size(), 2u + 128u);
}

}  // namespace
}  // namespace icam::memory
