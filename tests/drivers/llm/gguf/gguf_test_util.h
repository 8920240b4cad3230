// Helpers shared by the GGUF tests, the fuzz target's replay test and seed generation: a raw
// byte builder for crafting defective files by hand, and a few valid models built by GgufWriter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm::testing {

// Appends little-endian fields, with no checks at all, to build files the writer refuses to.
class RawGguf {
 public:
  // "GGUF", version, tensor count, metadata count.
  RawGguf(uint32_t version, uint64_t n_tensors, uint64_t n_metadata);
  RawGguf() = default;

  RawGguf& u8(uint8_t v);
  RawGguf& u32(uint32_t v);
  RawGguf& u64(uint64_t v);
  RawGguf& f32(float v);
  RawGguf& str(std::string_view s);  // u64 length, then the bytes
  RawGguf& bytes(const std::vector<uint8_t>& b);
  RawGguf& zeros(size_t n);
  RawGguf& pad_to(uint64_t alignment);

  // A metadata entry: key, type id, and the caller appends the value next.
  RawGguf& key(std::string_view k, GgufType type) {
    return str(k).u32(static_cast<uint32_t>(type));
  }
  // A tensor info record.
  RawGguf& tensor_info(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type,
                       uint64_t offset);

  size_t size() const { return data_.size(); }
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::vector<uint8_t> data_;
};

// Deterministic filler bytes for tensor data.
std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed);

// A small Gemma-3-like model: the metadata keys a real gemma3 file has (with tiny sizes), a
// 16-token vocabulary, and tensors of types q8_0, q5_0, q4_K, q6_K, f32, f16 and bf16.
std::vector<uint8_t> tiny_gemma3_model();
// Every metadata value type, arrays of each, a nested array, and three small tensors.
std::vector<uint8_t> every_type_model();
// Two tensors with general.alignment = 64.
std::vector<uint8_t> aligned64_model();
// One metadata key, no tensors.
std::vector<uint8_t> minimal_model();

}  // namespace icam::llm::testing
