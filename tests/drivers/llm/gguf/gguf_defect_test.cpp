// Every defect GgufFile checks for, each in a file crafted to have exactly that defect. Each
// error must carry the right code, name the file and the field, and give a byte offset.
#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <limits>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/gguf_writer.h"
#include "tests/drivers/llm/gguf/gguf_test_util.h"

namespace icam::llm {
namespace {

using testing::RawGguf;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::F32);
constexpr uint32_t kQ4_0 = static_cast<uint32_t>(GgmlType::Q4_0);

// Parses `bytes` and checks the error's code and that its message contains every fragment.
// Every message must begin with the file name and carry an offset.
void expect_defect(const std::vector<uint8_t>& bytes, Errc code,
                   std::initializer_list<std::string_view> fragments) {
  auto file = GgufFile::from_bytes(bytes, "bad.gguf");
  ASSERT_FALSE(file.ok()) << "a defective file was accepted";
  const std::string& message = file.error().message();
  EXPECT_EQ(file.error().code(), code) << message;
  EXPECT_EQ(message.rfind("bad.gguf: ", 0), 0u) << message;
  EXPECT_NE(message.find("offset "), std::string::npos) << message;
  for (std::string_view fragment : fragments) {
    EXPECT_NE(message.find(fragment), std::string::npos)
        << "'" << fragment << "' missing from: " << message;
  }
}

void expect_defect(const RawGguf& raw, Errc code,
                   std::initializer_list<std::string_view> fragments) {
  expect_defect(raw.data(), code, fragments);
}

// A file with one metadata entry "general.architecture" = "x" followed by `n_tensors` tensor
// infos that the caller appends.
RawGguf with_tensors(uint64_t n_tensors, uint64_t n_metadata = 1) {
  RawGguf raw(3, n_tensors, n_metadata);
  raw.key("general.architecture", GgufType::string).str("x");
  return raw;
}

TEST(GgufDefect, EmptyImage) {
  expect_defect(std::vector<uint8_t>{}, Errc::corrupt, {"header magic (offset 0)", "0 bytes long"});
}

TEST(GgufDefect, BadMagic) {
  std::vector<uint8_t> image = testing::minimal_model();
  image[0] = 'X';
  expect_defect(image, Errc::corrupt, {"header magic (offset 0)", "not a GGUF file", "0x58"});
  expect_defect(std::vector<uint8_t>{'G', 'G'}, Errc::corrupt, {"header magic (offset 0)"});
}

TEST(GgufDefect, VersionOneIsUnsupported) {
  expect_defect(RawGguf(1, 0, 0), Errc::unsupported,
                {"header version (offset 4)", "version 1 is not supported"});
}

TEST(GgufDefect, UnknownVersions) {
  for (uint32_t version : {0u, 4u, 99u, 0xFFFFFFFFu}) {
    expect_defect(RawGguf(version, 0, 0), Errc::unsupported,
                  {"header version (offset 4)", "unknown GGUF version"});
  }
  expect_defect(RawGguf(0x03000000u, 0, 0), Errc::unsupported, {"big-endian"});
}

TEST(GgufDefect, TruncatedHeaderFields) {
  RawGguf raw;
  raw.bytes({'G', 'G', 'U', 'F', 3, 0});
  expect_defect(raw, Errc::corrupt, {"header version (offset 4)", "needs 4 bytes but only 2"});
  RawGguf counts;
  counts.bytes({'G', 'G', 'U', 'F'}).u32(3).u32(0);
  expect_defect(counts, Errc::corrupt, {"header tensor count (offset 8)", "needs 8 bytes"});
  RawGguf metadata;
  metadata.bytes({'G', 'G', 'U', 'F'}).u32(3).u64(0).u8(1);
  expect_defect(metadata, Errc::corrupt, {"header metadata count (offset 16)"});
}

TEST(GgufDefect, HugeMetadataCount) {
  for (uint64_t n : {uint64_t{1} << 63, kU64Max, uint64_t{1000}}) {
    RawGguf raw(3, 0, n);
    raw.key("a", GgufType::u8).u8(1);
    expect_defect(raw, Errc::corrupt, {"header metadata count (offset 16)", "cannot fit"});
  }
}

TEST(GgufDefect, HugeTensorCount) {
  for (uint64_t n : {uint64_t{1} << 62, kU64Max, uint64_t{2}}) {
    RawGguf raw(3, n, 0);
    raw.tensor_info("t", {1}, kF32, 0);
    expect_defect(raw, Errc::corrupt, {"header tensor count (offset 8)", "cannot fit"});
  }
}

TEST(GgufDefect, KeyLengthBeyondFile) {
  for (uint64_t length : {uint64_t{999999}, kU64Max, uint64_t{1} << 63}) {
    RawGguf raw(3, 0, 1);
    raw.u64(length).zeros(20);
    expect_defect(raw, Errc::corrupt,
                  {"metadata entry 0 key (offset 24)", "exceeds the 20 bytes left in the file",
                   std::to_string(length)});
  }
}

TEST(GgufDefect, EmptyKey) {
  RawGguf raw(3, 0, 1);
  raw.str("").u32(0).u8(0);
  expect_defect(raw, Errc::corrupt, {"metadata entry 0 key (offset 24)", "empty"});
}

TEST(GgufDefect, StringValueBeyondFile) {
  // general.name's value (a string length) starts at 24 + 8 + 12 + 4 = 48.
  RawGguf raw(3, 0, 1);
  raw.key("general.name", GgufType::string).u64(999999).zeros(40);
  expect_defect(raw, Errc::corrupt,
                {"metadata key 'general.name' value (offset 48)",
                 "string length 999999 exceeds the 40 bytes left in the file"});
}

TEST(GgufDefect, TruncatedScalarValue) {
  RawGguf raw(3, 0, 1);
  raw.key("k", GgufType::u64).u32(7);
  expect_defect(raw, Errc::corrupt, {"metadata key 'k' value (offset 37)", "needs 8 bytes"});
}

TEST(GgufDefect, UnknownValueType) {
  for (uint32_t type : {13u, 99u, 0xFFFFFFFFu}) {
    RawGguf raw(3, 0, 1);
    raw.str("k").u32(type).u64(0);
    expect_defect(raw, Errc::corrupt,
                  {"metadata key 'k' value type (offset 33)", "is not a GGUF value type"});
  }
}

TEST(GgufDefect, UnknownArrayElementType) {
  RawGguf raw(3, 0, 1);
  raw.key("k", GgufType::array).u32(77).u64(0);
  expect_defect(raw, Errc::corrupt,
                {"metadata key 'k' value element type (offset 37)", "77 is not a GGUF value type"});
}

TEST(GgufDefect, HugeArrayLengths) {
  const std::pair<GgufType, uint64_t> cases[] = {
      {GgufType::u32, uint64_t{1} << 62},    {GgufType::u8, kU64Max}, {GgufType::u8, 17},
      {GgufType::string, uint64_t{1} << 61}, {GgufType::array, 5},    {GgufType::f64, 3}};
  for (const auto& [element, length] : cases) {
    SCOPED_TRACE(gguf_type_name(element));
    RawGguf raw(3, 0, 1);
    raw.key("k", GgufType::array).u32(static_cast<uint32_t>(element)).u64(length).zeros(16);
    expect_defect(raw, Errc::corrupt,
                  {"metadata key 'k' value length (offset 41)", "exceeds what the 16 bytes left"});
  }
}

TEST(GgufDefect, StringElementBeyondFile) {
  RawGguf raw(3, 0, 1);
  raw.key("tokenizer.ggml.tokens", GgufType::array).u32(static_cast<uint32_t>(GgufType::string));
  raw.u64(3).str("a").u64(500).zeros(8);
  // The array's elements start at 24 + 8 + 21 + 4 + 4 + 8 = 69; element 1 at 69 + 9 = 78.
  expect_defect(raw, Errc::corrupt,
                {"metadata key 'tokenizer.ggml.tokens' value[1] (offset 78)", "string length 500"});
}

RawGguf nested_arrays(int depth) {
  RawGguf raw(3, 0, 1);
  raw.key("deep", GgufType::array);
  for (int i = 1; i < depth; ++i) raw.u32(static_cast<uint32_t>(GgufType::array)).u64(1);
  raw.u32(static_cast<uint32_t>(GgufType::u8)).u64(1).u8(42);
  return raw;
}

TEST(GgufDefect, NestedArrayDepthLimit) {
  auto ok = GgufFile::from_bytes(nested_arrays(kGgufMaxArrayDepth).data(), "ok.gguf");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  const GgufValue* value = (*ok)->find("deep");
  for (int i = 1; i < kGgufMaxArrayDepth; ++i) value = &value->items().at(0);
  EXPECT_EQ(value->ints(), std::vector<int64_t>{42});

  expect_defect(nested_arrays(kGgufMaxArrayDepth + 1), Errc::corrupt,
                {"metadata key 'deep' value[0][0][0][0][0][0][0]", "nested more than 8 deep"});
}

TEST(GgufDefect, BadBooleans) {
  RawGguf scalar(3, 0, 1);
  scalar.key("b", GgufType::boolean).u8(2);
  expect_defect(scalar, Errc::corrupt,
                {"metadata key 'b' value (offset 37)", "boolean value 2 is neither 0 nor 1"});
  RawGguf array(3, 0, 1);
  array.key("b", GgufType::array).u32(static_cast<uint32_t>(GgufType::boolean)).u64(3);
  array.u8(1).u8(0).u8(255);
  expect_defect(array, Errc::corrupt,
                {"metadata key 'b' value[2] (offset 51)", "boolean value 255"});
}

TEST(GgufDefect, DuplicateMetadataKey) {
  RawGguf raw(3, 0, 2);
  raw.key("general.name", GgufType::string).str("a");
  const size_t second = raw.size();
  raw.key("general.name", GgufType::u32).u32(1);
  expect_defect(raw, Errc::corrupt,
                {"metadata key 'general.name' (offset " + std::to_string(second) + ")",
                 "duplicate key", "first defined at offset 24"});
}

TEST(GgufDefect, KeysAreEscapedInMessages) {
  RawGguf raw(3, 0, 1);
  raw.key("bad\nkey'", GgufType::boolean).u8(9);
  expect_defect(raw, Errc::corrupt, {"metadata key 'bad\\x0akey\\x27' value"});
}

TEST(GgufDefect, Alignment) {
  struct Case {
    GgufType type;
    uint64_t value;
    const char* fragment;
  };
  for (const Case& c : {Case{GgufType::u32, 0, "alignment 0 is not a power of two"},
                        Case{GgufType::u32, 24, "alignment 24 is not a power of two"},
                        Case{GgufType::u32, 0xFFFFFFFF, "is not a power of two"},
                        Case{GgufType::u64, 32, "must be a u32, not u64"},
                        Case{GgufType::i32, 32, "must be a u32, not i32"},
                        Case{GgufType::string, 0, "must be a u32, not string"}}) {
    SCOPED_TRACE(c.fragment);
    RawGguf raw(3, 0, 1);
    raw.key("general.alignment", c.type);
    if (c.type == GgufType::u64) {
      raw.u64(c.value);
    } else if (c.type == GgufType::string) {
      raw.str("32");
    } else {
      raw.u32(static_cast<uint32_t>(c.value));
    }
    expect_defect(raw, Errc::corrupt, {"metadata key 'general.alignment' (offset 24)", c.fragment});
  }
}

// Tensor infos start after the architecture entry: 24 + 8 + 20 + 4 + 8 + 1 = 65.
constexpr uint64_t kFirstInfo = 65;

TEST(GgufDefect, TensorNameBeyondFile) {
  RawGguf raw = with_tensors(1);
  raw.u64(1000).zeros(40);
  expect_defect(raw, Errc::corrupt,
                {"tensor info 0 name (offset 65)", "string length 1000 exceeds the 40 bytes"});
}

TEST(GgufDefect, EmptyTensorName) {
  RawGguf raw = with_tensors(1);
  raw.tensor_info("", {4}, kF32, 0).pad_to(32).zeros(16);
  expect_defect(raw, Errc::corrupt, {"tensor info 0 name (offset 65)", "empty"});
}

TEST(GgufDefect, TensorRank) {
  for (uint32_t rank : {0u, 5u, 0xFFFFFFFFu}) {
    RawGguf raw = with_tensors(1);
    raw.str("t").u32(rank).zeros(64);
    expect_defect(raw, Errc::corrupt,
                  {"tensor 't' rank (offset " + std::to_string(kFirstInfo + 9) + ")",
                   "rank " + std::to_string(rank) + " is outside 1..4"});
  }
}

TEST(GgufDefect, ZeroDimension) {
  RawGguf raw = with_tensors(1);
  raw.tensor_info("t", {4, 0}, kF32, 0).pad_to(32).zeros(64);
  expect_defect(
      raw, Errc::corrupt,
      {"tensor 't' dims[1] (offset " + std::to_string(kFirstInfo + 21) + ")", "dimension is 0"});
}

TEST(GgufDefect, DimensionsOverflow) {
  RawGguf product = with_tensors(1);
  product.tensor_info("t", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0).zeros(64);
  expect_defect(product, Errc::corrupt, {"tensor 't' dims[1] (offset ", "overflow"});
  RawGguf single = with_tensors(1);
  single.tensor_info("t", {kU64Max}, kF32, 0).zeros(64);
  expect_defect(single, Errc::corrupt, {"tensor 't' dims[0] (offset ", "overflow"});
  // 2^62 f32 elements fit the element count, but not the byte size.
  RawGguf bytes = with_tensors(1);
  bytes.tensor_info("t", {uint64_t{1} << 62}, kF32, 0).zeros(64);
  expect_defect(bytes, Errc::corrupt, {"tensor 't' dims (offset ", "byte size overflows"});
}

TEST(GgufDefect, RowNotAMultipleOfTheBlock) {
  RawGguf raw = with_tensors(1);
  raw.tensor_info("q", {33, 2}, kQ4_0, 0).pad_to(32).zeros(64);
  expect_defect(raw, Errc::corrupt,
                {"tensor 'q' dims (offset " + std::to_string(kFirstInfo + 13) + ")",
                 "row length 33 is not a multiple of the q4_0 block size 32"});
}

TEST(GgufDefect, UnknownTensorTypes) {
  for (uint32_t type : {4u, 5u, 16u, 20u, 31u, 1000u, 0xFFFFFFFFu}) {
    RawGguf raw = with_tensors(1);
    raw.tensor_info("t", {32}, type, 0).pad_to(32).zeros(256);
    expect_defect(raw, Errc::unsupported,
                  {"tensor 't' type (offset " + std::to_string(kFirstInfo + 21) + ")",
                   "unknown or unsupported ggml type id " + std::to_string(type)});
  }
}

TEST(GgufDefect, MisalignedTensorOffset) {
  RawGguf raw = with_tensors(1);
  raw.tensor_info("t", {4}, kF32, 16).pad_to(32).zeros(64);
  expect_defect(raw, Errc::corrupt,
                {"tensor 't' data offset (offset " + std::to_string(kFirstInfo + 25) + ")",
                 "16 is not a multiple of the alignment 32"});

  // With general.alignment = 64, an offset of 32 is misaligned too.
  RawGguf custom(3, 1, 1);
  custom.key("general.alignment", GgufType::u32).u32(64);
  custom.tensor_info("t", {4}, kF32, 32).pad_to(64).zeros(128);
  expect_defect(custom, Errc::corrupt, {"tensor 't' data offset", "alignment 64"});
}

TEST(GgufDefect, DataOutOfBounds) {
  RawGguf past_end = with_tensors(1);
  past_end.tensor_info("t", {16}, kF32, 0).pad_to(32).zeros(63);  // needs 64 bytes
  expect_defect(past_end, Errc::corrupt,
                {"tensor 't' (info at offset 65)", "runs past the end of the file"});

  RawGguf far = with_tensors(1);
  far.tensor_info("t", {4}, kF32, uint64_t{1} << 40).pad_to(32).zeros(64);
  expect_defect(far, Errc::corrupt, {"tensor 't' (info at offset 65)", "runs past the end"});

  RawGguf wraps = with_tensors(1);
  wraps.tensor_info("t", {4}, kF32, kU64Max - 31).pad_to(32).zeros(64);
  expect_defect(wraps, Errc::corrupt, {"tensor 't' (info at offset 65)", "overflows 64 bits"});
}

TEST(GgufDefect, OverlappingTensors) {
  RawGguf raw = with_tensors(3);
  raw.tensor_info("a", {16}, kF32, 0);   // [0, 64)
  raw.tensor_info("b", {8}, kF32, 128);  // [128, 160)
  raw.tensor_info("c", {16}, kF32, 32);  // [32, 96): overlaps a
  raw.pad_to(32).zeros(256);
  expect_defect(raw, Errc::corrupt, {"tensor 'c' (info at offset ", "overlaps tensor 'a'"});

  RawGguf same = with_tensors(2);
  same.tensor_info("a", {8}, kF32, 0).tensor_info("b", {8}, kF32, 0).pad_to(32).zeros(64);
  expect_defect(same, Errc::corrupt, {"overlaps tensor"});
}

TEST(GgufDefect, DuplicateTensorNames) {
  RawGguf raw = with_tensors(2);
  raw.tensor_info("w", {8}, kF32, 0);
  const size_t second = raw.size();
  raw.tensor_info("w", {8}, kF32, 32).pad_to(32).zeros(64);
  expect_defect(raw, Errc::corrupt,
                {"tensor 'w' (offset " + std::to_string(second) + ")", "duplicate tensor name",
                 "first info is at offset 65"});
}

TEST(GgufDefect, TruncatedTensorInfo) {
  RawGguf raw = with_tensors(1);
  raw.str("t").u32(2).u64(4);
  expect_defect(raw, Errc::corrupt, {"tensor 't' dims[1] (offset ", "needs 8 bytes but only 0"});
}

// Every strict prefix of a valid file is missing something the reader needs, so each must be
// refused with an error (and none may read out of bounds, which the sanitizer build checks).
TEST(GgufDefect, EveryPrefixOfAValidFileIsRejected) {
  for (const std::vector<uint8_t>& image :
       {testing::every_type_model(), testing::tiny_gemma3_model(), testing::aligned64_model(),
        testing::minimal_model()}) {
    ASSERT_TRUE(GgufFile::from_bytes(image, "whole.gguf").ok());
    for (size_t length = 0; length < image.size(); ++length) {
      auto file = GgufFile::from_bytes(std::span(image.data(), length), "cut.gguf");
      ASSERT_FALSE(file.ok()) << "prefix of " << length << " bytes was accepted";
      EXPECT_EQ(file.error().code(), Errc::corrupt) << file.error().message();
      EXPECT_NE(file.error().message().find("offset "), std::string::npos)
          << file.error().message();
    }
  }
}

}  // namespace
}  // namespace icam::llm
