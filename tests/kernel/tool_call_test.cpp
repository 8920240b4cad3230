#include "kernel/tool_call.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernel/agent_loop.h"

namespace icam::kernel {
namespace {

using nlohmann::json;

TEST(ToolCallTest, ParsesAValidCall) {
  auto call = parse_tool_call(R"({"name": "proc.exit", "arguments": {"answer": "Paris"}})");
  ASSERT_TRUE(call.ok()) << call.error().message();
  EXPECT_EQ(call->name, "proc.exit");
  EXPECT_EQ(call->arguments, json({{"answer", "Paris"}}));
}

TEST(ToolCallTest, ExtractsTheLastCallOfATurn) {
  auto call = extract_tool_call(
      "Let me think. <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> no, "
      "<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": 1}}");
  ASSERT_TRUE(call.ok()) << call.error().message();
  EXPECT_EQ(call->name, "b");
  auto none = extract_tool_call("no call here");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message(), "tool call: '</tool_call>' without '<tool_call>'");
}

TEST(ToolCallTest, MalformedCallsAreErrors) {
  auto bad = parse_tool_call(R"({"name": "proc.exit", "arguments": )");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("tool call: malformed JSON: ", 0), 0u)
      << bad.error().message();

  struct Case {
    const char* body;
    const char* expected;
  };
  const Case cases[] = {
      {"[1]", "tool call: expected a JSON object"},
      {R"({"arguments": {}})", "tool call: /name: missing"},
      {R"({"name": "", "arguments": {}})", "tool call: /name: expected a non-empty string"},
      {R"({"name": 3, "arguments": {}})", "tool call: /name: expected a non-empty string"},
      {R"({"name": "proc.exit"})", "tool call: /arguments: missing"},
      {R"({"name": "proc.exit", "arguments": "x"})", "tool call: /arguments: expected an object"},
      {R"({"name": "proc.exit", "arguments": {}, "id": 1})", "tool call: /id: unknown key"},
  };
  for (const auto& c : cases) {
    auto r = parse_tool_call(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().message(), c.expected) << c.body;
  }
}

// A test double of the syscall layer: records calls, echoes arguments or fails on request.
class FakeSyscalls : public SyscallHandler {
 public:
  Result<std::string> call(Process& process, const std::string& name,
                           const json& arguments) override {
    calls.push_back(name);
    pids.push_back(process.pid);
    if (name == "test.fail") return make_error(Errc::io, "disk on fire");
    return "echo " + arguments.dump();
  }
  std::vector<std::string> calls;
  std::vector<Pid> pids;
};

Process test_process(std::vector<std::string> tools, int64_t syscall_budget = 10) {
  Process p;
  p.pid = 7;
  p.tools = std::move(tools);
  p.budgets.syscalls = syscall_budget;
  return p;
}

TEST(ToolCallTest, ProcExitEndsTheProcessWithItsAnswer) {
  Process p = test_process({"proc.exit"});
  FakeSyscalls fake;
  ToolOutcome o = execute_tool_call(
      p, "ok <tool_call>{\"name\": \"proc.exit\", \"arguments\": {\"answer\": \"Paris\"}}", fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::exit);
  EXPECT_EQ(o.text, "Paris");
  EXPECT_EQ(p.accounting.syscalls, 1);
  EXPECT_TRUE(fake.calls.empty());  // proc.exit is the kernel's own

  o = execute_tool_call(p, "<tool_call>{\"name\": \"proc.exit\", \"arguments\": {\"answer\": 4}}",
                        fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::resume);
  EXPECT_EQ(json::parse(o.text),
            json({{"error", "proc.exit: /arguments/answer: expected a string"}}));
}

TEST(ToolCallTest, ListedToolsGoToTheHandlerAndErrorsBecomeToolMessages) {
  Process p = test_process({"proc.exit", "test.echo", "test.fail"});
  FakeSyscalls fake;
  ToolOutcome o =
      execute_tool_call(p, "<tool_call>{\"name\": \"test.echo\", \"arguments\": {\"x\": 1}}", fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::resume);
  EXPECT_EQ(o.text, "echo {\"x\":1}");
  ASSERT_EQ(fake.calls, std::vector<std::string>{"test.echo"});
  EXPECT_EQ(fake.pids[0], 7u);

  o = execute_tool_call(p, "<tool_call>{\"name\": \"test.fail\", \"arguments\": {}}", fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::resume);
  EXPECT_EQ(json::parse(o.text), json({{"error", "disk on fire"}}));
}

TEST(ToolCallTest, UnknownAndUnlistedToolsAreAnsweredWithAnError) {
  Process p = test_process({"proc.exit"});
  FakeSyscalls fake;
  ToolOutcome o =
      execute_tool_call(p, "<tool_call>{\"name\": \"test.echo\", \"arguments\": {}}", fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::resume);
  EXPECT_EQ(json::parse(o.text), json({{"error", "unknown tool 'test.echo'"}}));
  EXPECT_TRUE(fake.calls.empty());  // not listed in the job: the handler never sees it

  NoSyscalls none;
  Process q = test_process({"proc.exit", "fs.read"});
  o = execute_tool_call(q, "<tool_call>{\"name\": \"fs.read\", \"arguments\": {}}", none);
  EXPECT_EQ(json::parse(o.text), json({{"error", "unknown tool 'fs.read'"}}));
}

TEST(ToolCallTest, MalformedCallsAreAnsweredWithStructuredErrors) {
  Process p = test_process({"proc.exit"});
  FakeSyscalls fake;
  ToolOutcome o = execute_tool_call(p, "<tool_call>{\"name\": \"proc.exit\"", fake);
  EXPECT_EQ(o.kind, ToolOutcome::Kind::resume);
  json err = json::parse(o.text);
  ASSERT_TRUE(err.contains("error"));
  EXPECT_EQ(err["error"].get<std::string>().rfind("tool call: malformed JSON", 0), 0u);
  o = execute_tool_call(p, "<tool_call>{\"name\": \"proc.exit\"}", fake);
  EXPECT_EQ(json::parse(o.text), json({{"error", "tool call: /arguments: missing"}}));
  EXPECT_EQ(p.accounting.syscalls, 2);
}

TEST(ToolCallTest, SyscallBudgetSparesProcExit) {
  Process p = test_process({"proc.exit"}, /*syscall_budget=*/1);
  FakeSyscalls fake;
  EXPECT_EQ(execute_tool_call(p, "<tool_call>{}", fake).kind, ToolOutcome::Kind::resume);
  EXPECT_EQ(execute_tool_call(p, "<tool_call>{}", fake).kind, ToolOutcome::Kind::budget);
  EXPECT_EQ(execute_tool_call(
                p, "<tool_call>{\"name\": \"proc.exit\", \"arguments\": {\"answer\": \"a\"}}", fake)
                .kind,
            ToolOutcome::Kind::exit);
}

TEST(ToolCallTest, ToolMessageTextClosesTheTurnAndOpensTheNext) {
  auto gemma = AgentLoop::tool_message_text(llm::ChatFamily::gemma, "{\"error\": \"x\"}");
  ASSERT_TRUE(gemma.ok()) << gemma.error().message();
  EXPECT_EQ(*gemma,
            "<end_of_turn>\n<start_of_turn>user\nTool result:\n{\"error\": \"x\"}<end_of_turn>\n"
            "<start_of_turn>model\n");
  auto chatml = AgentLoop::tool_message_text(llm::ChatFamily::chatml, "42");
  ASSERT_TRUE(chatml.ok()) << chatml.error().message();
  EXPECT_EQ(chatml->rfind("<|im_end|>\n", 0), 0u) << *chatml;
  EXPECT_NE(chatml->find("42"), std::string::npos);
  EXPECT_TRUE(chatml->ends_with("<|im_start|>assistant\n")) << *chatml;
}

TEST(ToolCallTest, InstructionsShowTheSyntax) {
  const std::string text = tool_instructions({"proc.exit"});
  EXPECT_NE(text.find("<tool_call>{\"name\": \"TOOL\", \"arguments\": {...}}</tool_call>"),
            std::string::npos);
  EXPECT_NE(text.find("proc.exit"), std::string::npos);
}

TEST(ToolCallTest, InstructionsListEachAllowedSyscallWithItsArguments) {
  const std::string text = tool_instructions({"proc.exit", "fs.write", "clock.now"});
  EXPECT_NE(text.find("- fs.write {\"content\": string, \"path\": string}: Create or replace a "
                      "file in the workspace"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("- clock.now {}: The current time."), std::string::npos) << text;
  EXPECT_EQ(text.find("fs.read"), std::string::npos);              // only what the job lists
  EXPECT_EQ(text.find("- proc.exit"), text.rfind("- proc.exit"));  // once
}

}  // namespace
}  // namespace icam::kernel
