#include "syscalls/syscall_table.h"

#include "syscalls/arg_schema.h"

namespace icam::syscalls {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Bounds on what a model may send: a path as long as PATH_MAX, file contents well under the
// driver's 1 MiB line.
constexpr int kMaxPathBytes = 4096;
constexpr int kMaxContentBytes = 512 * 1024;
// A message between processes; how long a process may wait for one (or for a child).
constexpr int kMaxMessageBytes = 16 * 1024;
constexpr int kMaxWaitMs = 600 * 1000;

json object_schema(json properties, json required) {
  return json{{"type", "object"},
              {"properties", std::move(properties)},
              {"required", std::move(required)},
              {"additionalProperties", false}};
}

json string_schema(int max_length, std::string description) {
  return json{
      {"type", "string"}, {"maxLength", max_length}, {"description", std::move(description)}};
}

json path_schema() {
  return string_schema(kMaxPathBytes, "path relative to the workspace");
}

json pid_schema(std::string description) {
  return json{{"type", "integer"}, {"minimum", 1}, {"description", std::move(description)}};
}

json wait_schema(std::string description) {
  return json{{"type", "integer"},
              {"minimum", 0},
              {"maximum", kMaxWaitMs},
              {"description", std::move(description)}};
}

std::vector<SyscallSpec> build_table() {
  std::vector<SyscallSpec> t;
  t.push_back({.name = "fs.read",
               .summary = "Read a text file in the workspace.",
               .arguments = object_schema({{"path", path_schema()}}, {"path"}),
               .result = "the file's content as text (at most 512 KiB)",
               .capability = CapKind::fs_read,
               .target = TargetRule::workspace_path,
               .target_argument = "/path",
               .side_effect = SideEffectClass::read,
               .idempotent = true,
               .timeout = milliseconds(5000),
               .server = Server::fs_driver,
               .driver_tool = "read_file"});
  t.push_back(
      {.name = "fs.write",
       .summary = "Create or replace a file in the workspace (parent directories are created).",
       .arguments =
           object_schema({{"path", path_schema()},
                          {"content", string_schema(kMaxContentBytes, "the whole new content")}},
                         {"path", "content"}),
       .result = "{\"path\", \"bytes\"}: the path written and how many bytes",
       .capability = CapKind::fs_write,
       .target = TargetRule::workspace_path,
       .target_argument = "/path",
       .side_effect = SideEffectClass::write,
       .idempotent = true,
       .timeout = milliseconds(5000),
       .server = Server::fs_driver,
       .driver_tool = "write_file"});
  t.push_back({.name = "fs.list",
               .summary = "List a directory in the workspace (the workspace itself by default).",
               .arguments = object_schema({{"path", path_schema()}}, json::array()),
               .result = "{\"path\", \"entries\": [{\"name\", \"type\"}]}: at most 1000 entries; "
                         "type is file, dir or symlink",
               .capability = CapKind::fs_read,
               .target = TargetRule::workspace_path,
               .target_argument = "/path",
               .target_default = ".",
               .side_effect = SideEffectClass::read,
               .idempotent = true,
               .timeout = milliseconds(5000),
               .server = Server::fs_driver,
               .driver_tool = "list_dir"});
  t.push_back({.name = "fs.stat",
               .summary = "Type, size, mode and modification time of a path in the workspace.",
               .arguments = object_schema({{"path", path_schema()}}, {"path"}),
               .result = "{\"path\", \"type\", \"size\", \"mode\", \"mtime\"}",
               .capability = CapKind::fs_read,
               .target = TargetRule::workspace_path,
               .target_argument = "/path",
               .side_effect = SideEffectClass::read,
               .idempotent = true,
               .timeout = milliseconds(5000),
               .server = Server::fs_driver,
               .driver_tool = "stat"});
  t.push_back({.name = "fs.remove",
               .summary = "Remove a file or a whole directory tree in the workspace.",
               .arguments = object_schema({{"path", path_schema()}}, {"path"}),
               .result = "{\"path\", \"removed\"}: how many files and directories were removed",
               .capability = CapKind::fs_write,
               .target = TargetRule::workspace_path,
               .target_argument = "/path",
               .side_effect = SideEffectClass::irreversible,
               .idempotent = true,
               .timeout = milliseconds(10000),
               .server = Server::fs_driver,
               .driver_tool = "remove"});
  t.push_back({.name = "exec.run",
               .summary = "Run a program (argv[0] an absolute path, no shell) in the workspace.",
               .arguments = object_schema(
                   {{"argv",
                     {{"type", "array"},
                      {"items", string_schema(kMaxPathBytes, "one argument")},
                      {"minItems", 1},
                      {"maxItems", 256},
                      {"description", "the program's absolute path, then its arguments"}}},
                    {"timeout_ms",
                     {{"type", "integer"},
                      {"minimum", 1},
                      {"maximum", 20000},
                      {"description", "default 10000"}}}},
                   {"argv"}),
               .result = "{\"exit_code\" or \"signal\", \"stdout\", \"stderr\", \"timed_out\", "
                         "\"truncated\"}; a non-zero exit is an error holding the same object",
               .capability = CapKind::exec,
               .target = TargetRule::program_path,
               .target_argument = "/argv/0",
               .side_effect = SideEffectClass::irreversible,
               .idempotent = false,
               // The program's own limit (timeout_ms, at most 20 s) plus time to start and answer.
               .timeout = milliseconds(25000),
               .server = Server::exec_driver,
               .driver_tool = "run"});
  t.push_back({.name = "kv.get",
               .summary = "Read the value stored under a key in a key-value namespace.",
               .arguments = object_schema({{"namespace", string_schema(128, "the namespace")},
                                           {"key", string_schema(256, "the key")}},
                                          {"namespace", "key"}),
               .result = "{\"namespace\", \"key\", \"value\"}; an unknown key is an error",
               .capability = CapKind::kv,
               .target = TargetRule::name,
               .target_argument = "/namespace",
               .side_effect = SideEffectClass::read,
               .idempotent = true,
               .timeout = milliseconds(5000),
               .server = Server::kv_driver,
               .driver_tool = "get"});
  t.push_back({.name = "kv.put",
               .summary = "Store a string value under a key in a key-value namespace.",
               .arguments = object_schema({{"namespace", string_schema(128, "the namespace")},
                                           {"key", string_schema(256, "the key")},
                                           {"value", string_schema(64 * 1024, "the value")}},
                                          {"namespace", "key", "value"}),
               .result = "{\"namespace\", \"key\", \"stored\": true}",
               .capability = CapKind::kv,
               .target = TargetRule::name,
               .target_argument = "/namespace",
               .side_effect = SideEffectClass::write,
               .idempotent = true,
               .timeout = milliseconds(5000),
               .server = Server::kv_driver,
               .driver_tool = "set"});
  // Processes talking to each other and to people. Served in the kernel; each blocks its caller
  // (the engine steps the other processes meanwhile) until its event happens.
  t.push_back({.name = "msg.send",
               .summary = "Send a message to another process's mailbox (its pid).",
               .arguments = object_schema(
                   {{"to", pid_schema("the receiving process")},
                    {"body", string_schema(kMaxMessageBytes, "the message")}},
                   {"to", "body"}),
               .result = "{\"to\", \"queued\"}: the receiver and how many messages wait in its "
                         "mailbox; a full mailbox (32 messages or 64 KiB) is an error",
               .capability = CapKind::msg,
               .target = TargetRule::recipient,
               .target_argument = "/to",
               .side_effect = SideEffectClass::irreversible,
               .idempotent = false,
               .timeout = milliseconds(1000),
               .server = Server::kernel});
  t.push_back({.name = "msg.recv",
               .summary = "Take the oldest message from your mailbox, waiting for one if need be.",
               .arguments = object_schema({{"timeout_ms", wait_schema("default 600000")}},
                                          json::array()),
               .result = "{\"from\", \"body\", \"id\"}: the sender's pid, the text and the "
                         "message's number; no message within the timeout is an error",
               .capability = std::nullopt,
               .target = TargetRule::none,
               .side_effect = SideEffectClass::write,
               .idempotent = false,
               .again_after_restart = true,
               .timeout = milliseconds(kMaxWaitMs),
               .server = Server::kernel});
  t.push_back({.name = "human.ask",
               .summary = "Ask the person who owns this process a question and wait for the answer.",
               .arguments =
                   object_schema({{"question", string_schema(2000, "what to ask")}}, {"question"}),
               .result = "{\"answer\", \"approved\"}: the person's answer (or reason, when "
                         "denied) and whether they approved",
               .capability = CapKind::tool,
               .target = TargetRule::constant,
               .target_default = "human.ask",
               .side_effect = SideEffectClass::read,
               .idempotent = false,
               .again_after_restart = true,
               .timeout = milliseconds(3600 * 1000),
               .server = Server::kernel});
  t.push_back({.name = "proc.spawn",
               .summary = "Start a child agent process with at most your own tools and "
                          "capabilities.",
               .arguments = object_schema(
                   {{"name", string_schema(128, "a label for the child")},
                    {"task", string_schema(64 * 1024, "the child's task (its user message)")},
                    {"system", string_schema(64 * 1024, "the child's system message")},
                    {"tools",
                     {{"type", "array"},
                      {"items", string_schema(64, "a tool you have")},
                      {"maxItems", 64},
                      {"description", "default none (proc.exit only)"}}},
                    {"capabilities",
                     {{"type", "array"},
                      {"items", string_schema(1024, "a capability within yours")},
                      {"maxItems", 64},
                      {"description", "default none"}}}},
                   {"name", "task"}),
               .result = "{\"pid\"}: the child's process id",
               .capability = CapKind::spawn,
               .target = TargetRule::children,
               .side_effect = SideEffectClass::irreversible,
               .idempotent = false,
               .timeout = milliseconds(1000),
               .server = Server::kernel});
  t.push_back({.name = "proc.wait",
               .summary = "Wait until a child process exits and get its answer.",
               .arguments = object_schema({{"pid", pid_schema("the child")},
                                           {"timeout_ms", wait_schema("default 600000")}},
                                          {"pid"}),
               .result = "{\"pid\", \"reason\", \"answer\", \"error\"?}: how the child ended "
                         "(reason as in `icamctl ps`); not exited within the timeout is an error",
               .capability = std::nullopt,
               .target = TargetRule::none,
               .side_effect = SideEffectClass::read,
               .idempotent = false,
               .again_after_restart = true,
               .timeout = milliseconds(kMaxWaitMs),
               .server = Server::kernel});
  t.push_back({.name = "proc.kill",
               .summary = "Stop one of your descendant processes (its own children stop with it).",
               .arguments = object_schema({{"pid", pid_schema("the descendant")}}, {"pid"}),
               .result = "{\"pid\", \"killed\": true}",
               .capability = std::nullopt,
               .target = TargetRule::none,
               .side_effect = SideEffectClass::irreversible,
               .idempotent = true,
               .timeout = milliseconds(1000),
               .server = Server::kernel});
  t.push_back({.name = "clock.now",
               .summary = "The current time.",
               .arguments = object_schema(json::object(), json::array()),
               .result = "{\"unix_ms\", \"utc\"}: milliseconds since 1970 and an ISO-8601 UTC "
                         "time",
               .capability = std::nullopt,
               .target = TargetRule::none,
               .side_effect = SideEffectClass::pure,
               .idempotent = false,
               .timeout = milliseconds(100),
               .server = Server::kernel});
  t.push_back({.name = std::string(kSyscallProcExit),
               .summary = "Finish the task and give the final answer; always allowed.",
               .arguments = object_schema({{"answer", string_schema(1 << 20, "the final answer")}},
                                          json::array()),
               .result = "nothing: the process exits with the answer",
               .capability = std::nullopt,
               .target = TargetRule::none,
               .side_effect = SideEffectClass::pure,
               .idempotent = true,
               .timeout = milliseconds(100),
               .server = Server::kernel});
  // External drivers (MCP servers the job declares in "drivers", kernel/job.h): one syscall for
  // all of them, since their tools are known only once each driver lists them. The tool's own
  // arguments are checked against its inputSchema when the dispatcher serves the call. Nothing is
  // known about what a foreign tool does, so it is irreversible and not idempotent.
  t.push_back({.name = "tool.call",
               .summary = "Call a tool of an external driver (the drivers and their tools are "
                          "listed below).",
               .arguments = object_schema(
                   {{"driver", string_schema(64, "the driver's name")},
                    {"tool", string_schema(128, "the tool's name")},
                    {"arguments",
                     {{"type", "object"},
                      {"description", "the tool's arguments, as its own schema says; default {}"}}}},
                   {"driver", "tool"}),
               .result = "the text parts of the tool's content joined by newlines (its structured "
                         "content when it has no text), at most 256 KiB; a tool that reports "
                         "isError is an error holding its text",
               .capability = CapKind::tool,
               .target = TargetRule::driver_tool,
               .target_argument = "/driver",
               .side_effect = SideEffectClass::irreversible,
               .idempotent = false,
               .timeout = milliseconds(30000),
               .server = Server::external});
  // Archival memory (memory/archive_store.h): the process's own namespace, "<owner uid>/<job
  // name>", so nothing in the arguments names it and the capability is the tool itself. The
  // bounds are the archive's (ArchiveLimits).
  t.push_back({.name = "mem.store",
               .summary = "Keep a note in your long-term memory, to find again with mem.recall.",
               .arguments = object_schema(
                   {{"text", string_schema(8 * 1024, "what to remember")},
                    {"tags",
                     {{"type", "array"},
                      {"items", string_schema(64, "one word to find it by (no spaces)")},
                      {"maxItems", 16},
                      {"description", "default none"}}}},
                   {"text"}),
               .result = "{\"id\"}: the note's id",
               .capability = CapKind::tool,
               .target = TargetRule::constant,
               .target_default = "mem.store",
               .side_effect = SideEffectClass::write,
               .idempotent = false,
               .timeout = milliseconds(2000),
               .server = Server::kernel});
  t.push_back({.name = "mem.recall",
               .summary = "Search your long-term memory for notes holding any of the query's "
                          "words, best first.",
               .arguments = object_schema(
                   {{"query", string_schema(1024, "words to look for")},
                    {"limit",
                     {{"type", "integer"},
                      {"minimum", 1},
                      {"maximum", 20},
                      {"description", "default 5"}}}},
                   {"query"}),
               .result = "{\"hits\": [{\"id\", \"text\", \"score\", \"tags\"?}]}: best first "
                         "(score: higher is better); none found is an empty list",
               .capability = CapKind::tool,
               .target = TargetRule::constant,
               .target_default = "mem.recall",
               .side_effect = SideEffectClass::read,
               .idempotent = true,
               .timeout = milliseconds(2000),
               .server = Server::kernel});
  return t;
}

std::string_view capability_cell(const SyscallSpec& s) {
  return s.capability ? cap_kind_name(*s.capability) : std::string_view("-");
}

std::string target_cell(const SyscallSpec& s) {
  switch (s.target) {
    case TargetRule::none:
      return "-";
    case TargetRule::workspace_path:
      return str_cat(
          "`", s.target_argument, "` in the workspace, canonical",
          s.target_default.empty() ? "" : str_cat(" (default `", s.target_default, "`)"));
    case TargetRule::program_path:
      return str_cat("`", s.target_argument, "`, canonical");
    case TargetRule::name:
      return str_cat("`", s.target_argument, "`");
    case TargetRule::constant:
      return str_cat("`", s.target_default, "`");
    case TargetRule::children:
      return "live children after the call";
    case TargetRule::recipient:
      return str_cat("`", s.target_argument, "` as `parent`, `children` or `pid/N`");
    case TargetRule::driver_tool:
      return "`/driver` `/` `/tool` (`DRIVER/TOOL`)";
  }
  return "-";
}

}  // namespace

std::string_view side_effect_class_name(SideEffectClass effect) {
  switch (effect) {
    case SideEffectClass::pure:
      return "pure";
    case SideEffectClass::read:
      return "read";
    case SideEffectClass::write:
      return "write";
    case SideEffectClass::irreversible:
      return "irreversible";
  }
  return "?";
}

std::string_view server_name(Server server) {
  switch (server) {
    case Server::kernel:
      return "kernel";
    case Server::fs_driver:
      return "icam-driver-fs";
    case Server::exec_driver:
      return "icam-driver-exec";
    case Server::kv_driver:
      return "icam-driver-kv";
    case Server::external:
      return "external driver";
  }
  return "?";
}

const std::vector<SyscallSpec>& syscall_table() {
  static const std::vector<SyscallSpec> table = build_table();
  return table;
}

const SyscallSpec* find_syscall(std::string_view name) {
  for (const auto& s : syscall_table())
    if (s.name == name) return &s;
  return nullptr;
}

std::string syscall_names() {
  std::string out;
  for (const auto& s : syscall_table()) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

Status validate_syscall_arguments(const SyscallSpec& spec, const json& arguments) {
  return validate_arguments(spec.arguments, arguments, "/arguments");
}

Result<std::string> raw_capability_target(const SyscallSpec& spec, const json& arguments) {
  if (spec.target == TargetRule::none)
    return make_error(Errc::invalid_argument, spec.name, ": needs no capability");
  if (spec.target == TargetRule::constant) return spec.target_default;
  if (spec.target == TargetRule::driver_tool) {
    const auto driver = arguments.find("driver");
    const auto tool = arguments.find("tool");
    if (driver == arguments.end() || !driver->is_string() || tool == arguments.end() ||
        !tool->is_string())
      return make_error(Errc::invalid_argument, spec.name,
                        ": /arguments/driver and /arguments/tool must be strings");
    return str_cat(driver->get<std::string>(), "/", tool->get<std::string>());
  }
  if (spec.target == TargetRule::children || spec.target == TargetRule::recipient)
    return make_error(Errc::invalid_argument, spec.name,
                      ": the kernel derives this target from the caller");
  const json::json_pointer pointer(spec.target_argument);
  if (!arguments.contains(pointer)) {
    if (!spec.target_default.empty()) return spec.target_default;
    return make_error(Errc::invalid_argument, spec.name, ": /arguments", spec.target_argument,
                      ": missing");
  }
  const json& v = arguments.at(pointer);
  if (!v.is_string())
    return make_error(Errc::invalid_argument, spec.name, ": /arguments", spec.target_argument,
                      ": expected a string");
  return v.get<std::string>();
}

std::string syscalls_markdown() {
  std::string md;
  md += "| syscall | capability | target | side effect | idempotent | timeout | served by |\n";
  md += "| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& s : syscall_table())
    md += str_cat(
        "| `", s.name, "` | ", s.capability ? "`" : "", capability_cell(s), s.capability ? "`" : "",
        " | ", target_cell(s), " | ", side_effect_class_name(s.side_effect), " | ",
        s.idempotent ? "yes" : s.again_after_restart ? "no (again after a restart)" : "no", " | ", s.timeout.count(), " ms | ",
        s.server == Server::kernel     ? std::string("kernel")
        : s.server == Server::external ? std::string("the job's driver `/driver`")
                                       : str_cat("`", server_name(s.server), "` `", s.driver_tool, "`"),
        " |\n");
  for (const auto& s : syscall_table()) {
    md += str_cat("\n### `", s.name, "`\n\n", s.summary, "\n\n");
    md += str_cat("Arguments: `", schema_signature(s.arguments), "`\n\n");
    md += str_cat("Returns: ", s.result, "\n\n");
    md += "```json\n" + s.arguments.dump(2) + "\n```\n";
  }
  return md;
}

}  // namespace icam::syscalls
