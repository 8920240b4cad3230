#include "common/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace icam {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& key : config_keys()) unsetenv(key.env);
    unsetenv("ICAM_CONFIG");
    dir_ = std::filesystem::temp_directory_path() /
           ("icam-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text) {
    auto path = (dir_ / "config.json").string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigTest, DefaultsPlaceModelUnderHome) {
  setenv("ICAM_HOME", "/srv/icam", 1);
  auto c = load_config(write("{}"));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->home, "/srv/icam");
  EXPECT_EQ(c->model, "/srv/icam/models/gemma-3-270m-q4_k_m.gguf");
  EXPECT_EQ(c->origin["home"], "env:ICAM_HOME");
  EXPECT_EQ(c->backend, "cpu");
}

TEST_F(ConfigTest, FileThenEnvironmentOverride) {
  auto path = write(R"({"threads": 3, "backend": "cpu", "kv_pool_bytes": 1048576})");
  setenv("ICAM_THREADS", "5", 1);
  auto c = load_config(path);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->threads, 5);
  EXPECT_EQ(c->backend, "cpu");
  EXPECT_EQ(c->kv_pool_bytes, 1048576u);
  EXPECT_EQ(c->origin["backend"], "file:" + path);
}

TEST_F(ConfigTest, UnknownKeyIsNamed) {
  auto c = load_config(write(R"({"thread": 3})"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("unknown key 'thread'"), std::string::npos);
}

TEST_F(ConfigTest, WrongTypeIsNamed) {
  auto c = load_config(write(R"({"threads": "many"})"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("key 'threads'"), std::string::npos);
}

TEST_F(ConfigTest, MalformedJsonAndBadEnvAreErrors) {
  EXPECT_FALSE(load_config(write("{")).ok());
  setenv("ICAM_BACKEND", "tpu", 1);
  auto c = load_config(write("{}"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("tpu"), std::string::npos);
}

TEST_F(ConfigTest, MissingExplicitFileIsAnError) {
  auto c = load_config((dir_ / "nope.json").string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Errc::not_found);
}

}  // namespace
}  // namespace icam

namespace icam {
namespace {

// docs/configuration.md embeds the generated table; it must match the code.
TEST(ConfigDocs, ReferenceTableIsCurrent) {
  std::ifstream in(std::string(ICAM_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md is missing";
  std::stringstream doc;
  doc << in.rdbuf();
  EXPECT_NE(doc.str().find(config_reference_markdown()), std::string::npos)
      << "docs/configuration.md is stale; regenerate its table with `icamctl config --markdown`:\n"
      << config_reference_markdown();
}

}  // namespace
}  // namespace icam
