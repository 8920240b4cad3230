// Files built by GgufWriter read back through GgufFile with every value, type and byte intact.
#include <gtest/gtest.h>

#include <cstring>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/gguf_writer.h"
#include "tests/drivers/llm/gguf/gguf_test_util.h"

namespace icam::llm {
namespace {

using testing::every_type_model;
using testing::pattern_bytes;

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& bytes) {
  auto file = GgufFile::from_bytes(bytes, "rt.gguf");
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message());
  return file.ok() ? std::move(file).value() : nullptr;
}

TEST(GgufRoundTrip, Header) {
  auto file = parse(every_type_model());
  ASSERT_TRUE(file);
  EXPECT_EQ(file->path(), "rt.gguf");
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->data_offset() % 32, 0u);
  EXPECT_EQ(file->file_size(), every_type_model().size());
}

TEST(GgufRoundTrip, ScalarsOfEveryType) {
  auto file = parse(every_type_model());
  ASSERT_TRUE(file);
  struct Case {
    const char* key;
    GgufType type;
  };
  for (const Case& c :
       {Case{"testarch.u8", GgufType::u8}, Case{"testarch.i8", GgufType::i8},
        Case{"testarch.u16", GgufType::u16}, Case{"testarch.i16", GgufType::i16},
        Case{"testarch.u32", GgufType::u32}, Case{"testarch.i32", GgufType::i32},
        Case{"testarch.u64", GgufType::u64}, Case{"testarch.i64", GgufType::i64},
        Case{"testarch.f32", GgufType::f32}, Case{"testarch.f64", GgufType::f64},
        Case{"testarch.bool", GgufType::boolean}, Case{"testarch.string", GgufType::string}}) {
    const GgufValue* value = file->find(c.key);
    ASSERT_NE(value, nullptr) << c.key;
    EXPECT_EQ(value->type(), c.type) << c.key;
  }
  EXPECT_EQ(file->find("testarch.u8")->as_uint(), 200u);
  EXPECT_EQ(file->find("testarch.i8")->as_int(), -100);
  EXPECT_EQ(file->find("testarch.u16")->as_uint(), 60000u);
  EXPECT_EQ(file->find("testarch.i16")->as_int(), -30000);
  EXPECT_EQ(file->find("testarch.u32")->as_uint(), 4000000000u);
  EXPECT_EQ(file->find("testarch.i32")->as_int(), -2000000000);
  EXPECT_EQ(file->find("testarch.u64")->as_uint(), 18000000000000000000ull);
  EXPECT_EQ(file->find("testarch.i64")->as_int(), -9000000000000000000ll);
  EXPECT_EQ(file->find("testarch.f32")->as_float(), 0.25);
  EXPECT_EQ(file->find("testarch.f64")->as_float(), -1.5e300);
  EXPECT_TRUE(file->find("testarch.bool")->as_bool());
  EXPECT_EQ(file->find("testarch.string")->as_string(), "h\xC3\xA9llo");
  EXPECT_TRUE(file->find("testarch.u8")->is_integer());
  EXPECT_FALSE(file->find("testarch.bool")->is_integer());
  EXPECT_TRUE(file->find("testarch.f64")->is_float());
  EXPECT_EQ(file->find("no.such.key"), nullptr);
}

TEST(GgufRoundTrip, TypedGetters) {
  auto file = parse(every_type_model());
  ASSERT_TRUE(file);
  EXPECT_EQ(*file->get_string("testarch.string"), "h\xC3\xA9llo");
  EXPECT_EQ(*file->get_u32("testarch.u32"), 4000000000u);
  EXPECT_EQ(*file->get_u32("testarch.u8"), 200u);
  EXPECT_EQ(*file->get_u64("testarch.u64"), 18000000000000000000ull);
  EXPECT_EQ(*file->get_int("testarch.i64"), -9000000000000000000ll);
  EXPECT_EQ(*file->get_int("testarch.u32"), 4000000000);
  EXPECT_EQ(*file->get_float("testarch.f32"), 0.25f);
  EXPECT_EQ(*file->get_float("testarch.i16"), -30000.0f);
  EXPECT_TRUE(*file->get_bool("testarch.bool"));

  // Absent keys and values that do not fit name the file and the key.
  auto missing = file->get_u32("testarch.absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);
  EXPECT_EQ(missing.error().message(), "rt.gguf: metadata key 'testarch.absent' not found");

  auto negative = file->get_u32("testarch.i8");
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code(), Errc::corrupt);
  EXPECT_NE(negative.error().message().find("'testarch.i8' (offset "), std::string::npos);
  EXPECT_NE(negative.error().message().find("-100 does not fit in a u32"), std::string::npos);

  EXPECT_FALSE(file->get_u32("testarch.u64").ok());
  EXPECT_FALSE(file->get_u64("testarch.i64").ok());
  EXPECT_FALSE(file->get_int("testarch.u64").ok());  // above INT64_MAX
  EXPECT_FALSE(file->get_bool("testarch.u8").ok());
  EXPECT_FALSE(file->get_float("testarch.string").ok());
  auto wrong = file->get_string("testarch.u32");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), Errc::corrupt);
  EXPECT_NE(wrong.error().message().find("rt.gguf: metadata key 'testarch.u32' (offset "),
            std::string::npos);
  EXPECT_NE(wrong.error().message().find("expected a string, found u32"), std::string::npos);
}

TEST(GgufRoundTrip, Arrays) {
  auto file = parse(every_type_model());
  ASSERT_TRUE(file);
  auto strings = file->get_string_array("testarch.strings");
  ASSERT_TRUE(strings.ok());
  ASSERT_EQ(strings->size(), 3u);
  EXPECT_EQ((*strings)[0], "a");
  EXPECT_EQ((*strings)[1], "");
  EXPECT_EQ((*strings)[2], "ccc");

  EXPECT_EQ(*file->get_float_array("testarch.f32s"), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(file->find("testarch.f64s")->floats(), (std::vector<double>{3.0, 1e-300}));
  EXPECT_EQ(*file->get_float_array("testarch.i32s"), (std::vector<float>{-1, 0, 7}));
  EXPECT_EQ(*file->get_int_array("testarch.i32s"), (std::vector<int64_t>{-1, 0, 7}));
  EXPECT_EQ(*file->get_int_array("testarch.u8s"), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(*file->get_int_array("testarch.i8s"), (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(*file->get_int_array("testarch.u16s"), (std::vector<int64_t>{65535}));
  EXPECT_EQ(*file->get_int_array("testarch.i16s"), (std::vector<int64_t>{-32768}));
  EXPECT_EQ(*file->get_int_array("testarch.u32s"), (std::vector<int64_t>{4294967295}));
  EXPECT_EQ(*file->get_int_array("testarch.u64s"), (std::vector<int64_t>{1, 9000000000000000000}));
  EXPECT_EQ(*file->get_int_array("testarch.i64s"), (std::vector<int64_t>{INT64_MIN, INT64_MAX}));
  const GgufValue* bools = file->find("testarch.bools");
  ASSERT_NE(bools, nullptr);
  EXPECT_EQ(bools->element_type(), GgufType::boolean);
  EXPECT_EQ(bools->ints(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_FALSE(file->get_int_array("testarch.bools").ok());

  const GgufValue* empty = file->find("testarch.empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_TRUE(empty->is_array());
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(empty->element_type(), GgufType::string);

  const GgufValue* nested = file->find("testarch.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type(), GgufType::array);
  ASSERT_EQ(nested->items().size(), 2u);
  EXPECT_EQ(nested->items()[0].element_type(), GgufType::i32);
  EXPECT_EQ(nested->items()[0].ints(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(nested->items()[1].size(), 0u);

  auto not_strings = file->get_string_array("testarch.i32s");
  ASSERT_FALSE(not_strings.ok());
  EXPECT_NE(not_strings.error().message().find("found array of i32"), std::string::npos);
  EXPECT_FALSE(file->get_float_array("testarch.strings").ok());
  EXPECT_FALSE(file->get_int_array("testarch.f32s").ok());
  EXPECT_FALSE(file->get_int_array("testarch.u32").ok());
}

TEST(GgufRoundTrip, MetadataKeepsInsertionOrderAndReplacesInPlace) {
  GgufWriter w;
  w.set_string("general.architecture", "x");
  w.set_u32("b", 1);
  w.set_u32("a", 2);
  w.set_string("b", "replaced");
  auto file = parse(w.serialize());
  ASSERT_TRUE(file);
  ASSERT_EQ(file->metadata().size(), 3u);
  EXPECT_EQ(file->metadata()[0].key, "general.architecture");
  EXPECT_EQ(file->metadata()[1].key, "b");
  EXPECT_EQ(file->metadata()[2].key, "a");
  EXPECT_EQ(*file->get_string("b"), "replaced");
  EXPECT_EQ(file->metadata()[0].offset, 24u);  // right after the 24-byte header
  EXPECT_EQ(file->find_entry("a")->offset, file->metadata()[2].offset);
}

TEST(GgufRoundTrip, TensorsOfSeveralTypes) {
  struct Spec {
    const char* name;
    GgmlType type;
    std::vector<uint64_t> dims;
  };
  const std::vector<Spec> specs = {
      {"f32", GgmlType::F32, {5, 3}},       {"f16", GgmlType::F16, {7}},
      {"bf16", GgmlType::BF16, {2, 2, 2}},  {"q8_0", GgmlType::Q8_0, {64, 3}},
      {"q4_0", GgmlType::Q4_0, {32, 1, 2}}, {"q5_0", GgmlType::Q5_0, {96}},
      {"q4_K", GgmlType::Q4_K, {512, 2}},   {"q6_K", GgmlType::Q6_K, {256, 1, 1, 3}},
      {"q5_K", GgmlType::Q5_K, {256}},      {"i32", GgmlType::I32, {3}},
  };
  GgufWriter w;
  w.set_string("general.architecture", "x");
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    uint64_t rows = 1;
    for (size_t d = 1; d < specs[i].dims.size(); ++d) rows *= specs[i].dims[d];
    data.push_back(pattern_bytes(ggml_row_bytes(specs[i].type, specs[i].dims[0]) * rows,
                                 static_cast<uint8_t>(i)));
    ASSERT_TRUE(w.add_tensor(specs[i].name, specs[i].type, specs[i].dims, data.back()).ok());
  }
  const std::vector<uint8_t> image = w.serialize();
  auto file = parse(image);
  ASSERT_TRUE(file);
  ASSERT_EQ(file->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    SCOPED_TRACE(specs[i].name);
    const GgufTensor& t = file->tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.dims, specs[i].dims);
    uint64_t elements = 1;
    for (uint64_t d : specs[i].dims) elements *= d;
    EXPECT_EQ(t.n_elements, elements);
    EXPECT_EQ(t.rows(), elements / specs[i].dims[0]);
    EXPECT_EQ(t.n_bytes, data[i].size());
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_GE(t.offset, file->data_offset());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u);
    EXPECT_EQ(std::memcmp(t.data, data[i].data(), data[i].size()), 0);
    EXPECT_EQ(std::memcmp(image.data() + t.offset, data[i].data(), data[i].size()), 0);
    EXPECT_EQ(file->find_tensor(specs[i].name), &t);
  }
  EXPECT_EQ(file->find_tensor("absent"), nullptr);
  // The file ends with the last tensor's last byte.
  const GgufTensor& last = file->tensors().back();
  EXPECT_EQ(last.offset + last.n_bytes, image.size());
}

TEST(GgufRoundTrip, CustomAlignment) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(alignment);
    GgufWriter w;
    w.set_string("general.architecture", "x");
    ASSERT_TRUE(w.set_alignment(alignment).ok());
    ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {3}, pattern_bytes(12, 1)).ok());
    ASSERT_TRUE(w.add_tensor("b", GgmlType::F16, {5}, pattern_bytes(10, 2)).ok());
    auto file = parse(w.serialize());
    ASSERT_TRUE(file);
    EXPECT_EQ(file->alignment(), alignment);
    EXPECT_EQ(*file->get_u32("general.alignment"), alignment);
    for (const GgufTensor& t : file->tensors()) {
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignment, 0u);
    }
  }
}

TEST(GgufRoundTrip, VersionTwoReadsLikeThree) {
  std::vector<uint8_t> image = every_type_model();
  image[4] = 2;
  auto file = parse(image);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->version(), 2u);
  EXPECT_EQ(file->tensors().size(), 3u);
}

TEST(GgufRoundTrip, NoTensors) {
  auto file = parse(testing::minimal_model());
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_EQ(file->metadata().size(), 1u);
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor("t", GgmlType::F32, {2}, pattern_bytes(8, 0)).ok());
  EXPECT_EQ(w.add_tensor("t", GgmlType::F32, {2}, pattern_bytes(8, 0)).error().code(),
            Errc::invalid_argument);
  EXPECT_FALSE(w.add_tensor("", GgmlType::F32, {2}, pattern_bytes(8, 0)).ok());
  EXPECT_FALSE(w.add_tensor("size", GgmlType::F32, {2}, pattern_bytes(7, 0)).ok());
  EXPECT_FALSE(w.add_tensor("rank0", GgmlType::F32, {}, {}).ok());
  EXPECT_FALSE(w.add_tensor("rank5", GgmlType::F32, {1, 1, 1, 1, 1}, pattern_bytes(4, 0)).ok());
  EXPECT_FALSE(w.add_tensor("zero", GgmlType::F32, {2, 0}, {}).ok());
  EXPECT_FALSE(w.add_tensor("block", GgmlType::Q8_0, {16}, pattern_bytes(17, 0)).ok());
  auto message = w.add_tensor("size2", GgmlType::Q8_0, {32}, pattern_bytes(33, 0));
  ASSERT_FALSE(message.ok());
  EXPECT_NE(message.error().message().find("takes 34"), std::string::npos);
  EXPECT_FALSE(w.set_alignment(0).ok());
  EXPECT_FALSE(w.set_alignment(24).ok());
  EXPECT_FALSE(w.set_int_array("k", GgufType::u8, {256}).ok());
  EXPECT_FALSE(w.set_int_array("k", GgufType::i8, {-129}).ok());
  EXPECT_FALSE(w.set_int_array("k", GgufType::string, {1}).ok());
}

}  // namespace
}  // namespace icam::llm
