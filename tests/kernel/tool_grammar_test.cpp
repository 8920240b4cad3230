// The tool-call grammar (kernel/tool_grammar.h): what it accepts, what it refuses and where, and
// that whatever it accepts to the end parses and passes the syscall table's argument checks.
#include "kernel/tool_grammar.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernel/tool_call.h"
#include "syscalls/arg_schema.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

using nlohmann::json;

ToolCallGrammar grammar(const std::vector<std::string>& tools,
                        const std::vector<ExternalTool>& external = {}) {
  auto g = ToolCallGrammar::create(tools, external);
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

// An external tool as the dispatcher keeps it: its inputSchema reduced by supported_schema, or
// none when the schema goes beyond the subset.
ExternalTool external_tool(std::string driver, std::string name, const json& input_schema) {
  auto checked = syscalls::supported_schema(input_schema);
  return {std::move(driver), std::move(name), "", checked.ok() ? *checked : json()};
}

// Two drivers (one name a prefix of the other, as are two tool names) with tools of every kind
// the grammar follows, and one whose schema is beyond the subset.
std::vector<ExternalTool> external_tools() {
  const json add = json::parse(R"({"type": "object", "title": "add",
      "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "minimum": -5,
                     "maximum": 5}},
      "required": ["a", "b"], "additionalProperties": false})");
  const json echo = json::parse(R"({"type": "object",
      "properties": {"text": {"type": "string", "maxLength": 8}, "loud": {"type": "boolean"}},
      "required": ["text"]})");
  const json none = json::parse(R"({"type": "object", "properties": {}, "required": []})");
  const json closed = json::parse(R"({"type": "object", "additionalProperties": false})");
  const json loose = json::parse(R"({"type": "object", "properties": {"mode": {"type": "string",
      "enum": ["x", "y"]}}})");
  const json mixed = json::parse(R"({"type": "object",
      "properties": {"scale": {"type": "number"}, "anything": {"type": "array", "maxItems": 2},
                     "opt": {"type": "object", "properties": {"on": {"type": "boolean"}},
                             "additionalProperties": false},
                     "tags": {"type": "array", "items": {"type": "string", "maxLength": 3},
                              "minItems": 1, "maxItems": 2}},
      "required": ["scale", "tags"]})");
  return {external_tool("calc", "add", add),       external_tool("calc", "added", closed),
          external_tool("calc", "echo", echo),     external_tool("calc", "count", none),
          external_tool("calc", "loose", loose),   external_tool("calc2", "mixed", mixed),
          external_tool("calc2", "add", add)};
}

std::string external_call(const std::string& driver, const std::string& tool,
                          const std::string& arguments) {
  return R"({"name": "tool.call", "arguments": {"driver": ")" + driver + R"(", "tool": ")" +
         tool + R"(", "arguments": )" + arguments + "}}</tool_call>";
}

TEST(ToolGrammar, ToolCallNamesAnExternalToolAndFollowsItsSchema) {
  const std::vector<ExternalTool> tools = external_tools();
  ASSERT_TRUE(tools[4].checked_schema.is_null());  // "enum": beyond the subset
  const ToolCallGrammar g = grammar({"tool.call"}, tools);
  EXPECT_TRUE(g.constrains_external_tools());
  EXPECT_TRUE(accepts_whole(g, external_call("calc", "add", R"({"a": 12, "b": -5})")));
  EXPECT_TRUE(accepts_whole(g, external_call("calc", "added", "{}")));
  EXPECT_TRUE(accepts_whole(g, external_call("calc2", "add", R"({"b": 0, "a": 1})")));
  EXPECT_TRUE(accepts_whole(g, external_call("calc", "echo", R"({"loud": true, "text": "hi"})")));
  EXPECT_TRUE(accepts_whole(g, external_call("calc", "count", R"({"any": [1, {"x": null}]})")));
  EXPECT_TRUE(accepts_whole(g, external_call("calc", "loose", R"({"mode": "z", "n": 2.5})")));
  EXPECT_TRUE(accepts_whole(
      g, external_call("calc2", "mixed",
                       R"({"scale": -1.5e-3, "tags": ["a", "bcd"], "anything": [{}, "x"], )"
                       R"("opt": {"on": false}})")));
  EXPECT_TRUE(accepts_whole(
      g, R"({"name":"tool.call","arguments":{"driver":"calc","tool":"add",)"
         R"("arguments":{"a":1,"b":2}}}</tool_call>)"));
  EXPECT_TRUE(accepts_whole(
      g, "{\"name\": \"tool.call\", \"arguments\": { \"driver\" : \"calc\" ,\n\"tool\": "
         "\"count\", \"arguments\": {} }\n}</tool_call>"));

  struct Case {
    std::string accepted;  // taken whole
    std::string refused;   // its first byte is refused
    const char* why;
  };
  const std::string head = R"({"name": "tool.call", "arguments": {)";
  const std::string add = head + R"("driver": "calc", "tool": "add", "arguments": {)";
  const std::vector<Case> cases = {
      {head + R"("driver": "calc)", R"(3")", "a driver the process does not have"},
      {head + R"("driver": ")", R"(web")", "another unknown driver"},
      {head + "\"", R"(tool": "add")", "the tool before the driver"},
      {head + R"("driver": "calc", "tool": ")", R"(mixed")", "a tool of another driver"},
      {head + R"("driver": "calc", "tool": "add)", R"(s")", "a tool the driver lacks"},
      {head + R"("driver": "calc", "tool": "add")", "}", "the arguments left out"},
      {head + R"("driver": "calc", "tool": "add", ")", R"(extra": 1)", "another key"},
      {head + R"("driver": "calc", "tool": "add", "arguments": )", "[", "arguments not an object"},
      {add + R"("a": )", R"("x")", "a string for an integer"},
      {add + R"("a": 1, "b": 1)", "0", "an integer above the tool's maximum"},
      {add + R"("a": 1)", "}", "a required argument missing"},
      {add + R"("a": 1, ")", R"(c": 1)", "an argument the tool's schema closes out"},
      {head + R"("driver": "calc", "tool": "echo", "arguments": {"text": "12345678)", "9",
       "a string over the tool's maxLength"},
      {head + R"("driver": "calc", "tool": "added", "arguments": {)", R"("x": 1)",
       "an argument for a tool that takes none"},
      {head + R"("driver": "calc2", "tool": "mixed", "arguments": {"scale": 1, "tags": [)", "]",
       "fewer items than minItems"},
      {head + R"("driver": "calc2", "tool": "mixed", "arguments": {"anything": [1, 2)", ",",
       "more items than maxItems"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(first_refused(g, c.accepted + c.refused), static_cast<long>(c.accepted.size()))
        << c.why << ": " << c.accepted << c.refused;

  // The other syscalls are as before; without external tools tool.call takes any names and
  // any object, in any order (as its table schema says).
  const ToolCallGrammar free = grammar({"tool.call"});
  EXPECT_FALSE(free.constrains_external_tools());
  EXPECT_TRUE(accepts_whole(free, external_call("web", "search", R"({"q": [1]})")));
  EXPECT_TRUE(accepts_whole(
      free, R"({"name": "tool.call", "arguments": {"tool": "t", "driver": "d"}}</tool_call>)"));
  // Nor with external tools when the process does not list tool.call.
  const ToolCallGrammar without = grammar({"clock.now"}, tools);
  EXPECT_FALSE(without.constrains_external_tools());
}

TEST(ToolGrammar, ExternalToolsItCannotFollowAreRefused) {
  const std::vector<ExternalTool> good = external_tools();
  auto refused = [&](ExternalTool extra, const std::string& expect) {
    std::vector<ExternalTool> tools = good;
    tools.push_back(std::move(extra));
    auto g = ToolCallGrammar::create({"tool.call"}, tools);
    if (g.ok()) return ::testing::AssertionFailure() << "accepted; wanted: " << expect;
    if (g.error().code() != Errc::invalid_argument ||
        g.error().message().find(expect) == std::string::npos)
      return ::testing::AssertionFailure() << g.error().message() << "; wanted: " << expect;
    return ::testing::AssertionSuccess();
  };
  auto schema = [](const char* text) { return json::parse(text); };
  EXPECT_TRUE(refused({"calc", "q\"uote", "", nullptr}, "needs escaping"));
  EXPECT_TRUE(refused({"calc", std::string(129, 't'), "", nullptr}, "too long"));
  EXPECT_TRUE(refused({"calc", "add", "", nullptr}, "listed twice"));
  EXPECT_TRUE(refused({"calc", "ratio", "",
                       schema(R"({"type": "object", "properties": {"r": {"type": "number",
                                  "maximum": 1}}})")},
                      "a number with bounds"));
  EXPECT_TRUE(refused({"calc", "req", "",
                       schema(R"({"type": "object", "properties": {}, "required": ["x"]})")},
                      "does not declare"));
  EXPECT_TRUE(refused({"calc", "req2", "",
                       schema(R"({"type": "object", "properties": {"y": {"type": "object",
                                  "properties": {"z": {"type": "boolean"}},
                                  "required": ["z", "w"]}}})")},
                      "does not declare"));
  EXPECT_TRUE(refused({"calc", "str", "", schema(R"({"type": "string"})")}, "not an object's"));
  EXPECT_TRUE(refused({"calc", "empty", "",
                       schema(R"({"type": "object", "properties": {"n": {"type": "integer",
                                  "minimum": 5, "maximum": 4}}})")},
                      "admits no integer"));
  EXPECT_TRUE(refused({"calc", "items", "",
                       schema(R"({"type": "object", "properties": {"l": {"type": "array",
                                  "minItems": 3, "maxItems": 2}}})")},
                      "minItems above maxItems"));
  json deep = {{"type", "string"}};
  for (int i = 0; i < ToolCallGrammar::kMaxDepth; ++i)
    deep = {{"type", "object"}, {"properties", {{"k", deep}}}};
  EXPECT_TRUE(refused({"calc", "deep", "", deep}, "nests too deeply"));
  std::vector<ExternalTool> many;
  for (int i = 0; i < 65; ++i) many.push_back({"calc", std::string("t").append(std::to_string(i)), "", nullptr});
  auto g = ToolCallGrammar::create({"tool.call"}, many);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message().find("at most 64"), std::string::npos) << g.error().message();
}

// Walks the automaton at random: at each step one of the bytes it accepts, leaning towards
// structure so that walks end. Returns the completed calls' bodies (the text before the closing
// tag); fails the test if a walk reaches a state that accepts no byte at all.
std::vector<std::string> random_walks(const ToolCallGrammar& g, uint64_t seed, int walks) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> bodies;
  for (int walk = 0; walk < walks; ++walk) {
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
      if (structural.empty() && other.empty()) {
        ADD_FAILURE() << "dead end after: " << text;
        return bodies;
      }
      const bool pick_structural = !structural.empty() && (other.empty() || rng() % 3 != 0);
      const auto& pool = pick_structural ? structural : other;
      const uint8_t b = pool[rng() % pool.size()];
      EXPECT_TRUE(g.feed(s, b));
      text += static_cast<char>(b);
    }
    if (!ToolCallGrammar::complete(s)) continue;
    EXPECT_TRUE(text.ends_with(kToolCallClose)) << text;
    if (!text.ends_with(kToolCallClose)) continue;
    const std::string body = text.substr(0, text.size() - kToolCallClose.size());
    // The chosen tool is the one the body names.
    auto call = parse_tool_call(body);
    if (call.ok()) {
      EXPECT_EQ(call->name, g.chosen_tool(s));
    }
    bodies.push_back(body);
  }
  return bodies;
}

// The call a completed walk wrote, when parse_tool_call takes it and its arguments pass the
// syscall table's checks (the test fails otherwise).
std::optional<ToolCall> checked_call(const std::string& body) {
  auto call = parse_tool_call(body);
  EXPECT_TRUE(call.ok()) << (call.ok() ? "" : call.error().message()) << "\n" << body;
  if (!call.ok()) return std::nullopt;
  const syscalls::SyscallSpec* spec = syscalls::find_syscall(call->name);
  EXPECT_NE(spec, nullptr) << body;
  if (spec == nullptr) return std::nullopt;
  Status valid = syscalls::validate_syscall_arguments(*spec, call->arguments);
  EXPECT_TRUE(valid.ok()) << (valid.ok() ? "" : valid.error().message()) << "\n" << body;
  return std::move(call).value();
}

// Every walk that completes must be a call that parse_tool_call takes and whose arguments pass
// the syscall table's checks.
TEST(ToolGrammar, EverythingAcceptedParsesAndValidates) {
  const ToolCallGrammar g = grammar(every_tool());
  const std::vector<std::string> bodies = random_walks(g, 20261205, 400);
  for (const std::string& body : bodies) ASSERT_TRUE(checked_call(body)) << body;
  EXPECT_GE(bodies.size(), 200u);
}

// The same with external tools: every tool.call names a driver and a tool the process has, and
// its arguments pass that tool's checked schema (as the dispatcher checks them).
TEST(ToolGrammar, EveryExternalCallAcceptedNamesARealToolWithValidArguments) {
  const std::vector<ExternalTool> tools = external_tools();
  for (const bool every : {false, true}) {
    std::vector<std::string> names = every ? every_tool() : std::vector<std::string>{"tool.call"};
    const ToolCallGrammar g = grammar(names, tools);
    const std::vector<std::string> bodies = random_walks(g, every ? 7 : 20261206, 400);
    std::set<std::string> seen;
    for (const std::string& body : bodies) {
      const std::optional<ToolCall> call = checked_call(body);
      ASSERT_TRUE(call) << body;
      if (call->name != "tool.call") continue;
      const json& a = call->arguments;
      ASSERT_TRUE(a.contains("arguments")) << body;
      const ExternalTool* tool = nullptr;
      for (const ExternalTool& t : tools)
        if (t.driver == a["driver"] && t.name == a["tool"]) tool = &t;
      ASSERT_NE(tool, nullptr) << "no such tool: " << body;
      seen.insert(tool->driver + "/" + tool->name);
      ASSERT_TRUE(a["arguments"].is_object()) << body;
      if (tool->checked_schema.is_null()) continue;
      Status args = syscalls::validate_arguments(tool->checked_schema, a["arguments"],
                                                 "/arguments/arguments");
      EXPECT_TRUE(args.ok()) << args.error().message() << "\n" << body;
    }
    if (!every) {
      EXPECT_GE(bodies.size(), 200u);
      EXPECT_EQ(seen.size(), tools.size());  // every tool was reached
    }
  }
}

}  // namespace
}  // namespace icam::kernel
