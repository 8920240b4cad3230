#include "drivers/llm/gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>

namespace icam::llm {
namespace {

// from_bytes copies into a page-aligned buffer so tensor data is aligned as in a mapping.
constexpr size_t kOwnedAlignment = 4096;

// The four magic bytes "GGUF" that open every file.
constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};

// Lower bounds on the bytes one record takes in the file. Counts are checked against the bytes
// left divided by these before anything is reserved, so a hostile count cannot make us allocate
// more than a small multiple of the file's size.
constexpr uint64_t kMinMetadataEntryBytes = 8 + 4 + 1;  // key length, type, a u8 value
constexpr uint64_t kMinTensorInfoBytes =
    8 + 4 + 8 + 4 + 8;  // name length, rank, 1 dim, type, offset

constexpr uint32_t kLastValueType = static_cast<uint32_t>(GgufType::f64);

// Bytes of one value of a fixed-size type, 0 for strings and arrays.
uint64_t fixed_size(GgufType type) {
  switch (type) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      return 1;
    case GgufType::u16:
    case GgufType::i16:
      return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32:
      return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64:
      return 8;
    case GgufType::string:
    case GgufType::array:
      return 0;
  }
  return 0;
}

// The fewest bytes one array element of `type` can take.
uint64_t min_size(GgufType type) {
  if (type == GgufType::string) return 8;     // length, then no bytes
  if (type == GgufType::array) return 4 + 8;  // element type and length of an empty array
  return fixed_size(type);
}

bool is_signed_integer(GgufType type) {
  return type == GgufType::i8 || type == GgufType::i16 || type == GgufType::i32 ||
         type == GgufType::i64;
}

bool is_integer_type(GgufType type) {
  switch (type) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::u16:
    case GgufType::i16:
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::u64:
    case GgufType::i64:
      return true;
    default:
      return false;
  }
}

bool is_float_type(GgufType type) {
  return type == GgufType::f32 || type == GgufType::f64;
}

// Names and keys come from the file: escape what would garble a message, and cut long ones.
std::string printable(std::string_view text) {
  constexpr size_t kMaxShown = 96;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out;
}

std::string describe_type(const GgufValue& value) {
  if (!value.is_array()) return std::string(gguf_type_name(value.type()));
  return "array of " + std::string(gguf_type_name(value.element_type()));
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;  // callers keep this from overflowing
}

std::string errno_text(int error) {
  return std::generic_category().message(error);
}

}  // namespace

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::u8:
      return "u8";
    case GgufType::i8:
      return "i8";
    case GgufType::u16:
      return "u16";
    case GgufType::i16:
      return "i16";
    case GgufType::u32:
      return "u32";
    case GgufType::i32:
      return "i32";
    case GgufType::f32:
      return "f32";
    case GgufType::boolean:
      return "bool";
    case GgufType::string:
      return "string";
    case GgufType::array:
      return "array";
    case GgufType::u64:
      return "u64";
    case GgufType::i64:
      return "i64";
    case GgufType::f64:
      return "f64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  return is_integer_type(type_);
}
bool GgufValue::is_float() const {
  return is_float_type(type_);
}

uint64_t GgufTensor::rows() const {
  uint64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];  // validated not to overflow
  return rows;
}

namespace {

// What the parser is reading, for messages; only turned into text when there is an error.
struct Subject {
  enum Kind { kHeader, kMetadataEntry, kMetadataKey, kTensorInfo, kTensor };
  Kind kind = kHeader;
  uint64_t index = 0;     // of the entry or tensor info
  std::string_view name;  // the key or tensor name, once read

  std::string describe() const {
    switch (kind) {
      case kHeader:
        return "header";
      case kMetadataEntry:
        return str_cat("metadata entry ", index);
      case kMetadataKey:
        return str_cat("metadata key '", printable(name), "'");
      case kTensorInfo:
        return str_cat("tensor info ", index);
      case kTensor:
        return str_cat("tensor '", printable(name), "'");
    }
    return "";
  }
};

}  // namespace

// Reads a file image front to back, checking each field against the bytes that are left before
// using it. Errors read "<file>: <subject> <part> (offset N): <problem>", where the subject is
// the header, a metadata key or a tensor and the part is the field within it.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : file_(file), data_(file.base_), size_(file.size_) {}

  Status parse() {
    ICAM_TRY(parse_header());
    ICAM_TRY(parse_metadata());
    ICAM_TRY(parse_alignment());
    ICAM_TRY(parse_tensor_infos());
    ICAM_TRY(place_tensor_data());
    return ok_status();
  }

 private:
  uint64_t left() const { return size_ - pos_; }

  // `index` >= 0 names an element of the part, as in "value[3]".
  template <typename... Args>
  Error fail(Errc code, uint64_t at, std::string_view part, int64_t index,
             const Args&... problem) const {
    std::string where = subject_.describe();
    if (!part.empty()) where.append(" ").append(part);
    if (index >= 0) where += str_cat("[", index, "]");
    return make_error(code, file_.path_, ": ", where, " (offset ", at, "): ", problem...);
  }

  template <typename... Args>
  Error corrupt(uint64_t at, std::string_view part, const Args&... problem) const {
    return fail(Errc::corrupt, at, part, -1, problem...);
  }

  template <typename... Args>
  Error tensor_error(const GgufTensor& tensor, const Args&... problem) const {
    return make_error(Errc::corrupt, file_.path_, ": tensor '", printable(tensor.name),
                      "' (info at offset ", tensor.info_offset, "): ", problem...);
  }

  template <typename T>
  T load(uint64_t at) const {
    T value;
    std::memcpy(&value, data_ + at, sizeof(T));
    return value;
  }

  template <typename T>
  Result<T> read(std::string_view part, int64_t index = -1) {
    if (sizeof(T) > left()) {
      return fail(Errc::corrupt, pos_, part, index, "needs ", sizeof(T), " bytes but only ", left(),
                  " are left in the file");
    }
    T value = load<T>(pos_);
    pos_ += sizeof(T);
    return value;
  }

  Result<std::string_view> read_string(std::string_view part, int64_t index = -1) {
    const uint64_t at = pos_;
    const uint64_t length = ICAM_TRY(read<uint64_t>(part, index));
    if (length > left()) {
      return fail(Errc::corrupt, at, part, index, "string length ", length, " exceeds the ", left(),
                  " bytes left in the file");
    }
    std::string_view text(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return text;
  }

  Result<GgufType> read_value_type(std::string_view part, int64_t index = -1) {
    const uint64_t at = pos_;
    const uint32_t raw = ICAM_TRY(read<uint32_t>(part, index));
    if (raw > kLastValueType) {
      return fail(Errc::corrupt, at, part, index, raw, " is not a GGUF value type (0..",
                  kLastValueType, ")");
    }
    return static_cast<GgufType>(raw);
  }

  Status parse_header() {
    subject_ = {Subject::kHeader};
    if (size_ < sizeof(kMagic)) {
      return corrupt(0, "magic", "the file is ", size_,
                     " bytes long, too short to be a GGUF file (it starts with \"GGUF\")");
    }
    if (std::memcmp(data_, kMagic, sizeof(kMagic)) != 0) {
      std::string found;
      for (size_t i = 0; i < sizeof(kMagic); ++i) {
        found += str_cat(i ? " " : "", "0x", std::hex, static_cast<unsigned>(data_[i]));
      }
      return corrupt(0, "magic", "expected \"GGUF\" but found bytes ", found,
                     "; this is not a GGUF file");
    }
    pos_ = sizeof(kMagic);

    const uint64_t version_at = pos_;
    const uint32_t version = ICAM_TRY(read<uint32_t>("version"));
    if (version == 1) {
      return fail(Errc::unsupported, version_at, "version", -1,
                  "GGUF version 1 is not supported (icam reads versions 2 and 3); convert the "
                  "model again with a current converter");
    }
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped == 2 || swapped == 3) {
        return fail(Errc::unsupported, version_at, "version", -1,
                    "this is a big-endian GGUF file (version ", swapped,
                    "); icam reads little-endian files only");
      }
      return fail(Errc::unsupported, version_at, "version", -1, "unknown GGUF version ", version,
                  " (icam reads versions 2 and 3)");
    }
    file_.version_ = version;

    const uint64_t tensors_at = pos_;
    n_tensors_ = ICAM_TRY(read<uint64_t>("tensor count"));
    const uint64_t metadata_at = pos_;
    n_metadata_ = ICAM_TRY(read<uint64_t>("metadata count"));
    if (n_metadata_ > left() / kMinMetadataEntryBytes) {
      return corrupt(metadata_at, "metadata count", n_metadata_, " entries cannot fit in the ",
                     left(), " bytes left in the file (each takes at least ",
                     kMinMetadataEntryBytes, ")");
    }
    if (n_tensors_ > left() / kMinTensorInfoBytes) {
      return corrupt(tensors_at, "tensor count", n_tensors_, " tensor infos cannot fit in the ",
                     left(), " bytes left in the file (each takes at least ", kMinTensorInfoBytes,
                     ")");
    }
    return ok_status();
  }

  Status parse_metadata() {
    file_.metadata_.reserve(n_metadata_);
    for (uint64_t i = 0; i < n_metadata_; ++i) {
      subject_ = {Subject::kMetadataEntry, i};
      const uint64_t key_at = pos_;
      const std::string_view key = ICAM_TRY(read_string("key"));
      if (key.empty()) return corrupt(key_at, "key", "the key is empty");
      subject_ = {Subject::kMetadataKey, i, key};
      const auto [it, inserted] = file_.metadata_index_.emplace(key, file_.metadata_.size());
      if (!inserted) {
        return corrupt(key_at, "", "duplicate key; it was first defined at offset ",
                       file_.metadata_[it->second].offset);
      }
      const GgufType type = ICAM_TRY(read_value_type("value type"));
      GgufValue value = ICAM_TRY(read_value(type, "value", -1, 0));
      file_.metadata_.push_back(GgufMetadataEntry{key, std::move(value), key_at});
    }
    return ok_status();
  }

  // Reads one value of `type` (already read); `part`/`index` name it in errors and `depth` counts
  // the arrays that enclose it.
  Result<GgufValue> read_value(GgufType type, const std::string& part, int64_t index, int depth) {
    GgufValue value;
    value.type_ = type;
    const uint64_t at = pos_;
    switch (type) {
      case GgufType::u8:
        set_unsigned(value, ICAM_TRY(read<uint8_t>(part, index)));
        break;
      case GgufType::u16:
        set_unsigned(value, ICAM_TRY(read<uint16_t>(part, index)));
        break;
      case GgufType::u32:
        set_unsigned(value, ICAM_TRY(read<uint32_t>(part, index)));
        break;
      case GgufType::u64:
        set_unsigned(value, ICAM_TRY(read<uint64_t>(part, index)));
        break;
      case GgufType::i8:
        set_signed(value, ICAM_TRY(read<int8_t>(part, index)));
        break;
      case GgufType::i16:
        set_signed(value, ICAM_TRY(read<int16_t>(part, index)));
        break;
      case GgufType::i32:
        set_signed(value, ICAM_TRY(read<int32_t>(part, index)));
        break;
      case GgufType::i64:
        set_signed(value, ICAM_TRY(read<int64_t>(part, index)));
        break;
      case GgufType::f32:
        value.float_ = ICAM_TRY(read<float>(part, index));
        break;
      case GgufType::f64:
        value.float_ = ICAM_TRY(read<double>(part, index));
        break;
      case GgufType::boolean: {
        const uint8_t raw = ICAM_TRY(read<uint8_t>(part, index));
        if (raw > 1) {
          return fail(Errc::corrupt, at, part, index, "boolean value ", unsigned{raw},
                      " is neither 0 nor 1");
        }
        set_unsigned(value, raw);
        break;
      }
      case GgufType::string:
        value.string_ = ICAM_TRY(read_string(part, index));
        break;
      case GgufType::array: {
        // Nested arrays get a path of their own ("value[2]") so their errors say where they are.
        const std::string path = index < 0 ? part : str_cat(part, "[", index, "]");
        ICAM_TRY(read_array(value, path, depth + 1));
        break;
      }
    }
    return value;
  }

  Status read_array(GgufValue& array, const std::string& path, int depth) {
    const uint64_t at = pos_;
    if (depth > kGgufMaxArrayDepth) {
      return corrupt(at, path, "arrays are nested more than ", kGgufMaxArrayDepth, " deep");
    }
    const GgufType element = ICAM_TRY(read_value_type(path + " element type"));
    const uint64_t count_at = pos_;
    const uint64_t count = ICAM_TRY(read<uint64_t>(path + " length"));
    const uint64_t min_bytes = min_size(element);
    if (count > left() / min_bytes) {
      return corrupt(count_at, path + " length", "array length ", count, " exceeds what the ",
                     left(), " bytes left in the file can hold (", gguf_type_name(element),
                     " elements take at least ", min_bytes, " bytes each)");
    }
    array.element_type_ = element;
    array.size_ = count;

    if (is_integer_type(element) || element == GgufType::boolean) {
      array.ints_.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t element_at = pos_;
        const int64_t x = load_integer(element);
        if (element == GgufType::boolean && x > 1) {
          return fail(Errc::corrupt, element_at, path, static_cast<int64_t>(i), "boolean value ", x,
                      " is neither 0 nor 1");
        }
        array.ints_.push_back(x);
      }
    } else if (is_float_type(element)) {
      array.floats_.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        if (element == GgufType::f32) {
          array.floats_.push_back(load<float>(pos_));
          pos_ += 4;
        } else {
          array.floats_.push_back(load<double>(pos_));
          pos_ += 8;
        }
      }
    } else if (element == GgufType::string) {
      array.strings_.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        array.strings_.push_back(ICAM_TRY(read_string(path, static_cast<int64_t>(i))));
      }
    } else {
      array.items_.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        array.items_.push_back(
            ICAM_TRY(read_value(GgufType::array, path, static_cast<int64_t>(i), depth)));
      }
    }
    return ok_status();
  }

  // One element of an integer or bool array; the caller checked that the whole array fits.
  int64_t load_integer(GgufType type) {
    const uint64_t at = pos_;
    pos_ += fixed_size(type);
    switch (type) {
      case GgufType::u8:
      case GgufType::boolean:
        return load<uint8_t>(at);
      case GgufType::i8:
        return load<int8_t>(at);
      case GgufType::u16:
        return load<uint16_t>(at);
      case GgufType::i16:
        return load<int16_t>(at);
      case GgufType::u32:
        return load<uint32_t>(at);
      case GgufType::i32:
        return load<int32_t>(at);
      // u64 values above INT64_MAX wrap to negative here; get_int_array reports them.
      case GgufType::u64:
        return static_cast<int64_t>(load<uint64_t>(at));
      case GgufType::i64:
        return load<int64_t>(at);
      default:
        return 0;
    }
  }

  static void set_unsigned(GgufValue& value, uint64_t raw) {
    value.uint_ = raw;
    value.int_ = static_cast<int64_t>(raw);
  }

  static void set_signed(GgufValue& value, int64_t raw) {
    value.int_ = raw;
    value.uint_ = static_cast<uint64_t>(raw);
  }

  Status parse_alignment() {
    const auto it = file_.metadata_index_.find("general.alignment");
    if (it == file_.metadata_index_.end()) return ok_status();
    const GgufMetadataEntry& entry = file_.metadata_[it->second];
    subject_ = {Subject::kMetadataKey, it->second, entry.key};
    if (entry.value.type() != GgufType::u32) {
      return corrupt(entry.offset, "", "the alignment must be a u32, not ",
                     describe_type(entry.value));
    }
    const uint64_t alignment = entry.value.as_uint();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return corrupt(entry.offset, "", "alignment ", alignment,
                     " is not a power of two greater than 0");
    }
    file_.alignment_ = alignment;
    return ok_status();
  }

  Status parse_tensor_infos() {
    const uint64_t alignment = file_.alignment_;
    file_.tensors_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      GgufTensor tensor{};
      tensor.info_offset = pos_;
      subject_ = {Subject::kTensorInfo, i};
      const std::string_view name = ICAM_TRY(read_string("name"));
      if (name.empty()) return corrupt(tensor.info_offset, "name", "the tensor name is empty");
      tensor.name = name;
      subject_ = {Subject::kTensor, i, name};
      const auto [it, inserted] = file_.tensor_index_.emplace(name, file_.tensors_.size());
      if (!inserted) {
        return corrupt(tensor.info_offset, "",
                       "duplicate tensor name; its first info is at offset ",
                       file_.tensors_[it->second].info_offset);
      }

      const uint64_t rank_at = pos_;
      const uint32_t rank = ICAM_TRY(read<uint32_t>("rank"));
      if (rank == 0 || rank > kGgufMaxDims) {
        return corrupt(rank_at, "rank", "rank ", rank, " is outside 1..", kGgufMaxDims);
      }
      const uint64_t dims_at = pos_;
      uint64_t n_elements = 1;
      for (uint32_t d = 0; d < rank; ++d) {
        const uint64_t dim_at = pos_;
        const uint64_t dim = ICAM_TRY(read<uint64_t>("dims", d));
        if (dim == 0) return fail(Errc::corrupt, dim_at, "dims", d, "dimension is 0");
        if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
            __builtin_mul_overflow(n_elements, dim, &n_elements) ||
            n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return fail(Errc::corrupt, dim_at, "dims", d, "dimension ", dim,
                      " makes the element count overflow 63 bits");
        }
        tensor.dims.push_back(dim);
      }
      tensor.n_elements = n_elements;

      const uint64_t type_at = pos_;
      const uint32_t raw_type = ICAM_TRY(read<uint32_t>("type"));
      const std::optional<GgmlTypeInfo> info = ggml_type_info(raw_type);
      if (!info) {
        return fail(Errc::unsupported, type_at, "type", -1, "unknown or unsupported ggml type id ",
                    raw_type);
      }
      tensor.type = info->type;
      if (tensor.dims[0] % info->block_elems != 0) {
        return corrupt(dims_at, "dims", "row length ", tensor.dims[0], " is not a multiple of the ",
                       info->name, " block size ", info->block_elems);
      }
      // Not ggml_row_bytes: with an unchecked dims[0] its product could wrap around.
      uint64_t row_bytes = 0;
      if (__builtin_mul_overflow(tensor.dims[0] / info->block_elems, info->block_bytes,
                                 &row_bytes) ||
          __builtin_mul_overflow(row_bytes, tensor.rows(), &tensor.n_bytes)) {
        return corrupt(dims_at, "dims", "the tensor's byte size overflows 64 bits");
      }

      const uint64_t offset_at = pos_;
      tensor.offset = ICAM_TRY(read<uint64_t>("data offset"));  // relative until placed
      if (tensor.offset % alignment != 0) {
        return corrupt(offset_at, "data offset", tensor.offset,
                       " is not a multiple of the alignment ", alignment);
      }
      file_.tensors_.push_back(std::move(tensor));
    }
    return ok_status();
  }

  // Turns relative offsets into absolute ones and checks every tensor's bytes lie in the file,
  // disjoint from every other tensor's.
  Status place_tensor_data() {
    file_.data_offset_ = align_up(pos_, file_.alignment_);  // pos_ <= size_, alignment < 2^32
    for (GgufTensor& tensor : file_.tensors_) {
      uint64_t start = 0;
      uint64_t end = 0;
      if (__builtin_add_overflow(file_.data_offset_, tensor.offset, &start) ||
          __builtin_add_overflow(start, tensor.n_bytes, &end)) {
        return tensor_error(tensor, "data offset ", tensor.offset, " plus size ", tensor.n_bytes,
                            " overflows 64 bits");
      }
      if (end > size_) {
        return tensor_error(tensor, "data [", start, ", ", end, ") runs past the end of the file (",
                            size_, " bytes)");
      }
      tensor.offset = start;
      tensor.data = data_ + start;
    }

    std::vector<const GgufTensor*> by_offset;
    by_offset.reserve(file_.tensors_.size());
    for (const GgufTensor& tensor : file_.tensors_) by_offset.push_back(&tensor);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensor& before = *by_offset[i - 1];
      const GgufTensor& after = *by_offset[i];
      if (before.offset + before.n_bytes > after.offset) {
        return tensor_error(after, "data [", after.offset, ", ", after.offset + after.n_bytes,
                            ") overlaps tensor '", printable(before.name), "' at [", before.offset,
                            ", ", before.offset + before.n_bytes, ")");
      }
    }
    return ok_status();
  }

  GgufFile& file_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_metadata_ = 0;
  Subject subject_;
};

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return make_error(Errc::not_found, path, ": no such file");
    return make_error(Errc::io, path, ": cannot open: ", errno_text(error));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return make_error(Errc::io, path, ": cannot stat: ", errno_text(error));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return make_error(Errc::io, path, ": is a directory, not a GGUF file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(Errc::io, path, ": is not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    return make_error(Errc::io, path, ": the file is empty (0 bytes), not a GGUF model");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);  // the mapping keeps the file open
  if (mapping == MAP_FAILED) {
    return make_error(Errc::io, path, ": cannot map ", size, " bytes: ", errno_text(map_error));
  }

  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->size_ = size;
  file->mapping_ = mapping;
  file->base_ = static_cast<const uint8_t*>(mapping);
  ICAM_TRY(GgufParser(*file).parse());
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::from_bytes(std::span<const uint8_t> bytes,
                                                       std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->size_ = bytes.size();
  if (!bytes.empty()) {
    void* copy = ::operator new (bytes.size(), std::align_val_t{kOwnedAlignment}, std::nothrow);
    if (copy == nullptr) {
      return make_error(Errc::resource_exhausted, file->path_, ": cannot allocate ", bytes.size(),
                        " bytes for a copy of the file");
    }
    std::memcpy(copy, bytes.data(), bytes.size());
    file->owned_ = static_cast<uint8_t*>(copy);
    file->base_ = file->owned_;
  }
  ICAM_TRY(GgufParser(*file).parse());
  return file;
}

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
  if (owned_ != nullptr) ::operator delete (owned_, std::align_val_t{kOwnedAlignment});
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufMetadataEntry* GgufFile::find_entry(std::string_view key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second];
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Shared by the typed getters: the entry for `key`, or the error they all return.
Result<const GgufMetadataEntry*> lookup(const GgufFile& file, std::string_view key) {
  const GgufMetadataEntry* entry = file.find_entry(key);
  if (entry == nullptr) {
    return make_error(Errc::not_found, file.path(), ": metadata key '", printable(key),
                      "' not found");
  }
  return entry;
}

template <typename... Args>
Error type_error(const GgufFile& file, const GgufMetadataEntry& entry, const Args&... problem) {
  return make_error(Errc::corrupt, file.path(), ": metadata key '", printable(entry.key),
                    "' (offset ", entry.offset, "): ", problem...);
}

// Whether the integer `value` (of integer type) lies in [0, max].
bool fits_unsigned(const GgufValue& value, uint64_t max) {
  if (is_signed_integer(value.type())) {
    return value.as_int() >= 0 && static_cast<uint64_t>(value.as_int()) <= max;
  }
  return value.as_uint() <= max;
}

std::string value_text(const GgufValue& value) {
  return is_signed_integer(value.type()) ? std::to_string(value.as_int())
                                         : std::to_string(value.as_uint());
}

}  // namespace

Result<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  if (!entry->value.is_string()) {
    return type_error(*this, *entry, "expected a string, found ", describe_type(entry->value));
  }
  return entry->value.as_string();
}

Result<uint32_t> GgufFile::get_u32(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (!value.is_integer()) {
    return type_error(*this, *entry, "expected an integer, found ", describe_type(value));
  }
  if (!fits_unsigned(value, std::numeric_limits<uint32_t>::max())) {
    return type_error(*this, *entry, "value ", value_text(value), " does not fit in a u32");
  }
  return static_cast<uint32_t>(value.as_uint());
}

Result<uint64_t> GgufFile::get_u64(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (!value.is_integer()) {
    return type_error(*this, *entry, "expected an integer, found ", describe_type(value));
  }
  if (!fits_unsigned(value, std::numeric_limits<uint64_t>::max())) {
    return type_error(*this, *entry, "value ", value_text(value), " does not fit in a u64");
  }
  return value.as_uint();
}

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (!value.is_integer()) {
    return type_error(*this, *entry, "expected an integer, found ", describe_type(value));
  }
  if (value.type() == GgufType::u64 &&
      value.as_uint() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return type_error(*this, *entry, "value ", value.as_uint(), " does not fit in an i64");
  }
  return value.as_int();
}

Result<float> GgufFile::get_float(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (value.is_float()) return static_cast<float>(value.as_float());
  if (value.is_integer()) {
    return is_signed_integer(value.type()) ? static_cast<float>(value.as_int())
                                           : static_cast<float>(value.as_uint());
  }
  return type_error(*this, *entry, "expected a number, found ", describe_type(value));
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  if (entry->value.type() != GgufType::boolean) {
    return type_error(*this, *entry, "expected a bool, found ", describe_type(entry->value));
  }
  return entry->value.as_bool();
}

Result<std::span<const std::string_view>> GgufFile::get_string_array(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (!value.is_array() || value.element_type() != GgufType::string) {
    return type_error(*this, *entry, "expected an array of string, found ", describe_type(value));
  }
  return std::span<const std::string_view>(value.strings());
}

Result<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  std::vector<float> out;
  if (value.is_array() && is_float_type(value.element_type())) {
    out.reserve(value.size());
    for (double x : value.floats()) out.push_back(static_cast<float>(x));
    return out;
  }
  if (value.is_array() && is_integer_type(value.element_type())) {
    out.reserve(value.size());
    const bool is_unsigned = value.element_type() == GgufType::u64;
    for (int64_t x : value.ints()) {
      out.push_back(is_unsigned ? static_cast<float>(static_cast<uint64_t>(x))
                                : static_cast<float>(x));
    }
    return out;
  }
  return type_error(*this, *entry, "expected an array of numbers, found ", describe_type(value));
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufMetadataEntry* entry = ICAM_TRY(lookup(*this, key));
  const GgufValue& value = entry->value;
  if (!value.is_array() || !is_integer_type(value.element_type())) {
    return type_error(*this, *entry, "expected an array of integers, found ", describe_type(value));
  }
  if (value.element_type() == GgufType::u64) {
    // u64 elements above INT64_MAX were stored wrapped to negative numbers.
    for (size_t i = 0; i < value.ints().size(); ++i) {
      if (value.ints()[i] < 0) {
        return type_error(*this, *entry, "element ", i, " (",
                          static_cast<uint64_t>(value.ints()[i]), ") does not fit in an i64");
      }
    }
  }
  return value.ints();
}

}  // namespace icam::llm
