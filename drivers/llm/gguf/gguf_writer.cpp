#include "drivers/llm/gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace icam::llm {
namespace {

// Little-endian encoding helpers; icam only runs on little-endian hosts, as GGUF v3 files are.
template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &value, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view text) {
  put<uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

template <typename T>
std::vector<uint8_t> encode(T value) {
  std::vector<uint8_t> out;
  put(out, value);
  return out;
}

template <typename T>
std::vector<uint8_t> encode_array(GgufType element_type, const std::vector<T>& values) {
  std::vector<uint8_t> out;
  put<uint32_t>(out, static_cast<uint32_t>(element_type));
  put<uint64_t>(out, values.size());
  for (const T& value : values) put(out, value);
  return out;
}

void pad_to(std::vector<uint8_t>& out, uint64_t alignment) {
  out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
}

bool is_power_of_two(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

std::string errno_text(int error) {
  return std::generic_category().message(error);
}

}  // namespace

void GgufWriter::set(std::string key, GgufType type, std::vector<uint8_t> payload) {
  set_raw(std::move(key), static_cast<uint32_t>(type), std::move(payload));
}

void GgufWriter::set_raw(std::string key, uint32_t raw_type, std::vector<uint8_t> payload) {
  for (Entry& entry : entries_) {
    if (entry.key == key) {
      entry.type = raw_type;
      entry.payload = std::move(payload);
      return;
    }
  }
  entries_.push_back(Entry{std::move(key), raw_type, std::move(payload)});
}

void GgufWriter::set_u8(std::string key, uint8_t value) {
  set(std::move(key), GgufType::u8, encode(value));
}
void GgufWriter::set_i8(std::string key, int8_t value) {
  set(std::move(key), GgufType::i8, encode(value));
}
void GgufWriter::set_u16(std::string key, uint16_t value) {
  set(std::move(key), GgufType::u16, encode(value));
}
void GgufWriter::set_i16(std::string key, int16_t value) {
  set(std::move(key), GgufType::i16, encode(value));
}
void GgufWriter::set_u32(std::string key, uint32_t value) {
  set(std::move(key), GgufType::u32, encode(value));
}
void GgufWriter::set_i32(std::string key, int32_t value) {
  set(std::move(key), GgufType::i32, encode(value));
}
void GgufWriter::set_u64(std::string key, uint64_t value) {
  set(std::move(key), GgufType::u64, encode(value));
}
void GgufWriter::set_i64(std::string key, int64_t value) {
  set(std::move(key), GgufType::i64, encode(value));
}
void GgufWriter::set_f32(std::string key, float value) {
  set(std::move(key), GgufType::f32, encode(value));
}
void GgufWriter::set_f64(std::string key, double value) {
  set(std::move(key), GgufType::f64, encode(value));
}
void GgufWriter::set_bool(std::string key, bool value) {
  set(std::move(key), GgufType::boolean, encode<uint8_t>(value ? 1 : 0));
}

void GgufWriter::set_string(std::string key, std::string_view value) {
  std::vector<uint8_t> payload;
  put_string(payload, value);
  set(std::move(key), GgufType::string, std::move(payload));
}

void GgufWriter::set_string_array(std::string key, const std::vector<std::string>& values) {
  std::vector<uint8_t> payload;
  put<uint32_t>(payload, static_cast<uint32_t>(GgufType::string));
  put<uint64_t>(payload, values.size());
  for (const std::string& value : values) put_string(payload, value);
  set(std::move(key), GgufType::array, std::move(payload));
}

void GgufWriter::set_f32_array(std::string key, const std::vector<float>& values) {
  set(std::move(key), GgufType::array, encode_array(GgufType::f32, values));
}

void GgufWriter::set_f64_array(std::string key, const std::vector<double>& values) {
  set(std::move(key), GgufType::array, encode_array(GgufType::f64, values));
}

void GgufWriter::set_i32_array(std::string key, const std::vector<int32_t>& values) {
  set(std::move(key), GgufType::array, encode_array(GgufType::i32, values));
}

Status GgufWriter::set_int_array(std::string key, GgufType element_type,
                                 const std::vector<int64_t>& values) {
  int64_t min = 0;
  int64_t max = 0;
  uint64_t width = 0;
  switch (element_type) {
    case GgufType::u8:
      min = 0, max = UINT8_MAX, width = 1;
      break;
    case GgufType::i8:
      min = INT8_MIN, max = INT8_MAX, width = 1;
      break;
    case GgufType::u16:
      min = 0, max = UINT16_MAX, width = 2;
      break;
    case GgufType::i16:
      min = INT16_MIN, max = INT16_MAX, width = 2;
      break;
    case GgufType::u32:
      min = 0, max = UINT32_MAX, width = 4;
      break;
    case GgufType::i32:
      min = INT32_MIN, max = INT32_MAX, width = 4;
      break;
    case GgufType::u64:
      min = 0, max = INT64_MAX, width = 8;
      break;
    case GgufType::i64:
      min = INT64_MIN, max = INT64_MAX, width = 8;
      break;
    case GgufType::boolean:
      min = 0, max = 1, width = 1;
      break;
    default:
      return make_error(Errc::invalid_argument, "metadata key '", key,
                        "': ", gguf_type_name(element_type), " is not an integer type");
  }
  std::vector<uint8_t> payload;
  put<uint32_t>(payload, static_cast<uint32_t>(element_type));
  put<uint64_t>(payload, values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < min || values[i] > max) {
      return make_error(Errc::invalid_argument, "metadata key '", key, "': element ", i, " (",
                        values[i], ") does not fit in ", gguf_type_name(element_type));
    }
    // Two's complement little-endian: the low `width` bytes are the narrower type's encoding.
    const auto bits = static_cast<uint64_t>(values[i]);
    for (uint64_t b = 0; b < width; ++b) payload.push_back(static_cast<uint8_t>(bits >> (8 * b)));
  }
  set(std::move(key), GgufType::array, std::move(payload));
  return ok_status();
}

Status GgufWriter::set_alignment(uint32_t alignment) {
  if (!is_power_of_two(alignment)) {
    return make_error(Errc::invalid_argument, "alignment ", alignment,
                      " is not a power of two greater than 0");
  }
  alignment_ = alignment;
  set_u32("general.alignment", alignment);
  return ok_status();
}

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims,
                              std::vector<uint8_t> bytes) {
  if (name.empty()) return make_error(Errc::invalid_argument, "tensor name is empty");
  for (const Tensor& tensor : tensors_) {
    if (tensor.name == name) {
      return make_error(Errc::invalid_argument, "tensor '", name, "' was already added");
    }
  }
  if (dims.empty() || dims.size() > kGgufMaxDims) {
    return make_error(Errc::invalid_argument, "tensor '", name, "': rank ", dims.size(),
                      " is outside 1..", kGgufMaxDims);
  }
  const GgmlTypeInfo& info = ggml_type_info(type);
  uint64_t rows = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 0) {
      return make_error(Errc::invalid_argument, "tensor '", name, "': dims[", d, "] is 0");
    }
    if (d > 0 && __builtin_mul_overflow(rows, dims[d], &rows)) {
      return make_error(Errc::invalid_argument, "tensor '", name, "': too many elements");
    }
  }
  if (dims[0] % info.block_elems != 0) {
    return make_error(Errc::invalid_argument, "tensor '", name, "': dims[0] = ", dims[0],
                      " is not a multiple of the ", info.name, " block size ", info.block_elems);
  }
  uint64_t row_bytes = 0;
  uint64_t expected = 0;
  if (__builtin_mul_overflow(dims[0] / info.block_elems, info.block_bytes, &row_bytes) ||
      __builtin_mul_overflow(row_bytes, rows, &expected) || expected != bytes.size()) {
    return make_error(Errc::invalid_argument, "tensor '", name, "': ", bytes.size(),
                      " bytes given but a ", info.name, " tensor of this shape takes ", expected);
  }
  tensors_.push_back(Tensor{std::move(name), type, std::move(dims), std::move(bytes)});
  return ok_status();
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, entries_.size());
  for (const Entry& entry : entries_) {
    put_string(out, entry.key);
    put<uint32_t>(out, entry.type);
    out.insert(out.end(), entry.payload.begin(), entry.payload.end());
  }

  uint64_t offset = 0;  // relative to the data section
  std::vector<uint64_t> offsets;
  for (const Tensor& tensor : tensors_) {
    offsets.push_back(offset);
    offset = (offset + tensor.bytes.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& tensor = tensors_[i];
    put_string(out, tensor.name);
    put<uint32_t>(out, static_cast<uint32_t>(tensor.dims.size()));
    for (uint64_t dim : tensor.dims) put<uint64_t>(out, dim);
    put<uint32_t>(out, static_cast<uint32_t>(tensor.type));
    put<uint64_t>(out, offsets[i]);
  }

  if (tensors_.empty()) return out;
  pad_to(out, alignment_);
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(data_start + offsets[i], 0);  // the padding between tensors
    out.insert(out.end(), tensors_[i].bytes.begin(), tensors_[i].bytes.end());
  }
  return out;
}

Status GgufWriter::write_file(const std::string& path) const {
  const std::vector<uint8_t> image = serialize();
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(Errc::io, temp, ": cannot create: ", errno_text(errno));
  }
  size_t done = 0;
  while (done < image.size()) {
    const ssize_t n = ::write(fd, image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(temp.c_str());
      return make_error(Errc::io, temp, ": write failed: ", errno_text(error));
    }
    done += static_cast<size_t>(n);
  }
  const int sync_error = ::fsync(fd) != 0 ? errno : 0;
  const int close_error = ::close(fd) != 0 ? errno : 0;
  if (sync_error != 0 || close_error != 0) {
    ::unlink(temp.c_str());
    return make_error(Errc::io, temp,
                      ": cannot flush: ", errno_text(sync_error != 0 ? sync_error : close_error));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return make_error(Errc::io, path,
                      ": cannot rename the temporary file into place: ", errno_text(error));
  }
  return ok_status();
}

}  // namespace icam::llm
