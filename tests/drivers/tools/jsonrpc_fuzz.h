// The body of the JSON-RPC framing fuzz target, shared by the libFuzzer entry point and the
// replay test.
#pragma once

#include <cstdint>
#include <span>

namespace icam::driver::testing {

// Splits `bytes` into chunks (sizes taken from the input itself), feeds them to a LineBuffer with
// a small line bound, parses every line as a message and hands requests to a Driver with one
// tool. Aborts when an invariant breaks: a line longer than the bound, a parsed message that
// does not re-encode to something that parses the same, an answer that is not one valid line.
void fuzz_jsonrpc(std::span<const uint8_t> bytes);

}  // namespace icam::driver::testing
