#include "kernel/tool_call.h"

#include <algorithm>

#include "syscalls/arg_schema.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

using nlohmann::json;

std::string error_text(std::string_view message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Result<ToolCall> parse_tool_call(std::string_view body) {
  // The parser's exception carries the error's position; it is caught here and made a value.
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    return make_error(Errc::invalid_argument, "tool call: malformed JSON: ", e.what());
  }
  if (!j.is_object())
    return make_error(Errc::invalid_argument, "tool call: expected a JSON object");
  ToolCall call;
  for (const auto& [key, v] : j.items()) {
    if (key == "name") {
      if (!v.is_string() || v.get<std::string>().empty())
        return make_error(Errc::invalid_argument, "tool call: /name: expected a non-empty string");
      call.name = v.get<std::string>();
    } else if (key == "arguments") {
      if (!v.is_object())
        return make_error(Errc::invalid_argument, "tool call: /arguments: expected an object");
      call.arguments = v;
    } else {
      return make_error(Errc::invalid_argument, "tool call: /", key, ": unknown key");
    }
  }
  if (call.name.empty()) return make_error(Errc::invalid_argument, "tool call: /name: missing");
  if (call.arguments.is_null())
    return make_error(Errc::invalid_argument, "tool call: /arguments: missing");
  return call;
}

Result<ToolCall> extract_tool_call(std::string_view turn_text) {
  const size_t open = turn_text.rfind(kToolCallOpen);
  if (open == std::string_view::npos)
    return make_error(Errc::invalid_argument, "tool call: '", kToolCallClose, "' without '",
                      kToolCallOpen, "'");
  return parse_tool_call(turn_text.substr(open + kToolCallOpen.size()));
}

Result<std::string> NoSyscalls::call(Process&, const std::string& name, const json&) {
  return make_error(Errc::not_found, "unknown tool '", name, "'");
}

ToolOutcome execute_tool_call(Process& process, std::string_view turn_text,
                              SyscallHandler& handler) {
  ++process.accounting.syscalls;
  auto call = extract_tool_call(turn_text);
  const bool is_exit = call.ok() && call->name == kToolProcExit;
  if (!is_exit && process.accounting.syscalls > process.budgets.syscalls)
    return {ToolOutcome::Kind::budget, ""};
  if (!call.ok()) return {ToolOutcome::Kind::resume, error_text(call.error().message())};
  if (is_exit) {
    // proc.exit's only argument is the answer; a missing answer is an empty one.
    const auto& args = call->arguments;
    for (const auto& [key, v] : args.items())
      if (key != "answer")
        return {ToolOutcome::Kind::resume,
                error_text("proc.exit: /arguments/" + key + ": unknown key")};
    if (args.contains("answer") && !args["answer"].is_string())
      return {ToolOutcome::Kind::resume,
              error_text("proc.exit: /arguments/answer: expected a string")};
    return {ToolOutcome::Kind::exit, args.value("answer", std::string())};
  }
  const bool listed =
      std::find(process.tools.begin(), process.tools.end(), call->name) != process.tools.end();
  if (!listed)
    return {ToolOutcome::Kind::resume, error_text(str_cat("unknown tool '", call->name, "'"))};
  CallStart started = handler.start(process, call->name, call->arguments);
  if (auto* pending = std::get_if<PendingCall>(&started))
    return {ToolOutcome::Kind::blocked, "", std::move(*pending)};
  return {ToolOutcome::Kind::resume, tool_result_text(std::get<Result<std::string>>(started))};
}

std::string tool_result_text(const Result<std::string>& result) {
  return result.ok() ? *result : error_text(result.error().message());
}

namespace {

// Driver-given text on one line of the instructions: control characters (newlines included)
// become spaces, and it is cut at `max` bytes on a UTF-8 boundary.
std::string one_line(std::string_view text, size_t max) {
  std::string out;
  for (char c : text) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  if (out.size() > max) {
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

}  // namespace

std::string tool_instructions(const std::vector<std::string>& tools,
                              const std::vector<ExternalTool>& external) {
  // proc.exit is always available: a process may always end itself. Each tool is shown as its
  // argument signature ("?" = optional) rather than the full JSON Schema: small models follow a
  // one-line shape better than a nested document.
  std::string text =
      "You can call tools. To call one, write a single line of the form\n"
      "<tool_call>{\"name\": \"TOOL\", \"arguments\": {...}}</tool_call>\n"
      "and stop; the result comes back in a tool message. Tools:\n"
      "- proc.exit {\"answer\": string}: finish the task and give your final answer.\n";
  for (const auto& t : tools) {
    if (t == kToolProcExit) continue;
    const syscalls::SyscallSpec* spec = syscalls::find_syscall(t);
    if (!spec) continue;  // jobs are validated against the table; nothing else can be called
    text +=
        "- " + t + " " + syscalls::schema_signature(spec->arguments) + ": " + spec->summary + "\n";
    if (t != kToolCall) continue;
    // The external tools, as "driver" and "tool" name them in a tool.call.
    if (external.empty()) text += "  (no external tools are available)\n";
    for (const auto& e : external) {
      const std::string signature = e.checked_schema.is_object()
                                        ? syscalls::schema_signature(e.checked_schema)
                                        : std::string("object");
      const json driver = one_line(e.driver, 64), name = one_line(e.name, 128);
      text += "  - driver " + driver.dump(-1, ' ', false, json::error_handler_t::replace) +
              ", tool " + name.dump(-1, ' ', false, json::error_handler_t::replace) +
              ", arguments " + signature;
      if (!e.description.empty())
        text += ": " + one_line(e.description, kMaxToolDescriptionBytes);
      text += "\n";
    }
  }
  text += "If you need no tool, just answer.";
  return text;
}

}  // namespace icam::kernel
