// Fuzz entry point for the tool-call parser: see tool_call_fuzz.h.
#include "tests/kernel/tool_call_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "kernel/tool_call.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel::testing {
namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "tool call fuzz: broken invariant: %s\n", what);
    std::abort();
  }
}

// Answers every call it gets, after checking that the call should have reached it.
class CheckingHandler : public SyscallHandler {
 public:
  Result<std::string> call(Process& process, const std::string& name,
                           const nlohmann::json& arguments) override {
    require(!name.empty(), "a served call has a name");
    require(arguments.is_object(), "a served call's arguments are an object");
    bool listed = false;
    for (const auto& t : process.tools) listed = listed || t == name;
    require(listed, "only tools the job lists reach the handler");
    ++calls;
    // The dispatcher checks arguments first; the checker must take any object without crashing.
    if (const auto* spec = syscalls::find_syscall(name))
      (void)syscalls::validate_syscall_arguments(*spec, arguments);
    return std::string("{\"ok\": true}");
  }
  int calls = 0;
};

}  // namespace

void fuzz_tool_call(std::span<const uint8_t> bytes) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());

  auto call = extract_tool_call(text);
  if (call.ok()) {
    require(!call->name.empty(), "a parsed call has a name");
    require(call->arguments.is_object(), "a parsed call's arguments are an object");
    if (const auto* spec = syscalls::find_syscall(call->name))
      (void)syscalls::validate_syscall_arguments(*spec, call->arguments);
  }

  Process process;
  process.tools = {"fs.read", "fs.write", "kv.get", "clock.now", "proc.exit"};
  process.budgets.syscalls = 1 << 20;
  CheckingHandler handler;
  const auto before = process.accounting.syscalls;
  const ToolOutcome outcome = execute_tool_call(process, text, handler);
  require(process.accounting.syscalls == before + 1, "each call counts once");
  switch (outcome.kind) {
    case ToolOutcome::Kind::exit:
      require(call.ok() && call->name == "proc.exit", "only proc.exit exits");
      break;
    case ToolOutcome::Kind::resume:
      if (handler.calls == 0) {
        // Not served: the answer is a structured error.
        const auto answer = nlohmann::json::parse(outcome.text, nullptr, false);
        require(answer.is_object() && answer.contains("error") && answer["error"].is_string(),
                "an unserved call is answered with {\"error\": \"...\"}");
      }
      break;
    case ToolOutcome::Kind::budget:
      require(false, "the budget is not exhausted");
      break;
    case ToolOutcome::Kind::blocked:
      require(false, "the checking handler answers every call at once");
      break;
  }
}

}  // namespace icam::kernel::testing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  icam::kernel::testing::fuzz_tool_call(std::span<const uint8_t>(data, size));
  return 0;
}
