// Tokenizer::from_gguf rejects malformed or unsupported tokenizer metadata with clear errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "drivers/llm/tokenizer/tokenizer.h"
#include "tiny_vocab.h"

namespace icam::llm {
namespace {

using testing::open_image;
using testing::TinyToken;

// Loads and expects failure with `code` and a message containing `needle`.
void expect_load_error(const GgufWriter& writer, Errc code, const std::string& needle) {
  auto file = open_image(writer);
  ASSERT_NE(file, nullptr);
  auto tokenizer = Tokenizer::from_gguf(*file);
  ASSERT_FALSE(tokenizer.ok()) << "loaded; expected an error containing '" << needle << "'";
  EXPECT_EQ(tokenizer.error().code(), code) << tokenizer.error().message();
  EXPECT_NE(tokenizer.error().message().find(needle), std::string::npos)
      << tokenizer.error().message();
  EXPECT_NE(tokenizer.error().message().find("tiny.gguf"), std::string::npos)
      << "errors name the file: " << tokenizer.error().message();
}

GgufWriter small_spm() {
  GgufWriter writer;
  testing::write_vocab(writer, "llama",
                       {{"<unk>", 0, TokenType::unknown},
                        {"<s>", 0, TokenType::control},
                        {"</s>", 0, TokenType::control},
                        {"a", -1}});
  return writer;
}

TEST(TokenizerLoad, SmallVocabularyUsesDefaults) {
  auto tokenizer = testing::load_tokenizer(small_spm());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->bos(), 1);
  EXPECT_EQ(tokenizer->eos(), 2);
  EXPECT_EQ(tokenizer->unk(), 0);
  EXPECT_TRUE(tokenizer->add_bos_default());
  EXPECT_TRUE(tokenizer->add_space_prefix());
  // No byte pieces: each byte of a character outside the vocabulary becomes <unk>; "b" is
  // "▁b", four bytes, neither character a piece.
  EXPECT_EQ(*tokenizer->encode("b", false, false), (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_EQ(*tokenizer->encode("a", false, false), (std::vector<int32_t>{0, 0, 0, 3}));
}

TEST(TokenizerLoad, UnsupportedModelNamesIt) {
  GgufWriter writer = small_spm();
  writer.set_string("tokenizer.ggml.model", "bert");
  expect_load_error(writer, Errc::unsupported, "'bert'");
}

TEST(TokenizerLoad, MissingTokenizer) {
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  expect_load_error(writer, Errc::not_found, "tokenizer.ggml.model");
}

TEST(TokenizerLoad, ArraysOfDifferentLengths) {
  GgufWriter writer = small_spm();
  writer.set_f32_array("tokenizer.ggml.scores", {0, 0, 0});
  expect_load_error(writer, Errc::corrupt, "tokenizer.ggml.scores has 3 entries");
  writer = small_spm();
  writer.set_i32_array("tokenizer.ggml.token_type", {1, 1});
  expect_load_error(writer, Errc::corrupt, "tokenizer.ggml.token_type has 2 entries");
}

TEST(TokenizerLoad, UnknownTokenType) {
  GgufWriter writer = small_spm();
  writer.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 9});
  expect_load_error(writer, Errc::corrupt, "token_type[3] = 9");
}

TEST(TokenizerLoad, SpecialIdOutOfRange) {
  GgufWriter writer = small_spm();
  writer.set_u32("tokenizer.ggml.eos_token_id", 4);
  expect_load_error(writer, Errc::corrupt, "tokenizer.ggml.eos_token_id = 4 is outside");
}

TEST(TokenizerLoad, DuplicateTokenText) {
  GgufWriter writer;
  testing::write_vocab(writer, "llama", {{"<unk>"}, {"<s>"}, {"</s>"}, {"a"}, {"a"}});
  expect_load_error(writer, Errc::corrupt, "ids 3 and 4");
}

TEST(TokenizerLoad, AddBosWithoutBos) {
  GgufWriter writer;
  testing::write_vocab(writer, "gpt2", {{"a"}, {"b"}});
  writer.set_string_array("tokenizer.ggml.merges", {"a b"});
  writer.set_bool("tokenizer.ggml.add_bos_token", true);
  expect_load_error(writer, Errc::corrupt, "add_bos_token is true");
}

TEST(TokenizerLoad, BpeNeedsMerges) {
  GgufWriter writer;
  testing::write_vocab(writer, "gpt2", {{"a"}, {"b"}});
  expect_load_error(writer, Errc::not_found, "tokenizer.ggml.merges");
  writer.set_string_array("tokenizer.ggml.merges", {"a b", "ab"});
  expect_load_error(writer, Errc::corrupt, "merge 1 ('ab')");
}

TEST(TokenizerLoad, UnsupportedPreTokenizerNamesIt) {
  GgufWriter writer;
  testing::write_vocab(writer, "gpt2", {{"a"}, {"b"}});
  writer.set_string_array("tokenizer.ggml.merges", {"a b"});
  writer.set_string("tokenizer.ggml.pre", "deepseek-coder");
  expect_load_error(writer, Errc::unsupported, "'deepseek-coder'");
}

TEST(TokenizerLoad, WrongValueTypes) {
  GgufWriter writer = small_spm();
  writer.set_u32("tokenizer.ggml.tokens", 7);
  expect_load_error(writer, Errc::corrupt, "tokenizer.ggml.tokens");
}

// As in llama.cpp, end-of-turn and similar texts are control tokens whatever their type in the
// file: "</s>" typed user-defined (as in Gemma 3) is then split out only with parse_special.
TEST(TokenizerLoad, EndOfTurnTextsBecomeControl) {
  GgufWriter writer;
  testing::write_vocab(writer, "llama",
                       {{"<unk>", 0, TokenType::unknown},
                        {"<s>", 0, TokenType::control},
                        {"<eos>", 0, TokenType::control},
                        {"<end_of_turn>", 0, TokenType::normal},
                        {"</s>", 0, TokenType::user_defined},
                        {"x", 0, TokenType::normal}});
  writer.set_u32("tokenizer.ggml.eos_token_id", 2);
  writer.set_bool("tokenizer.ggml.add_space_prefix", false);
  auto tokenizer = testing::load_tokenizer(writer);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_TRUE(tokenizer->is_control(3));
  EXPECT_TRUE(tokenizer->is_end_of_generation(3));
  EXPECT_EQ(tokenizer->decode(std::vector<int32_t>{3}, /*skip_special=*/true), "");
  EXPECT_TRUE(tokenizer->is_control(4));
  EXPECT_FALSE(tokenizer->is_end_of_generation(4));
  EXPECT_EQ(*tokenizer->encode("x</s>", false, /*parse_special=*/true),
            (std::vector<int32_t>{5, 4}));
  const auto plain = *tokenizer->encode("x</s>", false, /*parse_special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 4), 0);
}

}  // namespace
}  // namespace icam::llm
