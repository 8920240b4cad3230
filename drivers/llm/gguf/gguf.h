// A validating, memory-mapped reader for GGUF v2 and v3 model files.
//
// GgufFile::open checks the whole header before anything is trusted: magic, version, every
// count and string length against the file's size, metadata value types, tensor ranks, shapes
// and element types, alignment, and that every tensor's data lies inside the file without
// overlapping another. A defect is an Error (Errc::corrupt or Errc::unsupported) whose message
// names the file, the field and its byte offset, e.g.
//   "m.gguf: tensor 'blk.0.attn_q.weight' (info at offset 4120): data [..) runs past end of file".
//
// After open succeeds, tensor data pointers are valid for the lifetime of the GgufFile; the
// mapping is read-only and shared (weights stay memory-mapped, never copied).
// Thread-safety: a GgufFile is immutable after open; any thread may read it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/ggml_type.h"

namespace icam::llm {

// The alignment of the tensor data section when the file does not set general.alignment.
inline constexpr uint64_t kGgufDefaultAlignment = 32;
// How deep arrays of arrays may nest; real models use none, the limit bounds recursion.
inline constexpr int kGgufMaxArrayDepth = 8;
// Tensors have 1 to kGgufMaxDims dimensions, as in ggml.
inline constexpr uint32_t kGgufMaxDims = 4;

// Metadata value types, numbered as in the GGUF format.
enum class GgufType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view gguf_type_name(GgufType type);

// One metadata value. Scalars are widened on read (integers to int64/uint64, floats to double);
// arrays keep their element type and are stored widened too. Strings point into the mapping.
class GgufValue {
 public:
  GgufType type() const { return type_; }
  GgufType element_type() const { return element_type_; }  // meaningful for arrays only

  bool is_integer() const;  // u8..i64 (not bool)
  bool is_float() const;    // f32, f64
  bool is_string() const { return type_ == GgufType::string; }
  bool is_array() const { return type_ == GgufType::array; }

  // Scalar accessors; callers check the type first (the typed getters on GgufFile do).
  int64_t as_int() const { return int_; }     // every integer type and bool
  uint64_t as_uint() const { return uint_; }  // u64 values above INT64_MAX keep full range here
  double as_float() const { return float_; }  // f32, f64
  bool as_bool() const { return int_ != 0; }
  std::string_view as_string() const { return string_; }

  // Arrays: the element count, and the elements by kind. Integer and bool arrays fill ints(),
  // float arrays fill floats(), string arrays fill strings(). Nested arrays are kept as items().
  size_t size() const { return size_; }
  const std::vector<int64_t>& ints() const { return ints_; }
  const std::vector<double>& floats() const { return floats_; }
  const std::vector<std::string_view>& strings() const { return strings_; }
  const std::vector<GgufValue>& items() const { return items_; }

 private:
  friend class GgufParser;
  GgufType type_ = GgufType::u8;
  GgufType element_type_ = GgufType::u8;
  int64_t int_ = 0;
  uint64_t uint_ = 0;
  double float_ = 0;
  std::string_view string_;
  size_t size_ = 0;
  std::vector<int64_t> ints_;
  std::vector<double> floats_;
  std::vector<std::string_view> strings_;
  std::vector<GgufValue> items_;
};

struct GgufMetadataEntry {
  std::string_view key;
  GgufValue value;
  uint64_t offset;  // byte offset of the key in the file, for error messages
};

struct GgufTensor {
  std::string_view name;
  GgmlType type;
  std::vector<uint64_t> dims;  // dims[0] is the contiguous (row) dimension, as in ggml
  uint64_t n_elements;
  uint64_t offset;             // absolute file offset of the first byte of data
  uint64_t n_bytes;
  const uint8_t* data;         // into the mapping; aligned to the file's alignment
  uint64_t info_offset;        // where the tensor's info record starts, for error messages

  uint64_t rows() const;       // product of dims[1..], 1 for vectors
};

class GgufFile {
 public:
  // Maps and validates a file. The error names the file, the field and the offset. The file must
  // not be truncated while it is mapped (reads of the lost pages would fault).
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Validates an in-memory image (copied); `name` stands for the file name in errors.
  static Result<std::unique_ptr<GgufFile>> from_bytes(std::span<const uint8_t> bytes,
                                                      std::string name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  // Metadata in file order, and lookup by key (nullptr when absent).
  const std::vector<GgufMetadataEntry>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // The whole entry (key, value and offset in the file), nullptr when absent.
  const GgufMetadataEntry* find_entry(std::string_view key) const;

  // Typed getters: Errc::not_found when the key is absent, Errc::corrupt when its type does not
  // fit (an integer getter accepts any integer type whose value fits; get_float accepts f32, f64
  // and integers). Messages name the file and the key.
  Result<std::string_view> get_string(std::string_view key) const;
  Result<uint32_t> get_u32(std::string_view key) const;
  Result<uint64_t> get_u64(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key) const;
  Result<float> get_float(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::span<const std::string_view>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;  // nullptr when absent

 private:
  friend class GgufParser;
  GgufFile() = default;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t size_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  const uint8_t* base_ = nullptr;  // mapping (or owned copy) of the whole file
  void* mapping_ = nullptr;        // open(): the read-only mapping of size_ bytes
  // from_bytes(): its copy, exactly size_ bytes, page-aligned like a mapping (so tensor data keeps
  // the file's alignment) and on the heap (so AddressSanitizer sees any read past its end).
  uint8_t* owned_ = nullptr;
  std::vector<GgufMetadataEntry> metadata_;
  std::vector<GgufTensor> tensors_;
  // Lookup by key and by tensor name; the views point into the file image, which never moves.
  std::unordered_map<std::string_view, size_t> metadata_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace icam::llm
