// The body of the tool-call fuzz target, shared by the libFuzzer entry point (tool_call_fuzz) and
// the replay test that runs in every build.
#pragma once

#include <cstdint>
#include <span>

namespace icam::kernel::testing {

// Treats `bytes` as the text of a model's turn that stopped at "</tool_call>": extracts and
// parses the call, checks a parsed call's arguments against its syscall's schema, and serves it
// through execute_tool_call with a handler that answers every syscall. Aborts when an invariant
// breaks: a parsed call without a name or with non-object arguments, an exit outcome for anything
// but a valid proc.exit, an error answer that is not a JSON object with an "error" string, a
// syscall reaching the handler although its arguments fail the schema or the job does not list
// it, or a syscall count that does not grow by one.
void fuzz_tool_call(std::span<const uint8_t> bytes);

}  // namespace icam::kernel::testing
