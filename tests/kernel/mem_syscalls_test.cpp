// mem.store and mem.recall through the kernel's syscall dispatcher: the capability check, the
// audit log and a real archive database on disk, namespaced by owner and job name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>

#include "kernel/syscall_dispatcher.h"
#include "memory/archive_store.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

class MemSyscallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "icam-mem-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    archive_path_ = (root_ / "state" / "archive.db").string();
    dispatcher_ = make(archive_path_);
  }
  void TearDown() override {
    for (auto& [pid, p] : processes_) dispatcher_->on_exit(p);
    dispatcher_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  std::unique_ptr<SyscallDispatcher> make(const std::string& archive_path) {
    DispatcherOptions options;
    options.audit_path = (root_ / "state" / "audit.db").string();
    options.archive_path = archive_path;
    options.workspace_root = (root_ / "workspaces").string();
    auto d = SyscallDispatcher::create(options);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d.ok() ? std::move(*d) : nullptr;
  }

  Process& spawn(std::string name, uint32_t owner, std::vector<std::string> capabilities,
                 SyscallDispatcher* dispatcher = nullptr) {
    JobSpec job;
    job.name = std::move(name);
    job.task = "t";
    job.tools = {"mem.store", "mem.recall"};
    job.capabilities = std::move(capabilities);
    Process& p = processes_[next_pid_];
    p.pid = next_pid_++;
    p.name = job.name;
    p.owner_uid = owner;
    p.tools = job.tools;
    Status st = (dispatcher ? dispatcher : dispatcher_.get())->on_spawn(p, job);
    EXPECT_TRUE(st.ok()) << st.error().message();
    return p;
  }
  json ok(Process& p, const std::string& name, const json& args) {
    auto r = dispatcher_->call(p, name, args);
    EXPECT_TRUE(r.ok()) << name << " " << args.dump() << ": " << r.error().message();
    return r.ok() ? json::parse(*r) : json();
  }

  const std::vector<std::string> kBoth = {"tool:mem.store", "tool:mem.recall"};
  fs::path root_;
  std::string archive_path_;
  std::unique_ptr<SyscallDispatcher> dispatcher_;
  std::map<Pid, Process> processes_;
  Pid next_pid_ = 1;
};

TEST_F(MemSyscallsTest, StoredNotesAreRecalledFromTheArchiveFile) {
  Process& p = spawn("notes agent", 1000, kBoth);
  EXPECT_FALSE(fs::exists(archive_path_));  // made on the first mem.* call
  const json stored =
      ok(p, "mem.store", {{"text", "The staging database runs on port 5433."}, {"tags", {"db"}}});
  ASSERT_TRUE(stored.contains("id"));
  ok(p, "mem.store", {{"text", "Remember to water the plants."}});
  EXPECT_TRUE(fs::exists(archive_path_));

  const json recalled = ok(p, "mem.recall", {{"query", "which port does staging use?"}});
  ASSERT_EQ(recalled["hits"].size(), 1u);
  EXPECT_EQ(recalled["hits"][0]["id"], stored["id"]);
  EXPECT_EQ(recalled["hits"][0]["text"], "The staging database runs on port 5433.");
  EXPECT_EQ(recalled["hits"][0]["tags"], json::array({"db"}));

  // Model text full of FTS5 syntax is searched as words.
  const json odd = ok(p, "mem.recall", {{"query", "port\" OR NEAR(staging AND"}, {"limit", 3}});
  EXPECT_EQ(odd["hits"].size(), 1u);

  // The namespace is "<owner uid>/<job name, cleaned>", in the file itself.
  auto archive = memory::ArchiveStore::open(archive_path_, {.read_only = true});
  ASSERT_TRUE(archive.ok()) << archive.error().message();
  auto spaces = (*archive)->namespaces();
  ASSERT_TRUE(spaces.ok());
  ASSERT_EQ(spaces->size(), 1u);
  EXPECT_EQ((*spaces)[0].name, "1000/notes_agent");
  EXPECT_EQ((*spaces)[0].entries, 2);
}

TEST_F(MemSyscallsTest, TheSameJobOfTheSameOwnerFindsItsNotesAgainAndNoOneElseDoes) {
  Process& first = spawn("researcher", 1000, kBoth);
  ok(first, "mem.store", {{"text", "the answer is forty-two"}});
  dispatcher_->on_exit(first);

  // A later run of the job, by a restarted kernel on the same file.
  auto restarted = make(archive_path_);
  ASSERT_TRUE(restarted);
  std::swap(dispatcher_, restarted);
  Process& again = spawn("researcher", 1000, kBoth);
  EXPECT_EQ(ok(again, "mem.recall", {{"query", "answer"}})["hits"].size(), 1u);
  Process& other_owner = spawn("researcher", 1001, kBoth);
  EXPECT_TRUE(ok(other_owner, "mem.recall", {{"query", "answer"}})["hits"].empty());
  Process& other_job = spawn("writer", 1000, kBoth);
  EXPECT_TRUE(ok(other_job, "mem.recall", {{"query", "answer"}})["hits"].empty());
  std::swap(dispatcher_, restarted);
  for (auto& [pid, p] : processes_)
    if (pid != first.pid) restarted->on_exit(p);
  processes_.clear();
}

TEST_F(MemSyscallsTest, EachCallNeedsItsToolCapabilityAndIsAudited) {
  Process& reader = spawn("reader", 1000, {"tool:mem.recall"});
  auto store = dispatcher_->call(reader, "mem.store", {{"text", "x"}});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), Errc::permission_denied);
  EXPECT_THAT(store.error().message(), HasSubstr("mem.store"));
  EXPECT_TRUE(ok(reader, "mem.recall", {{"query", "x"}})["hits"].empty());
  Process& all = spawn("all", 1000, {"tool:*"});
  ok(all, "mem.store", {{"text", "granted by tool:*"}});

  auto log = dispatcher_->audit_log();
  ASSERT_TRUE(log.ok() && *log);
  audit::AuditFilter filter;
  filter.syscall = "mem.store";
  filter.kind = audit::RecordKind::intent;
  auto records = (*log)->query(filter);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].decision, audit::Decision::deny);
  EXPECT_EQ((*records)[1].decision, audit::Decision::allow);
}

TEST_F(MemSyscallsTest, BadArgumentsAndAMissingArchiveAreClearErrors) {
  Process& p = spawn("p", 1000, kBoth);
  auto too_long = dispatcher_->call(p, "mem.store", {{"text", std::string(9000, 'a')}});
  ASSERT_FALSE(too_long.ok());
  EXPECT_THAT(too_long.error().message(), HasSubstr("/arguments/text"));
  auto no_words = dispatcher_->call(p, "mem.recall", {{"query", "?!"}});
  ASSERT_FALSE(no_words.ok());
  EXPECT_EQ(no_words.error().code(), Errc::invalid_argument);
  EXPECT_THAT(no_words.error().message(), HasSubstr("no word"));
  auto bad_limit = dispatcher_->call(p, "mem.recall", {{"query", "a"}, {"limit", 0}});
  EXPECT_FALSE(bad_limit.ok());

  auto none = make("");
  ASSERT_TRUE(none);
  Process& q = spawn("q", 1000, kBoth, none.get());
  auto r = none->call(q, "mem.store", {{"text", "x"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::unavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("no archival memory"));
  none->on_exit(q);
  processes_.erase(q.pid);
}

}  // namespace
}  // namespace icam::kernel
