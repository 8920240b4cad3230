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
        s.idempotent ? "yes" : "no", " | ", s.timeout.count(), " ms | ",
        s.server == Server::kernel ? std::string("kernel")
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
