// The hand-written pre-tokenizer scanners against splits worked out from their patterns.
#include "drivers/llm/tokenizer/pretokenize.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace icam::llm {
namespace {

using Words = std::vector<std::string>;

Words split(PreTokenizer kind, std::string_view text) {
  std::vector<std::string_view> views;
  pretokenize(kind, text, views);
  Words words(views.begin(), views.end());
  std::string joined;
  for (const auto& w : words) {
    EXPECT_FALSE(w.empty());
    joined += w;
  }
  EXPECT_EQ(joined, text) << "words must cover the text exactly";
  return words;
}

TEST(PreTokenizerNames, Known) {
  EXPECT_EQ(pretokenizer_from_name("gpt2"), PreTokenizer::gpt2);
  EXPECT_EQ(pretokenizer_from_name("gpt-2"), PreTokenizer::gpt2);
  EXPECT_EQ(pretokenizer_from_name("default"), PreTokenizer::gpt2);
  EXPECT_EQ(pretokenizer_from_name(""), PreTokenizer::gpt2);
  EXPECT_EQ(pretokenizer_from_name("llama-bpe"), PreTokenizer::llama3);
  EXPECT_EQ(pretokenizer_from_name("llama3"), PreTokenizer::llama3);
  EXPECT_EQ(pretokenizer_from_name("qwen2"), PreTokenizer::qwen2);
  EXPECT_EQ(pretokenizer_from_name("deepseek-llm"), std::nullopt);
  EXPECT_EQ(pretokenizer_name(PreTokenizer::qwen2), "qwen2");
}

TEST(Gpt2PreTokenizer, Splits) {
  const auto k = PreTokenizer::gpt2;
  EXPECT_EQ(split(k, "Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split(k, "I'm here's"), (Words{"I", "'m", " here", "'s"}));
  EXPECT_EQ(split(k, "we'll've'd"), (Words{"we", "'ll", "'ve", "'d"}));
  EXPECT_EQ(split(k, "I'M"), (Words{"I", "'", "M"}));  // contractions are lower case only
  EXPECT_EQ(split(k, "abc123 4"), (Words{"abc", "123", " 4"}));
  EXPECT_EQ(split(k, "a  b"), (Words{"a", " ", " b"}));
  EXPECT_EQ(split(k, "a \n b"), (Words{"a", " \n", " b"}));
  EXPECT_EQ(split(k, "x  "), (Words{"x", "  "}));
  EXPECT_EQ(split(k, "!!! ?"), (Words{"!!!", " ?"}));
  EXPECT_EQ(split(k, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E text"),  // 日本語
            (Words{"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", " text"}));
  EXPECT_EQ(split(k, "\xD9\xA1\xD9\xA2\xD9\xA3!"),
            (Words{"\xD9\xA1\xD9\xA2\xD9\xA3", "!"}));  // ١٢٣
  EXPECT_EQ(split(k, "\tx"), (Words{"\t", "x"}));
  EXPECT_EQ(split(k, ""), Words{});
}

TEST(Llama3PreTokenizer, Splits) {
  const auto k = PreTokenizer::llama3;
  EXPECT_EQ(split(k, "Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split(k, "I'M HE'S"), (Words{"I", "'M", " HE", "'S"}));
  EXPECT_EQ(split(k, "12345"), (Words{"123", "45"}));
  EXPECT_EQ(split(k, " 123"), (Words{" ", "123"}));
  EXPECT_EQ(split(k, "(hello)"), (Words{"(hello", ")"}));
  EXPECT_EQ(split(k, "a\n\nb"), (Words{"a", "\n\n", "b"}));
  EXPECT_EQ(split(k, "a \n b"), (Words{"a", " \n", " b"}));
  EXPECT_EQ(split(k, "hi  there"), (Words{"hi", " ", " there"}));
  EXPECT_EQ(split(k, "x!!\n\ny"), (Words{"x", "!!\n\n", "y"}));
  EXPECT_EQ(split(k, "x ..."), (Words{"x", " ..."}));
  EXPECT_EQ(split(k, "\tword"), (Words{"\tword"}));
  EXPECT_EQ(split(k, "end   "), (Words{"end", "   "}));
  EXPECT_EQ(split(k, "\n word"), (Words{"\n", " word"}));
  EXPECT_EQ(split(k, "caf\xC3\xA9 \xF0\x9F\x98\x80!"),  // café 😀!
            (Words{"caf\xC3\xA9", " \xF0\x9F\x98\x80!"}));
}

TEST(Qwen2PreTokenizer, OneDigitPerWord) {
  EXPECT_EQ(split(PreTokenizer::qwen2, "12345"), (Words{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split(PreTokenizer::qwen2, "x 42"), (Words{"x", " ", "4", "2"}));
  EXPECT_EQ(split(PreTokenizer::qwen2, "it's"), (Words{"it", "'s"}));
}

}  // namespace
}  // namespace icam::llm
