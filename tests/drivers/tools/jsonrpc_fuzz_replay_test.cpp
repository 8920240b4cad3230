// Runs the JSON-RPC fuzz entry point over deterministic mutations of the seed corpus, so every
// build (gcc too, and under the sanitizers) exercises framing and parsing on hostile input
// without libFuzzer. Also replays the committed seeds.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "tests/drivers/tools/jsonrpc_fuzz.h"
#include "tests/fuzz_replay.h"

namespace icam::driver {
namespace {

std::vector<std::vector<uint8_t>> seeds() {
  return icam::testing::read_corpus(std::filesystem::path(ICAM_SOURCE_DIR) /
                                    "tests/drivers/tools/corpus");
}

uint64_t next(uint64_t& state) {
  return icam::testing::splitmix64(state);
}

TEST(JsonRpcFuzzReplay, SeedsPass) {
  auto corpus = seeds();
  ASSERT_GE(corpus.size(), 3u);
  for (const auto& seed : corpus) testing::fuzz_jsonrpc(seed);
}

TEST(JsonRpcFuzzReplay, MutationsPass) {
  static const char* const kTokens[] = {"\n", "\r\n", "{", "}", "[", "]", "\"", "\\", ":", ",", "null",
                                        "\"id\":", "\"method\":", "\"tools/call\"", "\"jsonrpc\":\"2.0\"",
                                        "\xff", "\xc3", "1e999", "-0", "\"\\ud800\""};
  auto corpus = seeds();
  uint64_t state = 12345;
  for (int round = 0; round < 4000; ++round) {
    std::vector<uint8_t> bytes = corpus[next(state) % corpus.size()];
    const int edits = 1 + static_cast<int>(next(state) % 8);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      const size_t at = next(state) % bytes.size();
      switch (next(state) % 5) {
        case 0: bytes[at] = static_cast<uint8_t>(next(state)); break;
        case 1: bytes.erase(bytes.begin() + static_cast<long>(at)); break;
        case 2: {
          const char* token = kTokens[next(state) % std::size(kTokens)];
          bytes.insert(bytes.begin() + static_cast<long>(at), token, token + std::strlen(token));
          break;
        }
        case 3: bytes.insert(bytes.begin() + static_cast<long>(at), 1 + next(state) % 64, '[');
          break;
        default: {  // duplicate a slice: long lines and repeated messages
          const size_t length = std::min<size_t>(bytes.size() - at, next(state) % 512);
          std::vector<uint8_t> slice(bytes.begin() + static_cast<long>(at), bytes.begin() + static_cast<long>(at + length));
          for (int copy = 0; copy < 4; ++copy) bytes.insert(bytes.end(), slice.begin(), slice.end());
        }
      }
    }
    testing::fuzz_jsonrpc(bytes);
  }
}

}  // namespace
}  // namespace icam::driver
