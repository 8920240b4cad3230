// DriverClient against misbehaving drivers (bad_driver.c) in the sandbox: every failure is an
// error value, the driver is killed and reaped, and this process carries on.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>

#include "sandbox/driver_client.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace icam::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::ScratchTree;

DriverClient start_bad(const SandboxPolicy& policy, const std::string& mode,
                       DriverClientOptions options = {}) {
  auto client = DriverClient::start(policy, {ICAM_BAD_DRIVER_PATH, mode}, {}, options);
  if (!client.ok()) ADD_FAILURE() << client.error().message();
  return std::move(client).value();
}

void expect_dead_and_reaped(DriverClient& client) {
  EXPECT_FALSE(client.alive());
  EXPECT_TRUE(client.process().exited());
  EXPECT_EQ(waitpid(client.process().pid(), nullptr, WNOHANG), -1);
  // Later calls fail at once, naming why the client closed.
  auto again = client.call_tool("noop", nlohmann::json::object());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Errc::unavailable);
  EXPECT_NE(again.error().message().find("driver is closed"), std::string::npos);
}

TEST(DriverClient, GarbageOnStdoutIsAnError) {
  ScratchTree tree;
  DriverClient client = start_bad(testing::hostile_policy(tree.workspace), "garbage");
  auto result = client.call_tool("noop", nlohmann::json::object());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), Errc::corrupt);
  EXPECT_NE(result.error().message().find("not JSON-RPC"), std::string::npos) << result.error().message();
  expect_dead_and_reaped(client);
}

TEST(DriverClient, AnEndlessLineIsCutAtTheBound) {
  ScratchTree tree;
  DriverClient client = start_bad(testing::hostile_policy(tree.workspace), "huge_line");
  auto result = client.call_tool("noop", nlohmann::json::object());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), Errc::corrupt);
  EXPECT_NE(result.error().message().find("line longer than"), std::string::npos) << result.error().message();
  expect_dead_and_reaped(client);
}

TEST(DriverClient, GigabytesOfOutputHitTheOutputLimit) {
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.limits.output_bytes = 4 << 20;
  DriverClient client = start_bad(policy, "flood");
  auto result = client.call_tool("noop", nlohmann::json::object(), milliseconds(20'000));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), Errc::resource_exhausted);
  EXPECT_NE(result.error().message().find("bytes to stdout"), std::string::npos) << result.error().message();
  expect_dead_and_reaped(client);
}

TEST(DriverClient, ADriverThatNeverAnswersTimesOut) {
  ScratchTree tree;
  DriverClient client = start_bad(testing::hostile_policy(tree.workspace), "silent");
  const auto start = Clock::now();
  auto result = client.call_tool("noop", nlohmann::json::object(), milliseconds(300));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), Errc::unavailable);
  EXPECT_NE(result.error().message().find("did not answer tools/call within 300 ms"), std::string::npos)
      << result.error().message();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  expect_dead_and_reaped(client);
}

TEST(DriverClient, TheWallClockLimitEndsALongCall) {
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.limits.wall_timeout = milliseconds(400);
  DriverClient client = start_bad(policy, "silent");
  auto result = client.call_tool("noop", nlohmann::json::object(), milliseconds(30'000));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("wall-clock limit"), std::string::npos) << result.error().message();
  expect_dead_and_reaped(client);
}

TEST(DriverClient, ADriverThatDiesMidCallIsAnError) {
  ScratchTree tree;
  for (const char* mode : {"die", "crash"}) {
    SCOPED_TRACE(mode);
    DriverClient client = start_bad(testing::hostile_policy(tree.workspace), mode);
    auto result = client.call_tool("noop", nlohmann::json::object());
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), Errc::unavailable);
    // abort() in pid 1 of a pid namespace cannot deliver SIGABRT to itself (init ignores
    // default-action signals), so glibc ends with a fault: any death by signal will do.
    const std::string expected = std::string(mode) == "die" ? "exit code 3" : "killed by SIG";
    EXPECT_NE(result.error().message().find("exited during tools/call"), std::string::npos) << result.error().message();
    EXPECT_NE(result.error().message().find(expected), std::string::npos) << result.error().message();
    expect_dead_and_reaped(client);
  }
}

TEST(DriverClient, FallsBackToStatelessWhenInitializeIsRefused) {
  ScratchTree tree;
  DriverClient client = start_bad(testing::hostile_policy(tree.workspace), "stateless");
  EXPECT_TRUE(client.stateless());
  auto tools = client.list_tools();
  ASSERT_TRUE(tools.ok()) << tools.error().message();
  ASSERT_EQ(tools->size(), 1u);
  EXPECT_EQ((*tools)[0].name, "noop");
  auto result = client.call_tool("noop", nlohmann::json::object());
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->joined_text(), "done");
  EXPECT_EQ(client.shutdown().describe(), "exit code 0");
}

TEST(DriverClient, ChattyStderrNeitherBlocksNorGrowsWithoutBound) {
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.limits.stderr_bytes = 1024;
  DriverClient client = start_bad(policy, "stderr");
  for (int i = 0; i < 3; ++i) {
    auto result = client.call_tool("noop", nlohmann::json::object(), milliseconds(5000));
    ASSERT_TRUE(result.ok()) << result.error().message();
  }
  EXPECT_LE(client.stderr_tail().size(), 1024u);
  EXPECT_FALSE(client.stderr_tail().empty());
}

}  // namespace
}  // namespace icam::sandbox
