#include "drivers/llm/gguf/model_info.h"

#include <gtest/gtest.h>

#include "drivers/llm/gguf/gguf_writer.h"
#include "tests/drivers/llm/gguf/gguf_test_util.h"

namespace icam::llm {
namespace {

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& bytes) {
  auto file = GgufFile::from_bytes(bytes, "tiny.gguf");
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message());
  return file.ok() ? std::move(file).value() : nullptr;
}

const ModelHyperParameter* find_parameter(const ModelInfo& info, std::string_view key) {
  for (const ModelHyperParameter& p : info.hyperparameters) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

TEST(ModelInfo, DescribesATinyGemma3) {
  const std::vector<uint8_t> image = testing::tiny_gemma3_model();
  auto file = parse(image);
  ASSERT_TRUE(file);
  auto described = describe_model(*file);
  ASSERT_TRUE(described.ok()) << described.error().message();
  const ModelInfo& info = *described;

  EXPECT_EQ(info.path, "tiny.gguf");
  EXPECT_EQ(info.file_size, image.size());
  EXPECT_EQ(info.gguf_version, 3u);
  EXPECT_EQ(info.alignment, 32u);
  EXPECT_EQ(info.name, "Tiny Gemma 3");
  EXPECT_EQ(info.architecture, "gemma3");
  EXPECT_EQ(info.tokenizer_model, "llama");
  EXPECT_EQ(info.tokenizer_pre, "default");
  EXPECT_EQ(info.vocab_size, 16u);
  EXPECT_EQ(info.bos_id, 2);
  EXPECT_EQ(info.eos_id, 1);
  EXPECT_TRUE(info.has_chat_template);

  ASSERT_NE(find_parameter(info, "block_count"), nullptr);
  EXPECT_EQ(find_parameter(info, "block_count")->label, "layers");
  EXPECT_EQ(find_parameter(info, "block_count")->value, 1);
  EXPECT_EQ(find_parameter(info, "embedding_length")->value, 256);
  EXPECT_EQ(find_parameter(info, "attention.head_count_kv")->label, "key/value heads");
  EXPECT_EQ(find_parameter(info, "rope.freq_base")->value, 1000000.0);
  EXPECT_EQ(find_parameter(info, "attention.layer_norm_rms_epsilon")->value, 1e-6);
  EXPECT_EQ(find_parameter(info, "attention.sliding_window")->label, "sliding window");
  const ModelHyperParameter* pattern = find_parameter(info, "attention.layer_pattern");
  ASSERT_NE(pattern, nullptr);
  EXPECT_EQ(pattern->label, "");
  EXPECT_EQ(pattern->value["element_type"], "i32");
  EXPECT_EQ(pattern->value["length"], 3);
  EXPECT_EQ(pattern->value["head"], nlohmann::json({1, 1, 0}));
  EXPECT_EQ(find_parameter(info, "general.name"), nullptr);
  EXPECT_EQ(info.hyperparameters.size(), 12u);

  EXPECT_EQ(info.tensor_count, 7u);
  uint64_t bytes = 0;
  uint64_t elements = 0;
  for (const GgufTensor& t : file->tensors()) {
    bytes += t.n_bytes;
    elements += t.n_elements;
  }
  EXPECT_EQ(info.total_tensor_bytes, bytes);
  EXPECT_EQ(info.total_parameters, elements);
  ASSERT_EQ(info.tensor_types.size(), 7u);
  EXPECT_EQ(info.tensor_types[0].type, GgmlType::F32);  // 1 KiB, the largest
  EXPECT_EQ(info.tensor_types[0].bytes, 1024u);
  for (size_t i = 1; i < info.tensor_types.size(); ++i) {
    EXPECT_GE(info.tensor_types[i - 1].bytes, info.tensor_types[i].bytes);
    EXPECT_EQ(info.tensor_types[i].tensors, 1u);
  }
}

TEST(ModelInfo, Json) {
  auto file = parse(testing::tiny_gemma3_model());
  ASSERT_TRUE(file);
  const nlohmann::json json = model_info_json(*describe_model(*file));
  for (const char* key :
       {"path", "file_size", "gguf_version", "alignment", "data_offset", "metadata_count", "name",
        "architecture", "hyperparameters", "tokenizer", "tensor_types", "tensor_count",
        "total_parameters", "total_tensor_bytes"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  EXPECT_EQ(json["architecture"], "gemma3");
  EXPECT_EQ(json["hyperparameters"]["block_count"], 1);
  EXPECT_EQ(json["hyperparameters"]["context_length"], 128);
  EXPECT_EQ(json["tokenizer"]["model"], "llama");
  EXPECT_EQ(json["tokenizer"]["vocab_size"], 16);
  EXPECT_EQ(json["tokenizer"]["bos_id"], 2);
  EXPECT_EQ(json["tokenizer"]["has_chat_template"], true);
  EXPECT_EQ(json["tensor_types"][0]["type"], "f32");
  EXPECT_EQ(json["tensor_types"].size(), 7u);
  EXPECT_EQ(json["tensor_count"], 7);
  // f32 values are reported as the decimal they were written as.
  EXPECT_EQ(json["hyperparameters"]["attention.layer_norm_rms_epsilon"].dump(), "1e-06");
}

TEST(ModelInfo, Text) {
  auto file = parse(testing::tiny_gemma3_model());
  ASSERT_TRUE(file);
  const std::string text = model_info_text(*describe_model(*file));
  for (const char* fragment :
       {"architecture        gemma3\n", "name                Tiny Gemma 3\n", "layers",
        "block_count", "rope.freq_base", "1000000.0", "  model             llama\n",
        "  vocabulary        16 tokens", "  chat template     present\n", "q4_K", "q6_K", "q8_0",
        "q5_0", "bf16", "total", "bytes)", "i32[3] 1, 1, 0"}) {
    EXPECT_NE(text.find(fragment), std::string::npos) << "'" << fragment << "' missing from\n"
                                                      << text;
  }
}

TEST(ModelInfo, MissingArchitectureIsAnError) {
  GgufWriter w;
  w.set_string("general.name", "nameless");
  auto file = parse(w.serialize());
  ASSERT_TRUE(file);
  auto info = describe_model(*file);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code(), Errc::not_found);
  EXPECT_EQ(info.error().message(), "tiny.gguf: metadata key 'general.architecture' not found");

  GgufWriter empty;
  empty.set_string("general.architecture", "");
  auto empty_file = parse(empty.serialize());
  ASSERT_TRUE(empty_file);
  EXPECT_FALSE(describe_model(*empty_file).ok());
}

TEST(ModelInfo, WrongTypesForTokenizerKeysAreErrors) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("tokenizer.ggml.tokens", 5);
  auto file = parse(w.serialize());
  ASSERT_TRUE(file);
  auto info = describe_model(*file);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code(), Errc::corrupt);
  EXPECT_NE(info.error().message().find("'tokenizer.ggml.tokens'"), std::string::npos);
}

TEST(ModelInfo, MinimalModel) {
  auto file = parse(testing::minimal_model());
  ASSERT_TRUE(file);
  auto info = describe_model(*file);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->vocab_size, 0u);
  EXPECT_FALSE(info->bos_id.has_value());
  EXPECT_FALSE(info->has_chat_template);
  const nlohmann::json json = model_info_json(*info);
  EXPECT_TRUE(json["name"].is_null());
  EXPECT_TRUE(json["tokenizer"]["model"].is_null());
  EXPECT_TRUE(json["tensor_types"].empty());
  EXPECT_NE(model_info_text(*info).find("(none)"), std::string::npos);
}

TEST(ModelInfo, InvalidUtf8IsReplaced) {
  GgufWriter w;
  w.set_string("general.architecture", "arch");
  w.set_string("general.name", "bad \xFF\xC3 name");
  w.set_string("arch.note", "\xE0\x80\x80");  // overlong
  auto file = parse(w.serialize());
  ASSERT_TRUE(file);
  auto info = describe_model(*file);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->name, "bad \xEF\xBF\xBD\xEF\xBF\xBD name");
  EXPECT_NO_THROW(model_info_json(*info).dump());
  EXPECT_EQ(sanitize_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), "h\xC3\xA9llo \xF0\x9F\x98\x80");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

}  // namespace
}  // namespace icam::llm
