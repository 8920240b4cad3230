// icamctl audit as a user runs it: the real binary on an audit database the test writes with
// AuditLog, its exit status and output, and verify on a log tampered with by raw SQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kernel/audit/audit_log.h"

namespace icam {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
namespace audit = kernel::audit;

struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

class IcamctlAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "icamctl-audit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    db_ = dir_ + "/audit.db";
    audit::AuditOptions o;
    o.path = db_;
    int64_t now = 1'790'000'000'000'000;  // 2026-09-21, one second per record
    o.clock = [now]() mutable { return now += 1'000'000; };
    auto log = audit::AuditLog::open(o);
    ASSERT_TRUE(log.ok()) << log.error().message();
    auto i1 = (*log)->append_intent(1, "fs.read", R"({"path":"a.txt"})", "fs.read:/ws/**",
                                    audit::Decision::allow, audit::SideEffect::none);
    ASSERT_TRUE(i1.ok());
    ASSERT_TRUE((*log)->append_completion(*i1, audit::CompletionStatus::ok, "sha256:00").ok());
    auto i2 = (*log)->append_intent(2, "fs.read", R"({"path":"../secret"})", "",
                                    audit::Decision::deny, audit::SideEffect::none);
    ASSERT_TRUE(i2.ok());
    ASSERT_TRUE((*log)->append_completion(*i2, audit::CompletionStatus::denied, "").ok());
    auto i3 = (*log)->append_intent(2, "exec.run", R"({"argv":["/bin/echo"]})", "exec:/bin/echo",
                                    audit::Decision::allow, audit::SideEffect::irreversible);
    ASSERT_TRUE(i3.ok());
    ASSERT_TRUE((*log)->append_completion(*i3, audit::CompletionStatus::ok, "sha256:11").ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  CommandResult icamctl(const std::string& args) {
    // ICAM_HOME points at the test's directory, so the default --db is its audit.db.
    const std::string cmd = "ICAM_HOME=" + dir_ + " " + std::string(ICAMCTL_PATH) + " " + args +
                            " >" + dir_ + "/out 2>" + dir_ + "/err";
    CommandResult r;
    const int raw = std::system(cmd.c_str());
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    auto slurp = [](const std::string& path) {
      std::ifstream in(path);
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    r.out = slurp(dir_ + "/out");
    r.err = slurp(dir_ + "/err");
    return r;
  }
  std::vector<json> lines_of(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      out.push_back(j);
    }
    return out;
  }
  void sql(const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::string dir_, db_;
};

TEST_F(IcamctlAuditTest, TailShowsTheLastRecords) {
  CommandResult r = icamctl("audit tail -n 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SYSCALL"));
  EXPECT_THAT(r.out, HasSubstr("exec.run"));
  EXPECT_THAT(r.out, HasSubstr("via exec:/bin/echo"));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);  // header and two records
  r = icamctl("audit tail --json --db " + db_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 6u);
}

TEST_F(IcamctlAuditTest, QueryFilters) {
  CommandResult r = icamctl("audit query --decision deny --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto records = lines_of(r.out);
  ASSERT_EQ(records.size(), 2u);  // the denied intent and its completion
  EXPECT_EQ(records[0]["decision"], "deny");
  EXPECT_EQ(records[1]["status"], "denied");

  r = icamctl("audit query --pid 2 --syscall exec.run --json");
  ASSERT_EQ(r.status, 0) << r.err;
  records = lines_of(r.out);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["capability"], "exec:/bin/echo");

  // Records are one second apart from 1790000001: [..02, ..04) holds records 2 and 3.
  r = icamctl("audit query --since 1790000002 --until 1790000004 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  records = lines_of(r.out);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["id"], 2);
  r = icamctl("audit query --since 2026-09-21T00:00:00Z --limit 1 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u);
}

TEST_F(IcamctlAuditTest, ExportWritesEveryRecord) {
  CommandResult r = icamctl("audit export");
  ASSERT_EQ(r.status, 0) << r.err;
  auto records = lines_of(r.out);
  ASSERT_EQ(records.size(), 6u);
  EXPECT_TRUE(records[5].contains("hash"));
  EXPECT_TRUE(records[5].contains("prev_hash"));
}

TEST_F(IcamctlAuditTest, VerifyPassesAndNamesTheFirstBadRecord) {
  CommandResult r = icamctl("audit verify");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("intact: 6 records"));
  r = icamctl("audit verify --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["records"], 6);

  // Someone with write access to the file, but not the key, edits record 3.
  sql("UPDATE audit_records SET decision = 'allow' WHERE id = 3");
  r = icamctl("audit verify");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("record 3"));
  r = icamctl("audit verify --json");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(json::parse(r.out)["intact"], false);
}

TEST_F(IcamctlAuditTest, MistakesAreReported) {
  CommandResult r = icamctl("audit tail --db " + dir_ + "/none.db");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("no such file"));
  r = icamctl("audit query --decision maybe");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("--decision"));
  r = icamctl("audit tail --pid 3");
  EXPECT_EQ(r.status, 2);
  r = icamctl("audit frobnicate");
  EXPECT_EQ(r.status, 2);
  r = icamctl("audit");
  EXPECT_EQ(r.status, 2);
  r = icamctl("audit --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("verify"));
}

}  // namespace
}  // namespace icam
