#include "kernel/job.h"
#include "syscalls/syscall_table.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace icam::kernel {
namespace {

using nlohmann::json;

json valid_job() {
  return json::parse(R"({
    "name": "capital",
    "system": "Be brief.",
    "task": "What is the capital of France?",
    "model": "/models/m.gguf",
    "sampling": {"temperature": 0.5, "seed": 7, "max_tokens": 32},
    "priority": 20,
    "budgets": {"tokens": 100, "wall_seconds": 2.5, "syscalls": 3},
    "tools": ["proc.exit"]
  })");
}

// The error message for `j` parsed as "job.json", or "" when it parses.
std::string error_of(const json& j) {
  auto r = job_from_json(j, "job.json");
  return r.ok() ? std::string() : r.error().message();
}

TEST(JobTest, ParsesEveryField) {
  auto job = job_from_json(valid_job(), "job.json");
  ASSERT_TRUE(job.ok()) << job.error().message();
  EXPECT_EQ(job->name, "capital");
  EXPECT_EQ(job->system, "Be brief.");
  EXPECT_EQ(job->task, "What is the capital of France?");
  EXPECT_EQ(job->model, "/models/m.gguf");
  EXPECT_FLOAT_EQ(job->sampling.temperature, 0.5f);
  EXPECT_EQ(job->sampling.seed, 7u);
  EXPECT_EQ(job->sampling.max_tokens, 32);
  EXPECT_EQ(job->priority, 20);
  EXPECT_EQ(job->budgets.tokens, 100);
  EXPECT_DOUBLE_EQ(job->budgets.wall_seconds, 2.5);
  EXPECT_EQ(job->budgets.syscalls, 3);
  ASSERT_EQ(job->tools.size(), 1u);
  EXPECT_EQ(job->tools[0], "proc.exit");
}

TEST(JobTest, OnlyTaskIsRequiredAndDefaultsApply) {
  auto job = parse_job(R"({"task": "hi"})", "job.json");
  ASSERT_TRUE(job.ok()) << job.error().message();
  EXPECT_EQ(job->priority, 10);
  EXPECT_TRUE(job->tools.empty());
  EXPECT_GT(job->budgets.tokens, 0);
  EXPECT_EQ(error_of(json::object()),
            "job.json: /task: missing (the task for the agent is required)");
}

TEST(JobTest, RoundTripsThroughJson) {
  auto job = job_from_json(valid_job(), "job.json");
  ASSERT_TRUE(job.ok());
  auto again = job_from_json(to_json(*job), "job.json");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(to_json(*again), to_json(*job));
}

struct BadField {
  const char* pointer;  // JSON pointer of the field to replace
  json value;
  const char* expected;  // the whole error message
};

TEST(JobTest, EachBadFieldIsNamedWithItsPath) {
  const BadField cases[] = {
      {"/name", 5, "job.json: /name: expected a string"},
      {"/name", "", "job.json: /name: expected a non-empty string"},
      {"/system", json::array(), "job.json: /system: expected a string"},
      {"/task", "", "job.json: /task: expected a non-empty string"},
      {"/model", true, "job.json: /model: expected a string"},
      {"/priority", 0, "job.json: /priority: expected an integer from 1 to 100"},
      {"/priority", 101, "job.json: /priority: expected an integer from 1 to 100"},
      {"/priority", 1.5, "job.json: /priority: expected an integer from 1 to 100"},
      {"/budgets", 3, "job.json: /budgets: expected an object"},
      {"/budgets/tokens", 0, "job.json: /budgets/tokens: expected a positive integer"},
      {"/budgets/tokens", -4, "job.json: /budgets/tokens: expected a positive integer"},
      {"/budgets/tokens", "10", "job.json: /budgets/tokens: expected a positive integer"},
      {"/budgets/wall_seconds", 0, "job.json: /budgets/wall_seconds: expected a positive number"},
      {"/budgets/syscalls", -1, "job.json: /budgets/syscalls: expected a non-negative integer"},
      {"/tools", "proc.exit", "job.json: /tools: expected an array of tool names"},
      {"/tools/0", 3, "job.json: /tools/0: expected a string"},
  };
  for (const auto& c : cases) {
    json j = valid_job();
    j[json::json_pointer(c.pointer)] = c.value;
    EXPECT_EQ(error_of(j), c.expected) << c.pointer << " = " << c.value.dump();
  }
}

TEST(JobTest, BadSamplingIsNamedUnderSampling) {
  json j = valid_job();
  j["sampling"]["temperature"] = -1;
  const std::string e = error_of(j);
  EXPECT_EQ(e.rfind("job.json: /sampling: ", 0), 0u) << e;
  EXPECT_NE(e.find("temperature"), std::string::npos) << e;
}

TEST(JobTest, UnknownKeysAreRejected) {
  json j = valid_job();
  j["colour"] = "blue";
  EXPECT_EQ(error_of(j), "job.json: /colour: unknown key");
  j = valid_job();
  j["budgets"]["memory"] = 5;
  EXPECT_EQ(error_of(j), "job.json: /budgets/memory: unknown key");
}

TEST(JobTest, ToolsAreTheSyscallTables) {
  json j = valid_job();
  j["tools"] = {"proc.exit", "fs.read", "fs.write", "exec.run", "kv.get", "clock.now"};
  auto job = job_from_json(j, "job.json");
  ASSERT_TRUE(job.ok()) << job.error().message();
  EXPECT_EQ(job->tools.size(), 6u);
  j["tools"] = {"proc.exit", "fs.chmod"};
  EXPECT_EQ(error_of(j), "job.json: /tools/1: unknown tool 'fs.chmod' (known: " +
                             syscalls::syscall_names() + ")");
  EXPECT_NE(syscalls::syscall_names().find("kv.put, "), std::string::npos);
  j["tools"] = {"proc.exit", "proc.exit"};
  EXPECT_EQ(error_of(j), "job.json: /tools/1: tool 'proc.exit' listed twice");
}

TEST(JobTest, CapabilitiesAndWorkspace) {
  json j = valid_job();
  j["capabilities"] = {"fs.read:${workspace}/**", "exec:/usr/bin/python3", "kv:notes uses=3"};
  j["workspace"] = "/srv/agents/a";
  auto job = job_from_json(j, "job.json");
  ASSERT_TRUE(job.ok()) << job.error().message();
  EXPECT_EQ(job->capabilities.size(), 3u);
  EXPECT_EQ(job->capabilities[0], "fs.read:${workspace}/**");  // expanded at spawn
  EXPECT_EQ(job->workspace, "/srv/agents/a");
  // A round trip keeps both (and an empty workspace means the default).
  auto again = job_from_json(to_json(*job), "again");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->capabilities, job->capabilities);
  EXPECT_TRUE(job_from_json(json{{"task", "t"}, {"workspace", ""}}).ok());

  j["capabilities"] = {"fs.read:ws/**"};
  EXPECT_EQ(error_of(j),
            "job.json: /capabilities/0: capability \"fs.read:ws/**\": column 9: a path must be "
            "absolute (start with '/')");
  j["capabilities"] = {"kv:a", "kv:a"};
  EXPECT_EQ(error_of(j), "job.json: /capabilities/1: capability 'kv:a' listed twice");
  j["capabilities"] = "fs.read:/ws/**";
  EXPECT_EQ(error_of(j), "job.json: /capabilities: expected an array of capability strings");
  j = valid_job();
  j["workspace"] = "relative/dir";
  EXPECT_EQ(error_of(j),
            "job.json: /workspace: expected an absolute path (or \"\" for the default)");
}

TEST(JobTest, MalformedJsonAndMissingFilesAreErrors) {
  auto bad = parse_job("{\"task\": ", "job.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("job.json: malformed JSON: ", 0), 0u)
      << bad.error().message();
  EXPECT_EQ(error_of(json::array()), "job.json: /: expected an object");

  auto missing = load_job_file("/nonexistent/icam/job.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);

  const std::string path = ::testing::TempDir() + "icam_job_test.json";
  {
    std::ofstream out(path);
    out << R"({"task": "t", "budgets": {"tokens": 0}})";
  }
  auto from_file = load_job_file(path);
  std::remove(path.c_str());
  ASSERT_FALSE(from_file.ok());
  EXPECT_EQ(from_file.error().message(), path + ": /budgets/tokens: expected a positive integer");
}

}  // namespace
}  // namespace icam::kernel
