#include "tiny_vocab.h"

#include <gtest/gtest.h>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm::testing {
namespace {

std::string hex_byte_token(int byte) {
  static const char* const kHex = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
}

// Scores are chosen so that greedy merging by score differs from longest match (see
// spm_test.cpp for the worked examples).
const std::vector<TinyToken>& spm_pieces() {
  static const std::vector<TinyToken> pieces = {
      {"\xE2\x96\x81", -1.0f},  // "▁"
      {"a", -2.0f},
      {"b", -2.0f},
      {"c", -2.0f},
      {"d", -2.0f},
      {"e", -2.0f},
      {"h", -2.0f},
      {"l", -2.0f},
      {"o", -2.0f},
      {"r", -2.0f},
      {"w", -2.0f},
      {"he", -1.0f},
      {"ll", -2.0f},
      {"lo", -1.5f},
      {"llo", -3.0f},
      {"hello", -6.0f},
      {"\xE2\x96\x81h", -5.0f},  // "▁h"
      {"ab", -1.0f},
      {"bc", -1.0f},
      {"\xE2\x96\x81\xE2\x96\x81", -4.0f},  // "▁▁"
      {"\xE2\x96\x81w", -1.0f},             // "▁w"
      {"or", -1.0f},
      {"\xE2\x96\x81wor", -2.0f},  // "▁wor"
      {"ld", -2.5f},
      {"\xE2\x96\x81world", -3.0f},  // "▁world"
      {"\xE4\xB8\xAD", -2.0f},       // "中"
      {"\n\n", -1000.0f, TokenType::user_defined},
      {"<td>", -1000.0f, TokenType::user_defined},
      {"<start_of_turn>", -1000.0f, TokenType::control},
      {"<end_of_turn>", -1000.0f, TokenType::control},
  };
  return pieces;
}

std::vector<TinyToken> spm_tokens() {
  std::vector<TinyToken> tokens = {
      {"<unk>", 0.0f, TokenType::unknown},
      {"<s>", 0.0f, TokenType::control},
      {"</s>", 0.0f, TokenType::control},
  };
  for (int b = 0; b < 256; ++b) tokens.push_back({hex_byte_token(b), 0.0f, TokenType::byte});
  for (const TinyToken& piece : spm_pieces()) tokens.push_back(piece);
  return tokens;
}

std::string mapped(std::string_view bytes) {
  std::string out;
  append_byte_encoded(out, bytes);
  return out;
}

std::vector<TinyToken> bpe_tokens() {
  std::vector<TinyToken> tokens;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back({mapped(std::string(1, static_cast<char>(b))), 0.0f, TokenType::normal});
  }
  for (const char* piece :
       {"he", "ll", "hell", "hello", " w", "or", " wor", " worl", " world", "  ", "hi"}) {
    tokens.push_back({mapped(piece), 0.0f, TokenType::normal});
  }
  tokens.push_back({"<|endoftext|>", 0.0f, TokenType::control});
  tokens.push_back({"<|im_start|>", 0.0f, TokenType::control});
  tokens.push_back({"<|im_end|>", 0.0f, TokenType::control});
  return tokens;
}

std::vector<std::string> bpe_merges() {
  std::vector<std::string> merges;
  for (const auto& [left, right] : std::vector<std::pair<std::string, std::string>>{{"h", "e"},
                                                                                    {"l", "l"},
                                                                                    {"he", "ll"},
                                                                                    {"hell", "o"},
                                                                                    {" ", "w"},
                                                                                    {"o", "r"},
                                                                                    {" w", "or"},
                                                                                    {" wor", "l"},
                                                                                    {" worl", "d"},
                                                                                    {" ", " "}}) {
    merges.push_back(mapped(left) + " " + mapped(right));
  }
  return merges;
}

int32_t index_of(const std::vector<TinyToken>& tokens, const std::string& text) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].text == text) return static_cast<int32_t>(i);
  }
  ADD_FAILURE() << "no token '" << text << "' in the tiny vocabulary";
  return -1;
}

}  // namespace

void write_vocab(GgufWriter& writer, const std::string& model,
                 const std::vector<TinyToken>& tokens) {
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const TinyToken& token : tokens) {
    texts.push_back(token.text);
    scores.push_back(token.score);
    types.push_back(static_cast<int32_t>(token.type));
  }
  writer.set_string("tokenizer.ggml.model", model);
  writer.set_string_array("tokenizer.ggml.tokens", texts);
  writer.set_f32_array("tokenizer.ggml.scores", scores);
  writer.set_i32_array("tokenizer.ggml.token_type", types);
}

std::unique_ptr<GgufFile> open_image(const GgufWriter& writer) {
  const std::vector<uint8_t> image = writer.serialize();
  auto file = GgufFile::from_bytes(image, "tiny.gguf");
  EXPECT_TRUE(file.ok()) << file.error().message();
  if (!file.ok()) return nullptr;
  return std::move(file).value();
}

GgufWriter tiny_spm_writer(bool add_space_prefix) {
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  write_vocab(writer, "llama", spm_tokens());
  writer.set_u32("tokenizer.ggml.bos_token_id", 1);
  writer.set_u32("tokenizer.ggml.eos_token_id", 2);
  writer.set_u32("tokenizer.ggml.unknown_token_id", 0);
  writer.set_bool("tokenizer.ggml.add_bos_token", true);
  writer.set_bool("tokenizer.ggml.add_eos_token", false);
  writer.set_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  return writer;
}

int32_t spm_id(const std::string& text) {
  return index_of(spm_tokens(), text);
}

GgufWriter tiny_bpe_writer(const std::string& pre) {
  GgufWriter writer;
  writer.set_string("general.architecture", "qwen2");
  write_vocab(writer, "gpt2", bpe_tokens());
  writer.set_string("tokenizer.ggml.pre", pre);
  writer.set_string_array("tokenizer.ggml.merges", bpe_merges());
  const int32_t eot = index_of(bpe_tokens(), "<|endoftext|>");
  writer.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(eot));
  writer.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eot));
  writer.set_bool("tokenizer.ggml.add_bos_token", false);
  return writer;
}

int32_t bpe_id(const std::string& text) {
  const auto tokens = bpe_tokens();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].text == text || tokens[i].text == mapped(text)) return static_cast<int32_t>(i);
  }
  ADD_FAILURE() << "no token '" << text << "' in the tiny BPE vocabulary";
  return -1;
}

std::unique_ptr<Tokenizer> load_tokenizer(const GgufWriter& writer) {
  auto file = open_image(writer);
  if (!file) return nullptr;
  auto tokenizer = Tokenizer::from_gguf(*file);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.error().message();
  if (!tokenizer.ok()) return nullptr;
  return std::move(tokenizer).value();
}

}  // namespace icam::llm::testing
