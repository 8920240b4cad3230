// The tool-call grammar (kernel/tool_grammar.h): what it accepts, what it refuses and where, and
// that whatever it accepts to the end parses and passes the syscall table's argument checks.
#include "kernel/tool_grammar.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernel/tool_call.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

ToolCallGrammar grammar(const std::vector<std::string>& tools) {
  auto g = ToolCallGrammar::create(tools);
  EXPECT_TRUE(g.ok()) << g.error().message();
  return std::move(g).value();
}

std::vector<std::string> every_tool() {
  std::vector<std::string> names;
  for (const auto& spec : syscalls::syscall_table()) names.push_back(spec.name);
  return names;
}

// Feeds `text`; returns the offset of the first refused byte, or -1 when all were taken.
long first_refused(const ToolCallGrammar& g, std::string_view text) {
  ToolCallGrammar::State s = g.initial();
  for (size_t i = 0; i < text.size(); ++i)
    if (!g.feed(s, static_cast<uint8_t>(text[i]))) return static_cast<long>(i);
  return -1;
}

bool accepts_whole(const ToolCallGrammar& g, std::string_view text) {
  ToolCallGrammar::State s = g.initial();
  return g.feed(s, text) && ToolCallGrammar::complete(s);
}

TEST(ToolGrammar, AcceptsWellFormedCalls) {
  const ToolCallGrammar g = grammar({"fs.write", "exec.run", "clock.now"});
  EXPECT_TRUE(accepts_whole(g, R"({"name": "clock.now", "arguments": {}}</tool_call>)"));
  EXPECT_TRUE(accepts_whole(g, R"({"name":"clock.now","arguments":{}}</tool_call>)"));
  EXPECT_TRUE(accepts_whole(
      g, "\n{\"name\": \"fs.write\", \"arguments\": {\"path\": \"out/a.txt\", \"content\": "
         "\"h\\u00e9llo \\\"w\\\" <\\/b> caf\xC3\xA9 \xF0\x9F\x98\x80\"}}\n</tool_call>"));
  // Properties in any order.
  EXPECT_TRUE(accepts_whole(
      g, R"({"name": "fs.write", "arguments": {"content": "x", "path": "y"}}</tool_call>)"));
  EXPECT_TRUE(accepts_whole(
      g, R"({"name": "exec.run", "arguments": {"argv": ["/bin/echo", "hi"]}}</tool_call>)"));
  // proc.exit is always allowed.
  EXPECT_TRUE(
      accepts_whole(g, R"({"name": "proc.exit", "arguments": {"answer": "done"}}</tool_call>)"));
}

TEST(ToolGrammar, RefusesAtTheFirstWrongByte) {
  const ToolCallGrammar g = grammar({"fs.write", "clock.now"});
  struct Case {
    std::string accepted;  // taken whole
    std::string refused;   // its first byte is refused
    const char* why;
  };
  const std::string head = R"({"name": "fs.write", "arguments": {)";
  const std::string now = R"({"name": "clock.now", "arguments": {)";
  const std::vector<Case> cases = {
      {R"({"nam)", R"(": )", "a misspelt key"},
      {R"({")", R"(arguments": {}})", "arguments before the name"},
      {R"({"name": "fs.)", R"(read", )", "a tool the process may not use"},
      {R"({"name": "fs.write)", R"(r", )", "a name longer than any tool"},
      {now, R"("x": 1}})", "an argument for a tool that takes none"},
      {head + R"("pat)", R"(x": 1)", "an argument the tool lacks"},
      {head + R"("path": "a")", "}", "a required argument missing"},
      {head + R"("path": "a", ")", R"(path": "b")", "an argument twice"},
      {head + R"("path": "a",)", "}", "a trailing comma"},
      {head + R"("path": "a)", "\tb\"", "a raw control character"},
      {head + R"("path": "<)", R"(/tool_call>")", "the closing tag inside a string"},
      {head + R"("path": "\ud)", R"(800")", "a surrogate escape"},
      {head + R"("path": ")", "\xC0\xAF\"", "an overlong UTF-8 form"},
      {head + "\"path\": \"\xED", "\xA0\x80\"", "a UTF-8 surrogate"},
      {head + R"("path": )", "7", "a number for a string"},
      {R"({"name": )", R"( "clock.now")", "two whitespace characters"},
      {R"({"name": "clock.now", "arguments": {}}</tool_call>)", "x", "bytes after the call"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(first_refused(g, c.accepted + c.refused), static_cast<long>(c.accepted.size()))
        << c.why << ": " << c.accepted << c.refused;
}

TEST(ToolGrammar, IntegersStayInRangeAndNeverDeadEnd) {
  // exec.run's timeout_ms: an integer in [1, 20000].
  const ToolCallGrammar g = grammar({"exec.run"});
  const std::string head = R"({"name": "exec.run", "arguments": {"argv": ["/bin/true"], )";
  auto call = [&](std::string n) { return head + R"("timeout_ms": )" + n + "}}</tool_call>"; };
  EXPECT_TRUE(accepts_whole(g, call("1")));
  EXPECT_TRUE(accepts_whole(g, call("20000")));
  EXPECT_FALSE(accepts_whole(g, call("0")));      // below the minimum, and no digit may follow
  EXPECT_FALSE(accepts_whole(g, call("20001")));  // above the maximum
  EXPECT_FALSE(accepts_whole(g, call("-5")));     // no negative number is in range
  EXPECT_FALSE(accepts_whole(g, call("012")));    // leading zero
  EXPECT_FALSE(accepts_whole(g, call("1.5")));    // not an integer
  // "3" can grow to 3000; "30000" cannot be reached, so its last 0 is refused.
  const std::string prefix = head + R"("timeout_ms": )";
  EXPECT_EQ(first_refused(g, prefix + "30000"), static_cast<long>(prefix.size()) + 4);
}

TEST(ToolGrammar, StringsRespectMaxLengthWithoutDeadEnds) {
  // kv.get's namespace is at most 128 bytes.
  const ToolCallGrammar g = grammar({"kv.get"});
  const std::string head = R"({"name": "kv.get", "arguments": {"key": "k", "namespace": ")";
  const std::string tail = "\"}}</tool_call>";
  EXPECT_TRUE(accepts_whole(g, head + std::string(128, 'a') + tail));
  EXPECT_EQ(first_refused(g, head + std::string(129, 'a')), static_cast<long>(head.size()) + 128);
  // A two-byte character or an escape that would not fit is refused where it begins.
  EXPECT_EQ(first_refused(g, head + std::string(127, 'a') + "\xC3\xA9"),
            static_cast<long>(head.size()) + 127);
  EXPECT_EQ(first_refused(g, head + std::string(126, 'a') + "\\u00e9"),
            static_cast<long>(head.size()) + 127);
}

TEST(ToolGrammar, AnOpenObjectTakesAnyJson) {
  // tool.call's "arguments" declares no properties and allows others: any JSON object.
  const ToolCallGrammar g = grammar({"tool.call"});
  const std::string head =
      R"({"name": "tool.call", "arguments": {"driver": "calc", "tool": "add", "arguments": )";
  const std::string tail = "}}</tool_call>";
  EXPECT_TRUE(accepts_whole(g, head + "{}" + tail));
  EXPECT_TRUE(accepts_whole(
      g, head + R"({"a": 1.5e3, "b": [true, null, "x", -0.25, 0], "c": {"d": {}, "e": []}})" + tail));
  for (const char* bad : {R"({"a": 01})", R"({"a": 1.})", R"({"a": -})", R"({"a": 1,})",
                          R"({"a" 1})", R"({a: 1})", R"({"a": nul})", R"([1])"})
    EXPECT_FALSE(accepts_whole(g, head + bad + tail)) << bad;
  // Nesting stops where the automaton's stack ends; a scalar can always be written there.
  std::string deep = head;
  long opened = 0;
  ToolCallGrammar::State s = g.initial();
  ASSERT_TRUE(g.feed(s, head));
  while (g.feed(s, R"({"k": )")) {
    deep += R"({"k": )";
    ++opened;
  }
  EXPECT_GT(opened, 0);
  EXPECT_LT(opened, ToolCallGrammar::kMaxDepth);
  deep += "1";
  for (long i = 0; i < opened; ++i) deep += "}";
  EXPECT_TRUE(accepts_whole(g, deep + tail));
}

TEST(ToolGrammar, RefusesUnknownToolsAndUnsupportedSchemas) {
  auto g = ToolCallGrammar::create({"fs.read", "no.such"});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message().find("no.such"), std::string::npos);
}

// Walks the automaton at random: at each step one of the bytes it accepts, leaning towards
// structure so that walks end. Every walk that completes must be a call that parse_tool_call
// takes and whose arguments pass the syscall table's checks; no walk may reach a state that
// accepts no byte at all.
TEST(ToolGrammar, EverythingAcceptedParsesAndValidates) {
  const std::vector<std::string> tools = every_tool();
  const ToolCallGrammar g = grammar(tools);
  std::mt19937_64 rng(20261205);
  int completed = 0;
  for (int walk = 0; walk < 400; ++walk) {
    ToolCallGrammar::State s = g.initial();
    std::string text;
    while (!ToolCallGrammar::complete(s) && text.size() < 4000) {
      std::vector<uint8_t> structural, other;
      for (int b = 0; b < 256; ++b) {
        ToolCallGrammar::State probe = s;
        if (!g.feed(probe, static_cast<uint8_t>(b))) continue;
        const bool plain = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80;
        (plain ? other : structural).push_back(static_cast<uint8_t>(b));
      }
      ASSERT_FALSE(structural.empty() && other.empty()) << "dead end after: " << text;
      const bool pick_structural = !structural.empty() && (other.empty() || rng() % 3 != 0);
      const auto& pool = pick_structural ? structural : other;
      const uint8_t b = pool[rng() % pool.size()];
      ASSERT_TRUE(g.feed(s, b));
      text += static_cast<char>(b);
    }
    if (!ToolCallGrammar::complete(s)) continue;
    ++completed;
    ASSERT_TRUE(text.ends_with(kToolCallClose)) << text;
    const std::string body = text.substr(0, text.size() - kToolCallClose.size());
    auto call = parse_tool_call(body);
    ASSERT_TRUE(call.ok()) << call.error().message() << "\n" << body;
    EXPECT_EQ(call->name, g.chosen_tool(s));
    const syscalls::SyscallSpec* spec = syscalls::find_syscall(call->name);
    ASSERT_NE(spec, nullptr);
    Status valid = syscalls::validate_syscall_arguments(*spec, call->arguments);
    EXPECT_TRUE(valid.ok()) << valid.error().message() << "\n" << body;
  }
  EXPECT_GE(completed, 200);
}

}  // namespace
}  // namespace icam::kernel
