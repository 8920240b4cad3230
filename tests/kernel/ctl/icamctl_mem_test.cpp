// icamctl mem as a user runs it: the real binary on an archive and a journal the test writes, its
// exit status and its output (tables and JSON).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "memory/archive_store.h"
#include "memory/process_journal.h"

namespace icam {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

class IcamctlMemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "icamctl-mem-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_files() {
    auto archive = memory::ArchiveStore::open(dir_ + "/archive.db");
    ASSERT_TRUE(archive.ok()) << archive.error().message();
    ASSERT_TRUE((*archive)->store("1000/notes", "The staging database listens on port 5433.",
                                  {"db"}).ok());
    ASSERT_TRUE((*archive)->store("1000/notes", "Water the plants on Friday.").ok());
    ASSERT_TRUE((*archive)->store("1001/other", "Port 80 is closed.").ok());
    auto journal = memory::ProcessJournal::open(dir_ + "/journal.db");
    ASSERT_TRUE(journal.ok()) << journal.error().message();
    ASSERT_TRUE((*journal)->begin_process(4, R"({"name":"notes","task":"t"})", 1000).ok());
    ASSERT_TRUE((*journal)->append_tokens(4, std::vector<int32_t>{2, 105, 2364}).ok());
    ASSERT_TRUE((*journal)->record_tool_result(4, 0, "mem.recall", "{}", "{}").ok());
    ASSERT_TRUE((*journal)->checkpoint(4, "before-answer").ok());
  }

  CommandResult icamctl(const std::string& args) {
    // ICAM_HOME points at the test's directory: the default files are its archive.db and
    // journal.db.
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

  std::string dir_;
};

TEST_F(IcamctlMemTest, OverviewBeforeAnythingWasWritten) {
  CommandResult r = icamctl("mem");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("none yet"));
  EXPECT_FALSE(fs::exists(dir_ + "/archive.db"));  // reading creates nothing
  CommandResult recall = icamctl("mem recall 1000/notes port");
  EXPECT_EQ(recall.status, 1);
  EXPECT_THAT(recall.err, HasSubstr("does not exist"));
}

TEST_F(IcamctlMemTest, ShowsNamespacesAndProcesses) {
  write_files();
  CommandResult r = icamctl("mem");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("1000/notes"));
  EXPECT_THAT(r.out, HasSubstr("1001/other"));
  EXPECT_THAT(r.out, HasSubstr("notes"));
  CommandResult j = icamctl("mem --json");
  ASSERT_EQ(j.status, 0) << j.err;
  const json overview = json::parse(j.out);
  EXPECT_EQ(overview["archive"]["namespaces"].size(), 2u);
  EXPECT_EQ(overview["archive"]["namespaces"][0]["entries"], 2);
  ASSERT_EQ(overview["journal"]["processes"].size(), 1u);
  EXPECT_EQ(overview["journal"]["processes"][0]["tokens"], 3);
  EXPECT_EQ(overview["journal"]["processes"][0]["checkpoints"], 1);
}

TEST_F(IcamctlMemTest, RecallsAndListsOneNamespace) {
  write_files();
  CommandResult r = icamctl("mem recall 1000/notes which port --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json hits = json::parse(r.out);
  ASSERT_EQ(hits.size(), 1u);  // the other namespace's "Port 80" is not searched
  EXPECT_THAT(hits[0]["snippet"].get<std::string>(), HasSubstr("[port]"));
  CommandResult table = icamctl("mem recall 1000/notes 'port\" AND ('");
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("5433"));
  CommandResult list = icamctl("mem archive 1000/notes -n 1 --json");
  ASSERT_EQ(list.status, 0) << list.err;
  const json entries = json::parse(list.out);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0]["text"], "Water the plants on Friday.");  // newest first
  EXPECT_EQ(icamctl("mem archive nobody/none").status, 1);
}

TEST_F(IcamctlMemTest, ShowsOneProcessRecord) {
  write_files();
  CommandResult r = icamctl("mem journal 4 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json p = json::parse(r.out);
  EXPECT_EQ(p["tokens"], json::array({2, 105, 2364}));
  EXPECT_EQ(p["job"]["name"], "notes");
  ASSERT_EQ(p["checkpoints"].size(), 1u);
  EXPECT_EQ(p["checkpoints"][0]["label"], "before-answer");
  EXPECT_EQ(p["tool_results"][0]["name"], "mem.recall");
  CommandResult table = icamctl("mem journal 4");
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("before-answer"));
  EXPECT_EQ(icamctl("mem journal 9").status, 1);
  EXPECT_EQ(icamctl("mem journal x").status, 2);
  EXPECT_EQ(icamctl("mem nonsense").status, 2);
}

}  // namespace
}  // namespace icam
