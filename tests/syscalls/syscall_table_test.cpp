// The syscall table: its entries, the argument validator and the generated reference in
// docs/syscalls.md.
#include "syscalls/syscall_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>

#include "syscalls/arg_schema.h"

namespace icam::syscalls {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string error_of(const json& schema, const json& value) {
  Status st = validate_arguments(schema, value, "/arguments");
  return st.ok() ? "ok" : st.error().message();
}

TEST(SyscallTable, HoldsEverySyscallOnceWithAConsistentEntry) {
  const std::vector<std::string> expected = {
      "fs.read",   "fs.write",  "fs.list",    "fs.stat",   "fs.remove", "exec.run",
      "kv.get",    "kv.put",    "msg.send",   "msg.recv",  "human.ask", "proc.spawn",
      "proc.wait", "proc.kill", "clock.now",  "proc.exit", "tool.call", "mem.store",
      "mem.recall"};
  std::vector<std::string> names;
  for (const auto& s : syscall_table()) names.push_back(s.name);
  EXPECT_EQ(names, expected);
  EXPECT_EQ(syscall_names(),
            "fs.read, fs.write, fs.list, fs.stat, fs.remove, exec.run, kv.get, kv.put, "
            "msg.send, msg.recv, human.ask, proc.spawn, proc.wait, proc.kill, clock.now, "
            "proc.exit, tool.call, mem.store, mem.recall");
  for (const auto& s : syscall_table()) {
    SCOPED_TRACE(s.name);
    EXPECT_EQ(find_syscall(s.name), &s);
    EXPECT_FALSE(s.summary.empty());
    EXPECT_FALSE(s.result.empty());
    EXPECT_GT(s.timeout.count(), 0);
    EXPECT_EQ(s.arguments["type"], "object");
    EXPECT_EQ(s.arguments["additionalProperties"], false);
    // The empty object is valid exactly when nothing is required.
    EXPECT_EQ(validate_syscall_arguments(s, json::object()).ok(), s.arguments["required"].empty());
    // A capability goes with a target rule and an argument the schema declares.
    EXPECT_EQ(s.capability.has_value(), s.target != TargetRule::none);
    // (constant and computed targets name no argument, or name one only to describe it)
    if (s.capability && !s.target_argument.empty()) {
      const std::string first = s.target_argument.substr(1, s.target_argument.find('/', 1) - 1);
      EXPECT_TRUE(s.arguments["properties"].contains(first)) << s.target_argument;
    }
    // Built-in drivers serve through a named tool; the kernel needs none, and an external
    // driver's tool is named by the call's arguments.
    EXPECT_EQ(s.server == Server::kernel || s.server == Server::external, s.driver_tool.empty());
  }
  EXPECT_EQ(find_syscall("fs.chmod"), nullptr);
}

TEST(SyscallTable, StatesCapabilitiesAndSideEffects) {
  EXPECT_EQ(find_syscall("fs.read")->capability, CapKind::fs_read);
  EXPECT_EQ(find_syscall("fs.list")->capability, CapKind::fs_read);
  EXPECT_EQ(find_syscall("fs.stat")->capability, CapKind::fs_read);
  EXPECT_EQ(find_syscall("fs.write")->capability, CapKind::fs_write);
  EXPECT_EQ(find_syscall("fs.remove")->capability, CapKind::fs_write);
  EXPECT_EQ(find_syscall("exec.run")->capability, CapKind::exec);
  EXPECT_EQ(find_syscall("kv.get")->capability, CapKind::kv);
  EXPECT_EQ(find_syscall("kv.put")->capability, CapKind::kv);
  EXPECT_FALSE(find_syscall("clock.now")->capability.has_value());
  EXPECT_FALSE(find_syscall("proc.exit")->capability.has_value());
  EXPECT_EQ(find_syscall("proc.spawn")->capability, CapKind::spawn);
  EXPECT_EQ(find_syscall("msg.send")->capability, CapKind::msg);
  EXPECT_EQ(find_syscall("human.ask")->capability, CapKind::tool);
  // Waiting on one's own children and mailbox needs no capability: what can arrive there was
  // checked when it was sent or spawned.
  EXPECT_FALSE(find_syscall("proc.wait")->capability.has_value());
  EXPECT_FALSE(find_syscall("msg.recv")->capability.has_value());
  // Archival memory is the process's own namespace: the capability is the tool itself.
  EXPECT_EQ(find_syscall("tool.call")->capability, CapKind::tool);
  EXPECT_EQ(find_syscall("tool.call")->side_effect, SideEffectClass::irreversible);
  EXPECT_FALSE(find_syscall("tool.call")->idempotent);
  EXPECT_EQ(find_syscall("tool.call")->server, Server::external);
  EXPECT_EQ(*raw_capability_target(*find_syscall("tool.call"), {{"driver", "calc"}, {"tool", "add"}}),
            "calc/add");
  EXPECT_EQ(find_syscall("mem.store")->capability, CapKind::tool);
  EXPECT_EQ(find_syscall("mem.recall")->capability, CapKind::tool);
  EXPECT_EQ(*raw_capability_target(*find_syscall("mem.store"), {{"text", "x"}}), "mem.store");
  EXPECT_EQ(*raw_capability_target(*find_syscall("mem.recall"), {{"query", "x"}}), "mem.recall");
  EXPECT_FALSE(find_syscall("mem.store")->idempotent);
  EXPECT_EQ(find_syscall("mem.recall")->side_effect, SideEffectClass::read);
  EXPECT_EQ(find_syscall("proc.spawn")->side_effect, SideEffectClass::irreversible);
  EXPECT_FALSE(find_syscall("msg.send")->idempotent);

  EXPECT_EQ(find_syscall("fs.read")->side_effect, SideEffectClass::read);
  EXPECT_EQ(find_syscall("fs.write")->side_effect, SideEffectClass::write);
  EXPECT_EQ(find_syscall("fs.remove")->side_effect, SideEffectClass::irreversible);
  EXPECT_EQ(find_syscall("exec.run")->side_effect, SideEffectClass::irreversible);
  EXPECT_FALSE(find_syscall("exec.run")->idempotent);
  EXPECT_EQ(find_syscall("clock.now")->side_effect, SideEffectClass::pure);
  EXPECT_EQ(side_effect_class_name(SideEffectClass::irreversible), "irreversible");
}

TEST(SyscallTable, DerivesTheRawCapabilityTarget) {
  const SyscallSpec& read = *find_syscall("fs.read");
  EXPECT_EQ(*raw_capability_target(read, {{"path", "notes/a.txt"}}), "notes/a.txt");
  const SyscallSpec& list = *find_syscall("fs.list");
  EXPECT_EQ(*raw_capability_target(list, json::object()), ".");  // the workspace by default
  const SyscallSpec& run = *find_syscall("exec.run");
  EXPECT_EQ(*raw_capability_target(run, {{"argv", {"/bin/echo", "hi"}}}), "/bin/echo");
  const SyscallSpec& get = *find_syscall("kv.get");
  EXPECT_EQ(*raw_capability_target(get, {{"namespace", "notes"}, {"key", "k"}}), "notes");
  EXPECT_FALSE(raw_capability_target(*find_syscall("clock.now"), json::object()).ok());
  // A constant target whatever the arguments; computed ones are the kernel's to derive.
  EXPECT_EQ(*raw_capability_target(*find_syscall("human.ask"), {{"question", "ok?"}}),
            "human.ask");
  EXPECT_FALSE(raw_capability_target(*find_syscall("proc.spawn"), {{"name", "c"}}).ok());
  EXPECT_FALSE(raw_capability_target(*find_syscall("msg.send"), {{"to", 2}}).ok());
}

TEST(ArgSchema, AcceptsWhatTheSchemaAllows) {
  const SyscallSpec& write = *find_syscall("fs.write");
  EXPECT_TRUE(validate_syscall_arguments(write, {{"path", "a.txt"}, {"content", ""}}).ok());
  const SyscallSpec& run = *find_syscall("exec.run");
  EXPECT_TRUE(validate_syscall_arguments(run, {{"argv", {"/bin/true"}}, {"timeout_ms", 5}}).ok());
  EXPECT_TRUE(validate_syscall_arguments(*find_syscall("clock.now"), json::object()).ok());
}

TEST(ArgSchema, ErrorsNameTheJsonPath) {
  const json write = find_syscall("fs.write")->arguments;
  EXPECT_EQ(error_of(write, {{"path", "a"}}), "/arguments/content: missing (required)");
  EXPECT_EQ(error_of(write, {{"path", 3}, {"content", "x"}}), "/arguments/path: expected a string");
  EXPECT_EQ(error_of(write, {{"path", "a"}, {"content", "x"}, {"mode", 420}}),
            "/arguments: unknown argument 'mode' (allowed: content, path)");
  EXPECT_EQ(error_of(write, json::array()), "/arguments: expected an object");
  EXPECT_EQ(error_of(write, {{"path", std::string(4097, 'a')}, {"content", ""}}),
            "/arguments/path: longer than 4096 bytes");

  const json run = find_syscall("exec.run")->arguments;
  EXPECT_EQ(error_of(run, {{"argv", {"/bin/echo", 7}}}), "/arguments/argv/1: expected a string");
  EXPECT_EQ(error_of(run, {{"argv", json::array()}}), "/arguments/argv: expected at least 1 items");
  EXPECT_EQ(error_of(run, {{"argv", "/bin/ls"}}), "/arguments/argv: expected an array");
  EXPECT_EQ(error_of(run, {{"argv", {"/bin/ls"}}, {"timeout_ms", 1.5}}),
            "/arguments/timeout_ms: expected an integer");
  EXPECT_EQ(error_of(run, {{"argv", {"/bin/ls"}}, {"timeout_ms", 0}}),
            "/arguments/timeout_ms: must be at least 1");
  EXPECT_EQ(error_of(run, {{"argv", {"/bin/ls"}}, {"timeout_ms", 999999}}),
            "/arguments/timeout_ms: must be at most 20000");

  const json flags = {{"type", "object"},
                      {"properties", {{"on", {{"type", "boolean"}}}}},
                      {"additionalProperties", false}};
  EXPECT_EQ(error_of(flags, {{"on", "yes"}}), "/arguments/on: expected true or false");
  // A key with '/' or '~' cannot forge a path: it is escaped as RFC 6901 says.
  const json open = {{"type", "object"}, {"properties", {{"a/b", {{"type", "integer"}}}}}};
  EXPECT_EQ(error_of(open, {{"a/b", "x"}}), "/arguments/a~1b: expected an integer");
}

TEST(ArgSchema, RefusesSchemasOutsideItsSubset) {
  Status st = validate_arguments({{"type", "string"}, {"pattern", "^a"}}, "a");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Errc::internal);
  EXPECT_THAT(st.error().message(), HasSubstr("unsupported keyword 'pattern'"));
  EXPECT_FALSE(validate_arguments({{"type", "null"}}, nullptr).ok());
  // "number" is understood (external drivers' schemas use it); the table's own use integers.
  EXPECT_TRUE(validate_arguments({{"type", "number"}}, 1.5).ok());
  EXPECT_FALSE(
      validate_arguments({{"type", "object"}, {"additionalProperties", true}}, json::object())
          .ok());
}

TEST(ArgSchema, SignatureIsOneLine) {
  EXPECT_EQ(schema_signature(find_syscall("fs.write")->arguments),
            "{\"content\": string, \"path\": string}");
  EXPECT_EQ(schema_signature(find_syscall("fs.list")->arguments), "{\"path\"?: string}");
  EXPECT_EQ(schema_signature(find_syscall("exec.run")->arguments),
            "{\"argv\": [string], \"timeout_ms\"?: integer}");
  EXPECT_EQ(schema_signature(find_syscall("clock.now")->arguments), "{}");
}

TEST(SyscallTable, ReferenceInDocsIsCurrent) {
  std::ifstream in(std::string(ICAM_SOURCE_DIR) + "/docs/syscalls.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(doc.find(syscalls_markdown()), std::string::npos)
      << "docs/syscalls.md is out of date: paste the output of `icamd --syscalls-markdown`";
  for (const auto& s : syscall_table()) EXPECT_THAT(syscalls_markdown(), HasSubstr(s.name));
}

TEST(ArgSchema, AnExternalSchemaIsReducedToTheSubsetOrRefused) {
  auto s = supported_schema(json::parse(R"({"type": "object", "title": "t", "$schema": "x",
      "properties": {"a": {"type": "number", "minimum": 0.5, "default": 1}},
      "additionalProperties": true})"));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(*s, json::parse(R"({"type": "object",
                                "properties": {"a": {"type": "number", "minimum": 0.5}}})"));
  EXPECT_EQ(error_of(*s, {{"a", 0.25}}), "/arguments/a: must be at least 0.5");
  EXPECT_EQ(error_of(*s, {{"a", "x"}}), "/arguments/a: expected a number");
  EXPECT_EQ(error_of(*s, {{"a", 2}}), "ok");
  EXPECT_EQ(error_of(*s, {{"b", true}}), "ok");  // no additionalProperties: false
  EXPECT_EQ(schema_signature(*s), "{\"a\"?: number}");

  auto refused = [](const char* text) {
    auto r = supported_schema(json::parse(text));
    return r.ok() ? std::string("ok") : r.error().message();
  };
  EXPECT_EQ(refused(R"({"type": "object", "properties": {"m": {"type": "string", "enum": ["x"]}}})"),
            "/properties/m: keyword 'enum'");
  EXPECT_EQ(refused(R"({"type": ["string", "null"]})"),
            "/: type [\"string\",\"null\"] (supported: object, string, integer, number, "
            "boolean, array)");
  EXPECT_EQ(refused(R"({"type": "string", "maxLength": "long"})"),
            "/: maxLength is not a non-negative integer");
  EXPECT_EQ(refused(R"({"type": "integer", "minimum": 0.5})"),
            "/: minimum of an integer is not an integer");
  EXPECT_EQ(refused(R"({"type": "array", "items": 3})"), "/items: a schema that is not an object");
  EXPECT_EQ(refused(R"({"properties": {}})"), "/: no type");
  EXPECT_EQ(refused(R"({"type": "object", "required": [1]})"), "/: required holds a non-string");
}

}  // namespace
}  // namespace icam::syscalls
