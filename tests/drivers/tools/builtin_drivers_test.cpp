// The built-in drivers, as the kernel runs them: real binaries in the sandbox, spoken to through
// DriverClient.
#include <gtest/gtest.h>

#include <fstream>

#include "drivers/tools/workspace_path.h"
#include "sandbox/driver_client.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace icam::sandbox {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ScratchTree;

DriverClient start(const ScratchTree& tree, std::vector<std::string> argv) {
  auto client = DriverClient::start(testing::driver_policy(tree.workspace), argv);
  if (!client.ok()) ADD_FAILURE() << client.error().message();
  return std::move(client).value();
}

driver::ToolOutput call(DriverClient& client, const std::string& tool, const json& args) {
  auto output = client.call_tool(tool, args);
  if (!output.ok()) ADD_FAILURE() << tool << ": " << output.error().message();
  return output.ok() ? std::move(output).value() : driver::ToolOutput::error("call failed");
}

TEST(FsDriver, ReadsWritesListsStatsAndRemoves) {
  ScratchTree tree;
  DriverClient fs_driver = start(tree, {ICAM_DRIVER_FS});
  EXPECT_EQ(fs_driver.server_info()["name"], "icam-driver-fs");
  auto tools = fs_driver.list_tools();
  ASSERT_TRUE(tools.ok());
  EXPECT_EQ(tools->size(), 5u);

  EXPECT_EQ(call(fs_driver, "read_file", {{"path", "hello.txt"}}).joined_text(), "hello from the workspace\n");
  EXPECT_FALSE(call(fs_driver, "write_file", {{"path", "sub/new.txt"}, {"content", "fresh"}}).is_error);
  std::ifstream written(tree.workspace / "sub/new.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(written), {}), "fresh");
  const auto listed = call(fs_driver, "list_dir", {{"path", "."}});
  EXPECT_EQ(listed.structured["entries"].size(), 2u);
  const auto stat = call(fs_driver, "stat", {{"path", "sub/new.txt"}});
  EXPECT_EQ(stat.structured["size"], 5);
  EXPECT_EQ(stat.structured["type"], "file");
  EXPECT_FALSE(call(fs_driver, "remove", {{"path", "sub"}}).is_error);
  EXPECT_FALSE(fs::exists(tree.workspace / "sub"));
  EXPECT_EQ(fs_driver.shutdown().describe(), "exit code 0");
}

TEST(FsDriver, RefusesPathsOutsideTheWorkspace) {
  ScratchTree tree;
  fs::create_symlink(tree.secret, tree.workspace / "link");
  DriverClient fs_driver = start(tree, {ICAM_DRIVER_FS});
  for (const std::string& path : {std::string("../outside/secret.txt"), tree.secret.string(),
                                  std::string("/etc/shadow"), std::string("link"), std::string("a/../../x")}) {
    SCOPED_TRACE(path);
    const auto output = call(fs_driver, "read_file", {{"path", path}});
    EXPECT_TRUE(output.is_error);
    EXPECT_NE(output.joined_text().find("outside the workspace"), std::string::npos) << output.joined_text();
  }
  EXPECT_TRUE(call(fs_driver, "write_file", {{"path", "../escape.txt"}, {"content", "x"}}).is_error);
  EXPECT_TRUE(call(fs_driver, "remove", {{"path", "."}}).is_error);
  EXPECT_FALSE(fs::exists(tree.root / "escape.txt"));
  // Bad arguments are protocol errors, not tool failures.
  auto missing = fs_driver.call_tool("read_file", json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::invalid_argument);
  EXPECT_TRUE(fs_driver.alive());
}

TEST(WorkspacePath, ResolvesSymlinksAndDotDot) {
  ScratchTree tree;
  fs::create_symlink(tree.outside, tree.workspace / "out");
  fs::create_directories(tree.workspace / "in");
  EXPECT_EQ(*tools::resolve_in_workspace(tree.workspace, "in/../hello.txt"), tree.workspace / "hello.txt");
  EXPECT_EQ(*tools::resolve_in_workspace(tree.workspace, "new/file"), tree.workspace / "new/file");
  EXPECT_EQ(tools::resolve_in_workspace(tree.workspace, "out/secret.txt").error().code(), Errc::permission_denied);
  EXPECT_EQ(tools::resolve_in_workspace(tree.workspace, "../ws2").error().code(), Errc::permission_denied);
  EXPECT_EQ(tools::resolve_in_workspace(tree.workspace, "").error().code(), Errc::invalid_argument);
}

TEST(ExecDriver, RunsCommandsWithLimits) {
  ScratchTree tree;
  DriverClient exec = start(tree, {ICAM_DRIVER_EXEC});
  const auto echo = call(exec, "run", {{"argv", {"/bin/echo", "hi"}}});
  EXPECT_FALSE(echo.is_error) << echo.joined_text();
  EXPECT_EQ(echo.structured["stdout"], "hi\n");
  EXPECT_EQ(echo.structured["exit_code"], 0);

  const auto cat = call(exec, "run", {{"argv", {"cat", "hello.txt"}}});
  EXPECT_EQ(cat.structured["stdout"], "hello from the workspace\n") << cat.joined_text();

  const auto failing = call(exec, "run", {{"argv", {"/bin/sh", "-c", "echo oops >&2; exit 4"}}});
  EXPECT_TRUE(failing.is_error);
  EXPECT_EQ(failing.structured["exit_code"], 4);
  EXPECT_EQ(failing.structured["stderr"], "oops\n");

  const auto slow = call(exec, "run", {{"argv", {"/bin/sleep", "10"}}, {"timeout_ms", 200}});
  EXPECT_TRUE(slow.is_error);
  EXPECT_EQ(slow.structured["timed_out"], true);

  const auto loud = call(exec, "run", {{"argv", {"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"}}, {"max_output_bytes", 1000}});
  EXPECT_EQ(loud.structured["truncated"], true) << loud.joined_text();
  EXPECT_EQ(loud.structured["stdout"].get<std::string>().size(), 1000u);

  const auto escape = call(exec, "run", {{"argv", {"cat", tree.secret.string()}}});
  EXPECT_TRUE(escape.is_error);
  EXPECT_EQ(escape.structured["stdout"].get<std::string>().find("top secret"), std::string::npos);
}

TEST(KvDriver, StoresValuesAtomicallyInTheWorkspace) {
  ScratchTree tree;
  {
    DriverClient kv = start(tree, {ICAM_DRIVER_KV, "agent-7"});
    EXPECT_FALSE(call(kv, "set", {{"key", "answer"}, {"value", 42}}).is_error);
    EXPECT_FALSE(call(kv, "set", {{"key", "list"}, {"value", {1, 2}}}).is_error);
    EXPECT_EQ(call(kv, "get", {{"key", "answer"}}).structured["value"], 42);
    EXPECT_TRUE(call(kv, "get", {{"key", "missing"}}).is_error);
    EXPECT_EQ(call(kv, "delete", {{"key", "list"}}).structured["removed"], true);
  }
  // The store outlives the driver; a new one (same agent) sees it.
  EXPECT_TRUE(fs::exists(tree.workspace / "kv-agent-7.json"));
  EXPECT_FALSE(fs::exists(tree.workspace / "kv-agent-7.json.tmp"));
  DriverClient again = start(tree, {ICAM_DRIVER_KV, "agent-7"});
  EXPECT_EQ(call(again, "list", json::object()).structured["keys"], json({"answer"}));
  DriverClient other = start(tree, {ICAM_DRIVER_KV, "agent-8"});
  EXPECT_EQ(call(other, "list", json::object()).structured["keys"], json::array());
}

}  // namespace
}  // namespace icam::sandbox
