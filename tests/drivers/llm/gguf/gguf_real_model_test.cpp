// Reads the real default model (Gemma 3 270M, Q4_K_M) when it is present. The file is located
// only through icam's configuration: $ICAM_MODEL, or $ICAM_HOME/models/gemma-3-270m-q4_k_m.gguf.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <set>

#include "common/config.h"
#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/model_info.h"

namespace icam::llm {
namespace {

class RealModel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = load_config();
    ASSERT_TRUE(config.ok()) << config.error().message();
    path_ = config->model;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path_, ec)) {
      GTEST_SKIP() << "real model not found at '" << path_
                   << "'; set ICAM_MODEL to a gemma-3-270m-q4_k_m.gguf to run this test";
    }
    auto file = GgufFile::open(path_);
    ASSERT_TRUE(file.ok()) << file.error().message();
    file_ = std::move(file).value();
  }

  std::string path_;
  std::unique_ptr<GgufFile> file_;
};

TEST_F(RealModel, Gemma3Metadata) {
  EXPECT_EQ(*file_->get_string("general.architecture"), "gemma3");
  EXPECT_EQ(*file_->get_u32("gemma3.block_count"), 18u);
  EXPECT_EQ(*file_->get_u32("gemma3.embedding_length"), 640u);
  EXPECT_EQ(*file_->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(file_->get_string_array("tokenizer.ggml.tokens")->size(), 262144u);
}

TEST_F(RealModel, TensorTypes) {
  std::set<std::string_view> types;
  for (const GgufTensor& t : file_->tensors()) {
    types.insert(ggml_type_name(t.type));
    EXPECT_LE(t.offset + t.n_bytes, file_->file_size());
  }
  for (const char* expected : {"q8_0", "q5_0", "q4_K", "q6_K", "f32"}) {
    EXPECT_TRUE(types.count(expected)) << expected;
  }
  EXPECT_NE(file_->find_tensor("token_embd.weight"), nullptr);
}

TEST_F(RealModel, Describe) {
  auto info = describe_model(*file_);
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->architecture, "gemma3");
  EXPECT_EQ(info->vocab_size, 262144u);
  EXPECT_EQ(info->tokenizer_model, "llama");
  EXPECT_GT(info->total_parameters, 200'000'000u);
  EXPECT_LT(info->total_parameters, 300'000'000u);
  EXPECT_LE(info->total_tensor_bytes, info->file_size);
  const nlohmann::json json = model_info_json(*info);
  EXPECT_EQ(json["hyperparameters"]["block_count"], 18);
  EXPECT_EQ(json["hyperparameters"]["embedding_length"], 640);
  // Printed so a person running the suite sees the report on the real file.
  std::cout << model_info_text(*info);
}

}  // namespace
}  // namespace icam::llm
