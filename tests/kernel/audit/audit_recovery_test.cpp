// Crash recovery: intents without a completion (the kernel stopped between them) are completed
// on the next open with outcome_unknown records appended to the chain, never by editing; the
// irreversible ones are marked never_replay.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/audit/audit_log.h"
#include "tests/kernel/audit/audit_test_util.h"

namespace icam::kernel::audit {
namespace {

using testing::RawDb;
using testing::TempDir;

class AuditRecoveryTest : public ::testing::Test {
 protected:
  AuditOptions options() {
    AuditOptions o;
    o.path = dir / "audit.db";
    return o;
  }
  TempDir dir;
};

TEST_F(AuditRecoveryTest, OpenIntentsAreCompletedAsOutcomeUnknown) {
  std::string intent_hashes[4];
  {
    auto log = AuditLog::open(options());
    ASSERT_TRUE(log.ok());
    auto done = (*log)->append_intent(1, "fs.read", "{}", "fs.read:/ws/**", Decision::allow,
                                      SideEffect::none);
    ASSERT_TRUE((*log)->append_completion(*done, CompletionStatus::ok, "").ok());
    // Three intents the kernel never completed: the log is closed as a crash would leave it.
    ASSERT_TRUE((*log)->append_intent(1, "msg.send", R"({"to":"ops"})", "msg:ops",
                                      Decision::allow, SideEffect::irreversible)
                    .ok());
    ASSERT_TRUE((*log)->append_intent(2, "fs.write", "{}", "fs.write:/ws/**", Decision::allow,
                                      SideEffect::reversible)
                    .ok());
    ASSERT_TRUE(
        (*log)->append_intent(2, "net.connect", "{}", "", Decision::deny, SideEffect::irreversible)
            .ok());
    for (int id = 3; id <= 5; ++id) intent_hashes[id - 2] = (*(*log)->record(id))->hash;
  }

  auto log = AuditLog::open(options());
  ASSERT_TRUE(log.ok()) << log.error().message();
  const auto& recovered = (*log)->last_recovery();
  ASSERT_EQ(recovered.size(), 3u);
  EXPECT_EQ(recovered[0].intent_id, 3);
  EXPECT_EQ(recovered[0].syscall, "msg.send");
  EXPECT_TRUE(recovered[0].never_replay);
  EXPECT_EQ(recovered[1].intent_id, 4);
  EXPECT_FALSE(recovered[1].never_replay);
  EXPECT_EQ(recovered[2].intent_id, 5);
  EXPECT_TRUE(recovered[2].never_replay);

  // Appended after the intents, never in their place; the intents are untouched.
  for (size_t i = 0; i < recovered.size(); ++i) {
    EXPECT_EQ(recovered[i].completion_id, 6 + static_cast<int64_t>(i));
    auto completion = (*log)->record(recovered[i].completion_id);
    ASSERT_TRUE(completion.ok() && completion->has_value());
    EXPECT_EQ((*completion)->kind, RecordKind::completion);
    EXPECT_EQ((*completion)->intent_id, recovered[i].intent_id);
    EXPECT_EQ((*completion)->status, CompletionStatus::outcome_unknown);
    EXPECT_EQ((*completion)->never_replay, recovered[i].never_replay);
    EXPECT_EQ((*completion)->pid, recovered[i].pid);
  }
  for (int id = 3; id <= 5; ++id) EXPECT_EQ((*(*log)->record(id))->hash, intent_hashes[id - 2]);
  auto report = (*log)->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, 8);

  // Recovery is done once: the next open finds nothing open.
  log->reset();
  auto again = AuditLog::open(options());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->last_recovery().empty());
  EXPECT_EQ((*again)->verify()->records, 8);
  // Those intents cannot be completed a second time by a confused kernel either.
  EXPECT_FALSE((*again)->append_completion(3, CompletionStatus::ok, "").ok());
}

TEST_F(AuditRecoveryTest, AProcessKilledBetweenIntentAndCompletion) {
  // A real crash: a child process appends an intent (committed, synced) and dies at once, with
  // no destructor, no close and no checkpoint, as if killed before the side effect finished.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto log = AuditLog::open(options());
    if (!log.ok()) ::_exit(2);
    auto a = (*log)->append_intent(9, "exec", R"({"argv":["rm","-rf","/ws/out"]})",
                                   "exec:/usr/bin/rm", Decision::allow, SideEffect::irreversible);
    if (!a.ok() || !(*log)->append_completion(*a, CompletionStatus::ok, "").ok()) ::_exit(3);
    auto b = (*log)->append_intent(9, "exec", R"({"argv":["rm","-rf","/ws/tmp"]})",
                                   "exec:/usr/bin/rm", Decision::allow, SideEffect::irreversible);
    ::_exit(b.ok() ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  auto log = AuditLog::open(options());
  ASSERT_TRUE(log.ok()) << log.error().message();
  const auto& recovered = (*log)->last_recovery();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].intent_id, 3);
  EXPECT_EQ(recovered[0].pid, 9u);
  EXPECT_TRUE(recovered[0].never_replay);
  auto report = (*log)->verify();
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->records, 4);
}

TEST_F(AuditRecoveryTest, AnIntentLeftOpenByRawSqlIsRecovered) {
  // Simulated the other way: a completion row removed (as if its transaction never committed)
  // and the head put back where it was before it, as an interrupted writer would have left both.
  {
    auto log = AuditLog::open(options());
    ASSERT_TRUE(log.ok());
    auto a = (*log)->append_intent(4, "kv.put", "{}", "kv:notes", Decision::allow,
                                   SideEffect::reversible);
    ASSERT_TRUE(a.ok());
  }
  std::string head_after_intent;
  {
    RawDb raw(dir / "audit.db");
    head_after_intent = raw.text("SELECT value FROM audit_meta WHERE key = 'head'");
  }
  {
    auto log = AuditLog::open(options());
    ASSERT_TRUE(log.ok());
    ASSERT_EQ((*log)->last_recovery().size(), 1u);
  }
  {
    RawDb raw(dir / "audit.db");
    raw.exec("DELETE FROM audit_records WHERE id = 2");
    raw.exec("UPDATE audit_meta SET value = '" + head_after_intent + "' WHERE key = 'head'");
  }
  auto log = AuditLog::open(options());
  ASSERT_TRUE(log.ok());
  ASSERT_EQ((*log)->last_recovery().size(), 1u);
  EXPECT_EQ((*log)->last_recovery()[0].completion_id, 2);
  EXPECT_FALSE((*log)->last_recovery()[0].never_replay);
  EXPECT_TRUE((*log)->verify().ok());
}

}  // namespace
}  // namespace icam::kernel::audit
