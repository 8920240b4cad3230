// icamctl as a user runs it: a real process, its exit status, its stdout and stderr.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.h"
#include "drivers/llm/gguf/gguf_writer.h"

namespace icam {
namespace {

struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs icamctl with `args`; stdout and stderr are captured through files.
CommandResult icamctl(const std::string& args) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("icamctl-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // No daemon answers on this socket, so `run` always takes the embedded path here.
  const std::string cmd = "ICAM_SOCKET=" + dir + "/no-daemon.sock " + std::string(ICAMCTL_PATH) +
                          " " + args + " >" + dir + "/out 2>" + dir + "/err";
  CommandResult run;
  const int raw = std::system(cmd.c_str());
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  run.out = slurp(dir + "/out");
  run.err = slurp(dir + "/err");
  std::filesystem::remove_all(dir);
  return run;
}

class IcamctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("icamctl-files-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    llm::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "tiny");
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.embedding_length", 32);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    std::vector<uint8_t> bytes(32 * 4 * sizeof(float), 0);
    ASSERT_TRUE(w.add_tensor("token_embd.weight", llm::GgmlType::F32, {32, 4}, bytes).ok());
    good_ = (dir_ / "tiny.gguf").string();
    ASSERT_TRUE(w.write_file(good_).ok());
    truncated_ = (dir_ / "truncated.gguf").string();
    const auto size = std::filesystem::file_size(good_);
    std::filesystem::copy_file(good_, truncated_);
    std::filesystem::resize_file(truncated_, size - 100);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string good_, truncated_;
};

TEST_F(IcamctlTest, ModelInfoDescribesAFile) {
  CommandResult r = icamctl("model info " + good_);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("architecture        llama"), std::string::npos) << r.out;
  CommandResult j = icamctl("model info --json " + good_);
  ASSERT_EQ(j.status, 0) << j.err;
  auto doc = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << j.out;
  EXPECT_EQ(doc.dump().find("llama") != std::string::npos, true);
}

TEST_F(IcamctlTest, ModelInfoOnATruncatedFileFailsNamingTheProblem) {
  CommandResult r = icamctl("model info " + truncated_);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(truncated_), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("token_embd.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("end of the file"), std::string::npos) << r.err;
}

TEST_F(IcamctlTest, BadCommandLinesExitWithTwo) {
  EXPECT_EQ(icamctl("frobnicate").status, 2);
  EXPECT_EQ(icamctl("model info --no-such-flag").status, 2);
  CommandResult r = icamctl("generate --temperature -1 --prompt hi");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("temperature"), std::string::npos) << r.err;
  EXPECT_EQ(icamctl("generate --max-tokens zero --prompt hi").status, 2);
}

TEST_F(IcamctlTest, MissingModelFailsWithOne) {
  CommandResult r = icamctl("generate --model " + (dir_ / "absent.gguf").string() + " --prompt hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("absent.gguf"), std::string::npos) << r.err;
}

TEST_F(IcamctlTest, RunRejectsBadJobsWithTwoNamingTheField) {
  const std::string job = (dir_ / "job.json").string();
  std::ofstream(job) << R"({"name": "t", "task": "hi", "budgets": {"tokens": -3}})";
  CommandResult r = icamctl("run " + job);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("/budgets/tokens"), std::string::npos) << r.err;
  std::ofstream(job) << R"({"task": "hi", "tools": ["net.open"]})";
  r = icamctl("run " + job);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("net.open"), std::string::npos) << r.err;
  EXPECT_EQ(icamctl("run " + (dir_ / "absent.json").string()).status, 2);
}

// The README's first command prints these facts of the default model.
TEST(IcamctlDefaultModel, ModelInfoShowsGemma3Facts) {
  auto config = load_config();
  ASSERT_TRUE(config.ok());
  if (!std::filesystem::exists(config->model))
    GTEST_SKIP() << "default model absent: " << config->model;
  CommandResult r = icamctl("model info --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string s = r.out;
  EXPECT_NE(s.find("gemma3"), std::string::npos);
  EXPECT_NE(s.find("262144"), std::string::npos);
  CommandResult t = icamctl("model info");
  EXPECT_NE(t.out.find("block_count                       18"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("embedding_length                  640"), std::string::npos) << t.out;
}

}  // namespace
}  // namespace icam
