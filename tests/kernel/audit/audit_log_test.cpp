// The audit log's writing and reading side: schema and pragmas, appends and their validation,
// queries, tail and export, keys, a locked database and a full one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernel/audit/audit_log.h"
#include "tests/kernel/audit/audit_test_util.h"

namespace icam::kernel::audit {
namespace {

using ::testing::HasSubstr;
using testing::RawDb;
using testing::TempDir;

class AuditLogTest : public ::testing::Test {
 protected:
  AuditOptions options() {
    AuditOptions o;
    o.path = dir / "audit.db";
    o.clock = [this] { return clock_us; };
    return o;
  }
  std::unique_ptr<AuditLog> open_log(AuditOptions o) {
    auto log = AuditLog::open(std::move(o));
    EXPECT_TRUE(log.ok()) << log.error().message();
    return log.ok() ? std::move(*log) : nullptr;
  }
  std::unique_ptr<AuditLog> open_log() { return open_log(options()); }

  TempDir dir;
  int64_t clock_us = 1'700'000'000'000'000;
};

TEST_F(AuditLogTest, NewLogUsesWalAndAPrivateKey) {
  auto log = open_log();
  ASSERT_TRUE(log);
  RawDb raw(dir / "audit.db");
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.text("PRAGMA user_version"), "1");
  EXPECT_EQ(raw.text("SELECT value FROM audit_meta WHERE key = 'hash'"), "hmac-sha256");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "audit.db.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  auto report = log->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, 0);
}

TEST_F(AuditLogTest, IntentAndCompletionAreChained) {
  auto log = open_log();
  ASSERT_TRUE(log);
  auto intent = log->append_intent(7, "fs.read", R"({"path": "/ws/a.txt", "bytes": 10})",
                                   "fs.read:/ws/**", Decision::allow, SideEffect::none);
  ASSERT_TRUE(intent.ok()) << intent.error().message();
  EXPECT_EQ(*intent, 1);
  clock_us += 5;
  auto done = log->append_completion(*intent, CompletionStatus::ok, result_digest("hello"));
  ASSERT_TRUE(done.ok()) << done.error().message();
  EXPECT_EQ(*done, 2);

  auto records = log->tail(10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  const AuditRecord& i = (*records)[0];
  const AuditRecord& c = (*records)[1];
  EXPECT_EQ(i.kind, RecordKind::intent);
  EXPECT_EQ(i.args, R"({"bytes":10,"path":"/ws/a.txt"})");  // sorted keys, no whitespace
  EXPECT_EQ(i.capability, "fs.read:/ws/**");
  EXPECT_EQ(i.prev_hash, kGenesisHash);
  EXPECT_EQ(i.hash.size(), 64u);
  EXPECT_EQ(c.kind, RecordKind::completion);
  EXPECT_EQ(c.intent_id, 1);
  EXPECT_EQ(c.pid, 7u);
  EXPECT_EQ(c.syscall, "fs.read");
  EXPECT_EQ(c.status, CompletionStatus::ok);
  EXPECT_EQ(c.result_digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(c.prev_hash, i.hash);
  EXPECT_EQ(c.time_us, i.time_us + 5);
  EXPECT_TRUE(log->verify().ok());
}

TEST_F(AuditLogTest, ACallWithoutSideEffectsIsRecordedInOneTransaction) {
  auto log = open_log();
  ASSERT_TRUE(log);
  const int64_t began = clock_us;
  clock_us += 40;  // the call ran meanwhile
  auto done = log->append_call(3, "fs.stat", R"({"path": "/ws/a"})", "fs.read:/ws/**",
                               Decision::allow, SideEffect::none, began, CompletionStatus::ok,
                               result_digest("{}"));
  ASSERT_TRUE(done.ok()) << done.error().message();
  EXPECT_EQ(*done, 2);
  auto records = log->tail(10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  const AuditRecord& i = (*records)[0];
  const AuditRecord& c = (*records)[1];
  EXPECT_EQ(i.kind, RecordKind::intent);
  EXPECT_EQ(i.time_us, began);  // when the call began, not when it was written
  EXPECT_EQ(i.args, R"({"path":"/ws/a"})");
  EXPECT_EQ(c.kind, RecordKind::completion);
  EXPECT_EQ(c.intent_id, i.id);
  EXPECT_EQ(c.time_us, began + 40);
  EXPECT_EQ(c.prev_hash, i.hash);
  // Bad input writes neither record.
  EXPECT_FALSE(log->append_call(3, "", "{}", "", Decision::allow, SideEffect::none, 0,
                                CompletionStatus::ok, "")
                   .ok());
  EXPECT_FALSE(log->append_call(3, "fs.stat", "not json", "", Decision::allow, SideEffect::none,
                                0, CompletionStatus::ok, "")
                   .ok());
  EXPECT_EQ(log->tail(10)->size(), 2u);
  EXPECT_TRUE(log->verify().ok());
}

TEST_F(AuditLogTest, CanonicalJsonSortsKeysAtEveryDepth) {
  auto text = canonical_json(R"({ "z": {"b": 1, "a": [3, {"y": 0, "x": null}]}, "é": "ü", "A": 1.5 })");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "{\"A\":1.5,\"z\":{\"a\":[3,{\"x\":null,\"y\":0}],\"b\":1},\"é\":\"ü\"}");
  EXPECT_FALSE(canonical_json("[1,2]").ok());
  EXPECT_FALSE(canonical_json("{\"a\":").ok());
  EXPECT_FALSE(canonical_json("{\"a\":\"\xff\"}").ok());
}

TEST_F(AuditLogTest, BadAppendsWriteNothing) {
  auto log = open_log();
  ASSERT_TRUE(log);
  const auto intent = log->append_intent(1, "tool.calc", "{}", "tool:calc", Decision::allow,
                                         SideEffect::none);
  ASSERT_TRUE(intent.ok());
  auto expect_refused = [&](Result<int64_t> r, std::string_view what) {
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_THAT(r.error().message(), HasSubstr(what));
  };
  expect_refused(log->append_intent(1, "", "{}", "", Decision::deny, SideEffect::none),
                 "syscall: must not be empty");
  expect_refused(log->append_intent(1, "x", "[]", "", Decision::deny, SideEffect::none),
                 "expected a JSON object");
  expect_refused(log->append_intent(1, "x", "{oops", "", Decision::deny, SideEffect::none),
                 "malformed JSON");
  expect_refused(log->append_intent(1, "bad\xc3", "{}", "", Decision::deny, SideEffect::none),
                 "not valid UTF-8");
  expect_refused(log->append_completion(99, CompletionStatus::ok, ""), "record 99 does not exist");
  ASSERT_TRUE(log->append_completion(*intent, CompletionStatus::ok, "").ok());
  expect_refused(log->append_completion(*intent, CompletionStatus::error, ""),
                 "already has a completion");
  expect_refused(log->append_completion(2, CompletionStatus::ok, ""), "is a completion");
  auto report = log->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, 2);
}

TEST_F(AuditLogTest, QueryFiltersByPidSyscallDecisionAndTime) {
  auto log = open_log();
  ASSERT_TRUE(log);
  // pid 1: fs.read allowed at t0, net.connect denied at t0+10; pid 2: fs.read allowed at t0+20.
  const int64_t t0 = clock_us;
  auto a = log->append_intent(1, "fs.read", "{}", "fs.read:/ws/**", Decision::allow,
                              SideEffect::none);
  ASSERT_TRUE(log->append_completion(*a, CompletionStatus::ok, "").ok());
  clock_us = t0 + 10;
  auto b = log->append_intent(1, "net.connect", "{}", "", Decision::deny, SideEffect::none);
  ASSERT_TRUE(log->append_completion(*b, CompletionStatus::denied, "").ok());
  clock_us = t0 + 20;
  auto c = log->append_intent(2, "fs.read", "{}", "fs.read:/ws/**", Decision::allow,
                              SideEffect::none);
  ASSERT_TRUE(log->append_completion(*c, CompletionStatus::ok, "").ok());

  auto ids = [&](AuditFilter f) {
    std::vector<int64_t> out;
    auto records = log->query(f);
    EXPECT_TRUE(records.ok()) << records.error().message();
    if (records.ok())
      for (const auto& r : *records) out.push_back(r.id);
    return out;
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(ids({}), (V{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ids({.pid = 1}), (V{1, 2, 3, 4}));
  EXPECT_EQ(ids({.syscall = "fs.read"}), (V{1, 2, 5, 6}));
  EXPECT_EQ(ids({.decision = Decision::deny}), (V{3, 4}));
  EXPECT_EQ(ids({.pid = 1, .syscall = "fs.read", .kind = RecordKind::intent}), (V{1}));
  EXPECT_EQ(ids({.since_us = t0 + 10}), (V{3, 4, 5, 6}));
  EXPECT_EQ(ids({.since_us = t0 + 10, .until_us = t0 + 20}), (V{3, 4}));
  EXPECT_EQ(ids({.limit = 2}), (V{1, 2}));
  EXPECT_EQ(ids({.after_id = 2, .limit = 2}), (V{3, 4}));
  EXPECT_EQ(ids({.pid = 3}), V{});

  auto tail = log->tail(2);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].id, 5);
  EXPECT_EQ((*tail)[1].id, 6);
  auto one = log->record(3);
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_EQ((*one)->syscall, "net.connect");
  EXPECT_FALSE(log->record(42)->has_value());
}

TEST_F(AuditLogTest, ExportWritesOneJsonObjectPerRecord) {
  auto log = open_log();
  ASSERT_TRUE(log);
  auto a = log->append_intent(3, "kv.put", R"({"key":"k","value":"line\nbreak"})", "kv:notes",
                              Decision::allow, SideEffect::reversible);
  ASSERT_TRUE(log->append_completion(*a, CompletionStatus::ok, result_digest("")).ok());
  std::ostringstream out;
  auto count = log->export_jsonl(out);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
  std::istringstream lines(out.str());
  std::string line;
  auto all = log->tail(10);
  ASSERT_TRUE(all.ok());
  for (size_t i = 0; std::getline(lines, line); ++i) {
    ASSERT_LT(i, all->size());
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], (*all)[i].id);
    EXPECT_EQ(j["hash"], (*all)[i].hash);
    EXPECT_EQ(j["prev_hash"], (*all)[i].prev_hash);
    EXPECT_EQ(j["time"], "2023-11-14T22:13:20.000000Z");
  }
  EXPECT_EQ(nlohmann::json::parse(out.str().substr(0, out.str().find('\n')))["args"],
            R"({"key":"k","value":"line\nbreak"})");
  EXPECT_EQ(format_records_jsonl(*all), out.str());
  const std::string table = format_records_table(*all);
  EXPECT_THAT(table, HasSubstr("kv.put"));
  EXPECT_THAT(table, HasSubstr("via kv:notes"));
  EXPECT_THAT(table, HasSubstr("of 1: ok"));

  std::ofstream closed;  // a stream that cannot be written
  EXPECT_FALSE(log->export_jsonl(closed).ok());
}

TEST_F(AuditLogTest, ReopeningContinuesTheChain) {
  {
    auto log = open_log();
    ASSERT_TRUE(log);
    auto a = log->append_intent(1, "tool.calc", "{}", "tool:calc", Decision::allow,
                                SideEffect::none);
    ASSERT_TRUE(log->append_completion(*a, CompletionStatus::ok, "").ok());
  }
  auto log = open_log();
  ASSERT_TRUE(log);
  EXPECT_TRUE(log->last_recovery().empty());
  auto b = log->append_intent(1, "tool.calc", "{}", "tool:calc", Decision::allow,
                              SideEffect::none);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, 3);
  auto report = log->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, 3);
  EXPECT_EQ(report->last_hash, (*log->record(3))->hash);
}

TEST_F(AuditLogTest, KeysAreCheckedOnOpen) {
  { ASSERT_TRUE(open_log()); }
  const std::string key = dir / "audit.db.key";
  // Group-readable: refused.
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  auto loose = AuditLog::open(options());
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.error().code(), Errc::permission_denied);
  EXPECT_THAT(loose.error().message(), HasSubstr("chmod 600"));
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  // Another key: refused, saying so.
  AuditOptions other = options();
  other.key_path = dir / "other.key";
  {
    std::ofstream(other.key_path) << std::string(32, 'k');
    ASSERT_EQ(::chmod(other.key_path.c_str(), 0600), 0);
  }
  auto wrong = AuditLog::open(other);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.error().message(), HasSubstr("is not the key this log was written with"));
  // No key at all for an existing log: refused, not silently replaced.
  ASSERT_EQ(::unlink(key.c_str()), 0);
  auto missing = AuditLog::open(options());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);
  EXPECT_THAT(missing.error().message(), HasSubstr("key file"));
}

TEST_F(AuditLogTest, ReadOnlyInspectsWithoutWriting) {
  {
    auto log = open_log();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->append_intent(1, "x", "{}", "", Decision::deny, SideEffect::none).ok());
  }
  AuditOptions ro = options();
  ro.read_only = true;
  auto log = open_log(ro);
  ASSERT_TRUE(log);
  EXPECT_TRUE(log->last_recovery().empty());  // the open intent is left for the writer
  auto report = log->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->records, 1);
  auto refused = log->append_intent(1, "x", "{}", "", Decision::deny, SideEffect::none);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("read-only"));

  AuditOptions absent = ro;
  absent.path = dir / "absent.db";
  auto none = AuditLog::open(absent);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Errc::not_found);
}

TEST_F(AuditLogTest, NewerSchemaIsRefused) {
  { ASSERT_TRUE(open_log()); }
  {
    RawDb raw(dir / "audit.db");
    raw.exec("PRAGMA user_version = 2");
  }
  auto log = AuditLog::open(options());
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.error().code(), Errc::unsupported);
  EXPECT_THAT(log.error().message(), HasSubstr("schema version 2"));
}

TEST_F(AuditLogTest, ALockedDatabaseFailsClearlyAfterTheBusyTimeout) {
  AuditOptions o = options();
  o.busy_timeout_ms = 200;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  RawDb other(dir / "audit.db");
  other.exec("BEGIN EXCLUSIVE");  // another process holding the write lock

  const auto start = std::chrono::steady_clock::now();
  auto blocked = log->append_intent(1, "x", "{}", "", Decision::deny, SideEffect::none);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code(), Errc::unavailable);
  EXPECT_THAT(blocked.error().message(), HasSubstr("holds the write lock; gave up after 200 ms"));
  EXPECT_GE(waited, std::chrono::milliseconds(150));  // it did wait...
  EXPECT_LT(waited, std::chrono::seconds(10));         // ...but not forever

  other.exec("COMMIT");
  auto after = log->append_intent(1, "x", "{}", "", Decision::deny, SideEffect::none);
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(*after, 1);  // the blocked attempt left nothing behind
  EXPECT_TRUE(log->verify().ok());
}

TEST_F(AuditLogTest, AFullDatabaseLeavesNoHalfWrittenRecord) {
  AuditOptions o = options();
  o.max_pages = 24;  // a quota of 24 pages: full after a few dozen records
  auto log = open_log(o);
  ASSERT_TRUE(log);
  const std::string big_args = nlohmann::json{{"data", std::string(600, 'x')}}.dump();
  int64_t written = 0;
  Status failure = ok_status();
  for (int i = 0; i < 1000 && failure.ok(); ++i) {
    auto id = log->append_intent(1, "fs.write", big_args, "fs.write:/ws/**", Decision::allow,
                                 SideEffect::reversible);
    if (id.ok()) {
      EXPECT_EQ(*id, written + 1);
      ++written;
    } else {
      failure = std::move(id).error();
    }
  }
  ASSERT_FALSE(failure.ok()) << "the quota was never reached";
  EXPECT_EQ(failure.error().code(), Errc::resource_exhausted);
  EXPECT_THAT(failure.error().message(), HasSubstr("the record was not written"));
  EXPECT_GT(written, 3);
  auto report = log->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, written);
  log.reset();

  // Without the quota the same file takes more records, and the chain continues intact.
  auto reopened = open_log();
  ASSERT_TRUE(reopened);
  EXPECT_EQ(static_cast<int64_t>(reopened->last_recovery().size()), written);
  auto more = reopened->verify();
  ASSERT_TRUE(more.ok()) << more.error().message();
  EXPECT_EQ(more->records, 2 * written);
}

}  // namespace
}  // namespace icam::kernel::audit
