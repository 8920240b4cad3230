// Builds GGUF v3 files in memory, for tests and tools that need small models with known weights.
//
// Metadata keeps insertion order; setting a key that is already set replaces its value in place.
// Tensors are laid out in the order they are added, each at an offset that is a multiple of the
// alignment, and the file ends with the last tensor's last byte. add_tensor checks names, shapes
// and sizes as GgufFile does, so a file built through the typed setters always reads back; only
// set_raw (and a hand-set general.alignment) can produce files the reader rejects, which is what
// it is for.
// Thread-safety: none; use one writer from one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm {

class GgufWriter {
 public:
  void set_u8(std::string key, uint8_t value);
  void set_i8(std::string key, int8_t value);
  void set_u16(std::string key, uint16_t value);
  void set_i16(std::string key, int16_t value);
  void set_u32(std::string key, uint32_t value);
  void set_i32(std::string key, int32_t value);
  void set_u64(std::string key, uint64_t value);
  void set_i64(std::string key, int64_t value);
  void set_f32(std::string key, float value);
  void set_f64(std::string key, double value);
  void set_bool(std::string key, bool value);
  void set_string(std::string key, std::string_view value);

  void set_string_array(std::string key, const std::vector<std::string>& values);
  void set_f32_array(std::string key, const std::vector<float>& values);
  void set_f64_array(std::string key, const std::vector<double>& values);
  void set_i32_array(std::string key, const std::vector<int32_t>& values);
  // An array of any integer or bool element type; invalid_argument when a value does not fit.
  Status set_int_array(std::string key, GgufType element_type, const std::vector<int64_t>& values);

  // Writes `payload` verbatim as the value of `key` after the type id `raw_type`: a way for tests
  // to build values the typed setters cannot (nested arrays, unknown types, bad booleans).
  void set_raw(std::string key, uint32_t raw_type, std::vector<uint8_t> payload);

  // Sets general.alignment (a power of two) and lays tensor data out on it; the default is 32.
  Status set_alignment(uint32_t alignment);

  // Adds a tensor; invalid_argument unless the name is new and non-empty, the rank is 1..4, no
  // dimension is 0, dims[0] is a multiple of the type's block size and `bytes` has exactly the
  // tensor's size.
  Status add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims,
                    std::vector<uint8_t> bytes);

  // The whole file image.
  std::vector<uint8_t> serialize() const;
  // Writes the image to `path` through a temporary file in the same directory and a rename, so a
  // reader never sees a partial file; Errc::io naming the path on failure.
  Status write_file(const std::string& path) const;

 private:
  struct Entry {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> payload;  // the encoded value that follows the type id
  };
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> bytes;
  };

  void set(std::string key, GgufType type, std::vector<uint8_t> payload);

  std::vector<Entry> entries_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = static_cast<uint32_t>(kGgufDefaultAlignment);
};

}  // namespace icam::llm
