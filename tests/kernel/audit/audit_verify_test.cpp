// verify() against a log tampered with through raw SQL, as someone with write access to the
// database file (but not to the key) could: every kind of change is caught, and the error names
// the first bad record.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernel/audit/audit_log.h"
#include "syscalls/crypto.h"
#include "tests/kernel/audit/audit_test_util.h"

namespace icam::kernel::audit {
namespace {

using ::testing::HasSubstr;
using testing::RawDb;
using testing::TempDir;

class AuditVerifyTest : public ::testing::Test {
 protected:
  // Ten records: five syscalls, each an intent (odd id) and its completion (even id).
  void SetUp() override {
    auto log = AuditLog::open(options(false));
    ASSERT_TRUE(log.ok()) << log.error().message();
    for (int i = 0; i < 5; ++i) {
      auto intent = (*log)->append_intent(
          static_cast<uint64_t>(i + 1), "fs.read", str_cat(R"({"path":"/ws/)", i, R"("})"),
          "fs.read:/ws/**", Decision::allow, SideEffect::none);
      ASSERT_TRUE(intent.ok());
      ASSERT_TRUE((*log)->append_completion(*intent, CompletionStatus::ok, "").ok());
    }
  }
  AuditOptions options(bool read_only) {
    AuditOptions o;
    o.path = dir / "audit.db";
    o.read_only = read_only;
    return o;
  }
  // Opens read-only (recovery would otherwise append) and returns verify()'s error message, or
  // "intact".
  std::string verify_message() {
    auto log = AuditLog::open(options(true));
    EXPECT_TRUE(log.ok()) << log.error().message();
    if (!log.ok()) return "cannot open";
    auto report = (*log)->verify();
    if (report.ok()) return "intact";
    EXPECT_EQ(report.error().code(), Errc::corrupt);
    return report.error().message();
  }

  TempDir dir;
};

TEST_F(AuditVerifyTest, AnUntouchedLogVerifies) {
  EXPECT_EQ(verify_message(), "intact");
  auto log = AuditLog::open(options(true));
  ASSERT_TRUE(log.ok());
  auto report = (*log)->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->records, 10);
  EXPECT_EQ(report->last_id, 10);
  EXPECT_EQ(report->last_hash, (*(*log)->record(10))->hash);
}

TEST_F(AuditVerifyTest, AnEditedFieldIsNamed) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec(R"(UPDATE audit_records SET args = '{"path":"/etc/shadow"}' WHERE id = 5)");
  }
  const std::string message = verify_message();
  EXPECT_THAT(message, HasSubstr("record 5: hash mismatch"));
  EXPECT_THAT(message, HasSubstr("edited"));
}

TEST_F(AuditVerifyTest, EachFieldIsCovered) {
  for (const char* change :
       {"pid = 99", "syscall = 'fs.write'", "capability = 'fs.read:/**'", "time_us = time_us + 1",
        "status = 'error'", "result_digest = 'sha256:00'", "never_replay = 1",
        "side_effect = 'irreversible'", "intent_id = 2"}) {
    TempDir fresh;
    AuditOptions o;
    o.path = fresh / "audit.db";
    {
      auto log = AuditLog::open(o);
      ASSERT_TRUE(log.ok());
      auto a = (*log)->append_intent(1, "fs.read", "{}", "fs.read:/ws/**", Decision::allow,
                                     SideEffect::none);
      ASSERT_TRUE((*log)->append_completion(*a, CompletionStatus::ok, "sha256:11").ok());
      auto b = (*log)->append_intent(1, "fs.read", "{}", "fs.read:/ws/**", Decision::allow,
                                     SideEffect::none);
      ASSERT_TRUE((*log)->append_completion(*b, CompletionStatus::ok, "sha256:11").ok());
    }
    {
      RawDb raw(o.path);
      raw.exec(str_cat("UPDATE audit_records SET ", change, " WHERE id = 4"));
    }
    o.read_only = true;
    auto log = AuditLog::open(o);
    ASSERT_TRUE(log.ok());
    auto report = (*log)->verify();
    ASSERT_FALSE(report.ok()) << change;
    EXPECT_THAT(report.error().message(), HasSubstr("record 4: hash mismatch")) << change;
  }
}

TEST_F(AuditVerifyTest, AnImpossibleValueIsNamed) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec("UPDATE audit_records SET decision = 'maybe' WHERE id = 7");
  }
  const std::string message = verify_message();
  EXPECT_THAT(message, HasSubstr("record 7: unknown decision 'maybe'"));
}

TEST_F(AuditVerifyTest, RecomputingAPlainHashDoesNotHelpWithoutTheKey) {
  // The attacker edits record 9 and rewrites its hash and record 10's prev_hash consistently,
  // using SHA-256 (what they could compute without the key).
  {
    RawDb raw(dir / "audit.db");
    raw.exec(R"(UPDATE audit_records SET args = '{"path":"/ws/x"}' WHERE id = 9)");
    const std::string forged = syscalls::to_hex(syscalls::sha256("anything"));
    raw.exec(str_cat("UPDATE audit_records SET hash = '", forged, "' WHERE id = 9"));
    raw.exec(str_cat("UPDATE audit_records SET prev_hash = '", forged, "' WHERE id = 10"));
  }
  EXPECT_THAT(verify_message(), HasSubstr("record 9: hash mismatch"));
}

TEST_F(AuditVerifyTest, ARemovedRecordIsNamed) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec("DELETE FROM audit_records WHERE id = 6");
  }
  EXPECT_THAT(verify_message(),
              HasSubstr("record 6: missing: the ids jump from 5 to 7 (a record was removed)"));
}

TEST_F(AuditVerifyTest, RemovedAndRenumberedRecordsBreakTheLinks) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec("DELETE FROM audit_records WHERE id = 3");
    raw.exec("UPDATE audit_records SET id = id - 1 WHERE id > 3");  // close the gap
  }
  EXPECT_THAT(verify_message(), HasSubstr("record 3: prev_hash"));
}

TEST_F(AuditVerifyTest, SwappedRecordsAreNamed) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec("UPDATE audit_records SET id = -1 WHERE id = 3");
    raw.exec("UPDATE audit_records SET id = 3 WHERE id = 4");
    raw.exec("UPDATE audit_records SET id = 4 WHERE id = -1");
  }
  const std::string message = verify_message();
  EXPECT_THAT(message, HasSubstr("record 3: prev_hash"));
  EXPECT_THAT(message, HasSubstr("reordered"));
}

TEST_F(AuditVerifyTest, RecordsCutOffTheEndAreNamed) {
  {
    RawDb raw(dir / "audit.db");
    raw.exec("DELETE FROM audit_records WHERE id >= 9");
  }
  EXPECT_THAT(verify_message(),
              HasSubstr("record 9: missing: the head names record 10 as the last, but the log "
                        "ends at 8"));
}

TEST_F(AuditVerifyTest, AMovedHeadIsNamed) {
  {
    RawDb raw(dir / "audit.db");
    // Truncate and point the head at the new end: its MAC cannot be recomputed.
    const std::string hash8 = raw.text("SELECT hash FROM audit_records WHERE id = 8");
    const std::string head = raw.text("SELECT value FROM audit_meta WHERE key = 'head'");
    raw.exec("DELETE FROM audit_records WHERE id >= 9");
    raw.exec(str_cat("UPDATE audit_meta SET value = '8 ", hash8, " ",
                     head.substr(head.rfind(' ') + 1), "' WHERE key = 'head'"));
  }
  EXPECT_THAT(verify_message(), HasSubstr("record 8: the head naming this record has a wrong MAC"));
}

TEST_F(AuditVerifyTest, ARecordAppendedBehindTheLogsBackIsNamed) {
  {
    RawDb raw(dir / "audit.db");
    // A copy of intent 9, linked after record 10; its hash cannot be computed without the key.
    raw.exec(
        "INSERT INTO audit_records SELECT 11, kind, time_us, pid, syscall, args, capability, "
        "decision, side_effect, intent_id, status, result_digest, never_replay, "
        "(SELECT hash FROM audit_records WHERE id = 10), hash FROM audit_records WHERE id = 9");
  }
  EXPECT_THAT(verify_message(), HasSubstr("record 11: hash mismatch"));
}

}  // namespace
}  // namespace icam::kernel::audit
