// The body of the GGUF fuzz target, shared by the libFuzzer entry point and the replay test.
#pragma once

#include <cstdint>
#include <span>

namespace icam::llm::testing {

// Feeds `bytes` to GgufFile::from_bytes and, when it is accepted, checks the file's invariants
// (aborting on a violation), reads every tensor's first and last byte, calls every typed getter
// on every key and builds the model report. Returns whether the file was accepted.
bool fuzz_gguf(std::span<const uint8_t> bytes);

}  // namespace icam::llm::testing
