// Byte-level BPE on the tiny vocabulary of tiny_vocab.cpp (ids 0..255 are the mapped single
// bytes, so a lone character's id is its byte value). Expected ids are worked out by hand.
#include <gtest/gtest.h>

#include "drivers/llm/tokenizer/tokenizer.h"
#include "tiny_vocab.h"

namespace icam::llm {
namespace {

using testing::bpe_id;
using testing::load_tokenizer;
using testing::tiny_bpe_writer;
using Ids = std::vector<int32_t>;

Ids encode(const Tokenizer& tokenizer, std::string_view text, bool add_bos = false,
           bool parse_special = false) {
  auto ids = tokenizer.encode(text, add_bos, parse_special);
  EXPECT_TRUE(ids.ok()) << ids.error().message();
  return ids.ok() ? *ids : Ids{};
}

TEST(BpeTest, Properties) {
  auto tokenizer = load_tokenizer(tiny_bpe_writer("qwen2"));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->kind(), "bpe");
  EXPECT_EQ(tokenizer->pre_tokenizer(), "qwen2");
  EXPECT_EQ(tokenizer->vocab_size(), 256 + 11 + 3);
  EXPECT_FALSE(tokenizer->add_bos_default());
  EXPECT_FALSE(tokenizer->add_space_prefix());
  EXPECT_TRUE(tokenizer->is_end_of_generation(bpe_id("<|endoftext|>")));
  EXPECT_TRUE(tokenizer->is_end_of_generation(bpe_id("<|im_end|>")));
  EXPECT_FALSE(tokenizer->is_end_of_generation(bpe_id("<|im_start|>")));
  EXPECT_TRUE(tokenizer->is_control(bpe_id("<|im_start|>")));
  // A "llama-bpe" vocabulary adds BOS unless the file says otherwise; this one says not to.
  EXPECT_FALSE(load_tokenizer(tiny_bpe_writer("llama-bpe"))->add_bos_default());
}

// "hello": h e(rank 0) -> he; l l(1) -> ll; he ll(2) -> hell; hell o(3) -> hello.
// " world" (its own word): Ġ w(4), o r(5), Ġw or(6), Ġwor l(7), Ġworl d(8).
TEST(BpeTest, MergesByRank) {
  for (const char* pre : {"gpt2", "llama-bpe", "qwen2"}) {
    auto tokenizer = load_tokenizer(tiny_bpe_writer(pre));
    ASSERT_NE(tokenizer, nullptr);
    EXPECT_EQ(encode(*tokenizer, "hello world"), (Ids{bpe_id("hello"), bpe_id(" world")})) << pre;
    // The two "l l" pairs tie on rank; the leftmost merges and "ll l" is no merge.
    EXPECT_EQ(encode(*tokenizer, "lll"), (Ids{bpe_id("ll"), 'l'})) << pre;
    // é is bytes C3 A9, mapped to "Ã©"; no merge applies to them.
    EXPECT_EQ(encode(*tokenizer, "h\xC3\xA9llo"), (Ids{'h', 0xC3, 0xA9, bpe_id("ll"), 'o'})) << pre;
  }
}

// GPT-2 splits "a   b" into "a", "  ", " b": the whitespace run keeps its last space for "b".
TEST(BpeTest, WhitespaceRuns) {
  auto tokenizer = load_tokenizer(tiny_bpe_writer("gpt2"));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(encode(*tokenizer, "a   b"), (Ids{'a', bpe_id("  "), ' ', 'b'}));
  EXPECT_EQ(encode(*tokenizer, "\n\t"), (Ids{'\n', '\t'}));
}

// Llama 3 takes a word that is itself a piece whole; there is no merge "h i".
TEST(BpeTest, Llama3IgnoresMergesForWholeWords) {
  EXPECT_EQ(encode(*load_tokenizer(tiny_bpe_writer("llama-bpe")), "hi"), (Ids{bpe_id("hi")}));
  EXPECT_EQ(encode(*load_tokenizer(tiny_bpe_writer("gpt2")), "hi"), (Ids{'h', 'i'}));
}

TEST(BpeTest, SpecialTokens) {
  auto tokenizer = load_tokenizer(tiny_bpe_writer("qwen2"));
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "<|im_start|>user\nhello<|im_end|>";
  EXPECT_EQ(encode(*tokenizer, text, false, /*parse_special=*/true),
            (Ids{bpe_id("<|im_start|>"), 'u', 's', 'e', 'r', '\n', bpe_id("hello"),
                 bpe_id("<|im_end|>")}));
  const Ids plain = encode(*tokenizer, text);
  for (const int32_t id : plain) EXPECT_FALSE(tokenizer->is_control(id));
  EXPECT_EQ(tokenizer->decode(plain), text);
  EXPECT_EQ(encode(*tokenizer, "hi", /*add_bos=*/true), (Ids{bpe_id("<|endoftext|>"), 'h', 'i'}));
}

TEST(BpeTest, Decode) {
  auto tokenizer = load_tokenizer(tiny_bpe_writer("gpt2"));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->decode(Ids{bpe_id("hello"), bpe_id(" world")}), "hello world");
  EXPECT_EQ(tokenizer->token_piece(' '), " ");
  EXPECT_EQ(tokenizer->token_piece(0xC3), "\xC3");
  EXPECT_EQ(tokenizer->token_piece(bpe_id("  ")), "  ");
  EXPECT_EQ(tokenizer->decode(Ids{bpe_id("<|im_start|>"), 'h', 'i'}), "<|im_start|>hi");
  EXPECT_EQ(tokenizer->decode(Ids{bpe_id("<|im_start|>"), 'h', 'i'}, /*skip_special=*/true), "hi");
}

}  // namespace
}  // namespace icam::llm
