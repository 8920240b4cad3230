// Runs the fuzz entry point over deterministic mutations of valid files, so every build (gcc
// too, and under AddressSanitizer in the sanitizer build) exercises the reader on hostile input
// without needing libFuzzer. Also replays the committed seed corpus.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "drivers/llm/gguf/gguf.h"
#include "tests/drivers/llm/gguf/gguf_fuzz.h"
#include "tests/drivers/llm/gguf/gguf_test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace icam::llm {
namespace {

// splitmix64: small, fast, and the same sequence on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

 private:
  uint64_t state_;
};

template <typename T>
void put_at(std::vector<uint8_t>& bytes, size_t at, T value) {
  for (size_t i = 0; i < sizeof(T) && at + i < bytes.size(); ++i) {
    bytes[at + i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
  }
}

// One mutation of `bytes`; `other` is another seed for splices.
void mutate(std::vector<uint8_t>& bytes, const std::vector<uint8_t>& other, Rng& rng) {
  static const uint8_t kBytes[] = {0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF};
  static const uint32_t kU32s[] = {0,  1,   2,          3,          4,          5,         8,  9,
                                   12, 13,  16,         30,         31,         32,        33, 64,
                                   99, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF};
  const uint64_t size = bytes.size();
  const uint64_t kU64s[] = {0,
                            1,
                            8,
                            32,
                            size,
                            size - 1,
                            size + 1,
                            uint64_t{1} << 32,
                            uint64_t{1} << 62,
                            uint64_t{1} << 63,
                            ~uint64_t{0},
                            ~uint64_t{0} - 31,
                            0x7FFFFFFFFFFFFFFFull};
  switch (rng.below(9)) {
    case 0:  // flip a few bits
      for (size_t n = 1 + rng.below(4); n > 0 && !bytes.empty(); --n) {
        bytes[rng.below(bytes.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
      }
      break;
    case 1:  // a byte set to a boundary value
      if (!bytes.empty()) bytes[rng.below(bytes.size())] = kBytes[rng.below(std::size(kBytes))];
      break;
    case 2:  // a 32-bit field (type id, rank, version, alignment) set to a boundary value
      if (!bytes.empty())
        put_at(bytes, rng.below(bytes.size()), kU32s[rng.below(std::size(kU32s))]);
      break;
    case 3:  // a 64-bit field (count, length, dimension, offset) set to a boundary value
      if (!bytes.empty())
        put_at(bytes, rng.below(bytes.size()), kU64s[rng.below(std::size(kU64s))]);
      break;
    case 4:  // truncation
      bytes.resize(rng.below(bytes.size() + 1));
      break;
    case 5: {  // splice: a prefix of this file, then the rest of another from some point
      const size_t cut = rng.below(bytes.size() + 1);
      const size_t from = rng.below(other.size() + 1);
      bytes.resize(cut);
      bytes.insert(bytes.end(), other.begin() + static_cast<ptrdiff_t>(from), other.end());
      break;
    }
    case 6: {  // an inserted huge length
      const size_t at = rng.below(bytes.size() + 1);
      std::vector<uint8_t> huge(8);
      put_at(huge, 0, kU64s[rng.below(std::size(kU64s))]);
      bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(at), huge.begin(), huge.end());
      break;
    }
    case 7: {  // a chunk removed
      const size_t at = rng.below(bytes.size() + 1);
      const size_t n = std::min(bytes.size() - at, 1 + rng.below(16));
      bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(at),
                  bytes.begin() + static_cast<ptrdiff_t>(at + n));
      break;
    }
    default: {  // a chunk duplicated in place
      const size_t at = rng.below(bytes.size() + 1);
      const size_t n = std::min(bytes.size() - at, 1 + rng.below(16));
      const std::vector<uint8_t> chunk(bytes.begin() + static_cast<ptrdiff_t>(at),
                                       bytes.begin() + static_cast<ptrdiff_t>(at + n));
      bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(at), chunk.begin(), chunk.end());
      break;
    }
  }
}

std::vector<std::vector<uint8_t>> seeds() {
  return {testing::tiny_gemma3_model(), testing::every_type_model(), testing::aligned64_model(),
          testing::minimal_model()};
}

TEST(GgufFuzzReplay, SeedsAreValid) {
  for (const auto& seed : seeds()) {
    auto file = GgufFile::from_bytes(seed, "seed.gguf");
    ASSERT_TRUE(file.ok()) << file.error().message();
    EXPECT_EQ(LLVMFuzzerTestOneInput(seed.data(), seed.size()), 0);
  }
}

TEST(GgufFuzzReplay, DeterministicMutations) {
  constexpr int kIterations = 20000;
  const std::vector<std::vector<uint8_t>> corpus = seeds();
  Rng rng(0x1CA3'6606'F00Dull);
  int accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    const size_t pick = rng.below(corpus.size());
    std::vector<uint8_t> input = corpus[pick];
    for (size_t n = 1 + rng.below(3); n > 0; --n) {
      mutate(input, corpus[rng.below(corpus.size())], rng);
    }
    // Count inputs that still parse: the mutations should not all be rejected at the magic.
    if (testing::fuzz_gguf(input)) ++accepted;
  }
  EXPECT_GT(accepted, kIterations / 50);
  EXPECT_LT(accepted, kIterations / 2);
}

TEST(GgufFuzzReplay, CommittedCorpus) {
  const std::filesystem::path dir =
      std::filesystem::path(ICAM_SOURCE_DIR) / "tests/drivers/llm/gguf/corpus";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
    ++files;
  }
  EXPECT_GT(files, 0);
}

}  // namespace
}  // namespace icam::llm
