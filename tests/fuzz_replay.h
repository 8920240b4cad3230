// Shared by the fuzz targets' replay tests, which run every fuzz entry point over its committed
// seeds and deterministic mutations of them in every build (gcc too, and under the sanitizers),
// without libFuzzer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace icam::testing {

// The files of a seed corpus directory, each as bytes.
inline std::vector<std::vector<uint8_t>> read_corpus(const std::filesystem::path& dir) {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// splitmix64: the same mutations on every platform and standard library.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace icam::testing
