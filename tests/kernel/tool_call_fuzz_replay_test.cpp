// Runs the tool-call fuzz entry point over the seed corpus and deterministic mutations of it, so
// every build (gcc too, and under the sanitizers) exercises the parser and the hand-off on hostile
// turn text without libFuzzer.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "tests/fuzz_replay.h"
#include "tests/kernel/tool_call_fuzz.h"

namespace icam::kernel {
namespace {

std::vector<std::vector<uint8_t>> seeds() {
  return icam::testing::read_corpus(std::filesystem::path(ICAM_SOURCE_DIR) /
                                    "tests/kernel/tool_call_corpus");
}

uint64_t next(uint64_t& state) {
  return icam::testing::splitmix64(state);
}

TEST(ToolCallFuzzReplay, SeedsPass) {
  const auto corpus = seeds();
  ASSERT_GE(corpus.size(), 5u);
  for (const auto& seed : corpus) testing::fuzz_tool_call(seed);
}

TEST(ToolCallFuzzReplay, MutationsPass) {
  static const char* const kTokens[] = {"<tool_call>", "</tool_call>", "{", "}", "[", "]", "\"",
                                        "\\", ":", ",", "null", "\"name\":", "\"arguments\":",
                                        "\"proc.exit\"", "\"fs.read\"", "\xff", "\xc3", "1e999",
                                        "\"\\ud800\"", "-0"};
  const auto corpus = seeds();
  uint64_t state = 2026;
  for (int round = 0; round < 4000; ++round) {
    std::vector<uint8_t> bytes = corpus[next(state) % corpus.size()];
    const int edits = 1 + static_cast<int>(next(state) % 6);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      const size_t at = next(state) % bytes.size();
      switch (next(state) % 4) {
        case 0:
          bytes[at] = static_cast<uint8_t>(next(state));
          break;
        case 1:
          bytes.erase(bytes.begin() + static_cast<long>(at));
          break;
        case 2: {
          const char* token = kTokens[next(state) % std::size(kTokens)];
          bytes.insert(bytes.begin() + static_cast<long>(at), token, token + std::strlen(token));
          break;
        }
        default:  // deep nesting
          bytes.insert(bytes.begin() + static_cast<long>(at), 1 + next(state) % 200, '[');
      }
    }
    testing::fuzz_tool_call(bytes);
  }
}

}  // namespace
}  // namespace icam::kernel
