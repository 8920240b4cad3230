// SentencePiece-style tokenization on the tiny vocabulary of tiny_vocab.cpp. Every expected id
// sequence is worked out by hand in the comment above it (▁ is U+2581, the space symbol).
#include <gtest/gtest.h>

#include "drivers/llm/tokenizer/tokenizer.h"
#include "tiny_vocab.h"

namespace icam::llm {
namespace {

using testing::load_tokenizer;
using testing::spm_byte;
using testing::spm_id;
using testing::tiny_spm_writer;
using Ids = std::vector<int32_t>;

const std::string kSpace = "\xE2\x96\x81";

class SpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    with_prefix_ = load_tokenizer(tiny_spm_writer(/*add_space_prefix=*/true));
    without_prefix_ = load_tokenizer(tiny_spm_writer(/*add_space_prefix=*/false));
    ASSERT_NE(with_prefix_, nullptr);
    ASSERT_NE(without_prefix_, nullptr);
  }

  static Ids encode(const Tokenizer& tokenizer, std::string_view text, bool add_bos = false,
                    bool parse_special = false) {
    auto ids = tokenizer.encode(text, add_bos, parse_special);
    EXPECT_TRUE(ids.ok()) << ids.error().message();
    return ids.ok() ? *ids : Ids{};
  }

  std::unique_ptr<Tokenizer> with_prefix_;
  std::unique_ptr<Tokenizer> without_prefix_;
};

TEST_F(SpmTest, Properties) {
  EXPECT_EQ(with_prefix_->kind(), "spm");
  EXPECT_EQ(with_prefix_->vocab_size(), 3 + 256 + 30);
  EXPECT_EQ(with_prefix_->bos(), 1);
  EXPECT_EQ(with_prefix_->eos(), 2);
  EXPECT_EQ(with_prefix_->unk(), 0);
  EXPECT_TRUE(with_prefix_->add_bos_default());
  EXPECT_FALSE(with_prefix_->add_eos_default());
  EXPECT_TRUE(with_prefix_->add_space_prefix());
  EXPECT_FALSE(without_prefix_->add_space_prefix());
  EXPECT_EQ(with_prefix_->find_token("hello"), spm_id("hello"));
  EXPECT_EQ(with_prefix_->find_token("nope"), -1);
  EXPECT_TRUE(with_prefix_->is_control(1));
  EXPECT_FALSE(with_prefix_->is_control(spm_id("<td>")));
  EXPECT_TRUE(with_prefix_->is_end_of_generation(2));
  EXPECT_TRUE(with_prefix_->is_end_of_generation(spm_id("<end_of_turn>")));
  EXPECT_FALSE(with_prefix_->is_end_of_generation(spm_id("<start_of_turn>")));
  EXPECT_FALSE(with_prefix_->is_end_of_generation(-1));
}

// "▁hello": bigrams ▁h(-5) he(-1) ll(-2) lo(-1.5). he merges first, then lo, which makes ll
// stale and offers llo(-3); llo merges, offering hello(-6); ▁h is stale; hello merges. Greedy by
// score gives [▁][hello] although ▁h would start a longer leftmost match.
TEST_F(SpmTest, MergesByHighestScore) {
  EXPECT_EQ(encode(*with_prefix_, "hello", /*add_bos=*/true),
            (Ids{1, spm_id(kSpace), spm_id("hello")}));
  EXPECT_EQ(encode(*with_prefix_, "hello"), (Ids{spm_id(kSpace), spm_id("hello")}));
}

// "▁abc": ab(-1) and bc(-1) tie; the leftmost wins, and "abc" is not a piece.
TEST_F(SpmTest, TiesGoToTheLeftmostPair) {
  EXPECT_EQ(encode(*with_prefix_, "abc"), (Ids{spm_id(kSpace), spm_id("ab"), spm_id("c")}));
  EXPECT_EQ(encode(*without_prefix_, "bcab"), (Ids{spm_id("bc"), spm_id("ab")}));
}

// "▁▁world": ▁w(-1) beats or(-1) by position; then ▁wor(-2), ld(-2.5), ▁world(-3); ▁▁(-4) is
// stale by then.
TEST_F(SpmTest, SpacesBecomeTheSpaceSymbol) {
  EXPECT_EQ(encode(*with_prefix_, " world"), (Ids{spm_id(kSpace), spm_id(kSpace + "world")}));
  // "hello▁world" without a prefix: he, ▁w, or, lo, ▁wor, ld, llo, ▁world, hello.
  EXPECT_EQ(encode(*without_prefix_, "hello world", /*add_bos=*/true),
            (Ids{1, spm_id("hello"), spm_id(kSpace + "world")}));
  EXPECT_EQ(encode(*without_prefix_, "  "), (Ids{spm_id(kSpace + kSpace)}));
}

TEST_F(SpmTest, UnknownCharactersFallBackToBytes) {
  EXPECT_EQ(encode(*without_prefix_, "\xC3\xA9"), (Ids{spm_byte(0xC3), spm_byte(0xA9)}));  // é
  EXPECT_EQ(encode(*without_prefix_, "\xE4\xB8\xAD"), (Ids{spm_id("\xE4\xB8\xAD")}));      // 中
  EXPECT_EQ(encode(*with_prefix_, "\xE2\x82\xAC"),                                         // €
            (Ids{spm_id(kSpace), spm_byte(0xE2), spm_byte(0x82), spm_byte(0xAC)}));
  EXPECT_EQ(encode(*without_prefix_, "x"), (Ids{spm_byte('x')}));
}

// User-defined tokens are split out even without parse_special, and the space prefix goes
// before every raw fragment that follows a special token.
TEST_F(SpmTest, UserDefinedTokensAreAlwaysWhole) {
  EXPECT_EQ(encode(*with_prefix_, "a\n\nb"),
            (Ids{spm_id(kSpace), spm_id("a"), spm_id("\n\n"), spm_id(kSpace), spm_id("b")}));
  EXPECT_EQ(encode(*without_prefix_, "a\n\nb"), (Ids{spm_id("a"), spm_id("\n\n"), spm_id("b")}));
  EXPECT_EQ(encode(*without_prefix_, "<td>a<td>"),
            (Ids{spm_id("<td>"), spm_id("a"), spm_id("<td>")}));
  // A single "\n" is not a piece: byte fallback. "\n\n\n" is the longest match first, then "\n".
  EXPECT_EQ(encode(*without_prefix_, "\n\n\n"), (Ids{spm_id("\n\n"), spm_byte('\n')}));
}

TEST_F(SpmTest, ControlTokensNeedParseSpecial) {
  // Without parse_special "<end_of_turn>" is plain text: no adjacent pair of its characters is a
  // piece, so each character is its piece or its byte.
  const Ids plain = {spm_id(kSpace), spm_byte('<'), spm_id("e"),   spm_byte('n'), spm_id("d"),
                     spm_byte('_'),  spm_id("o"),   spm_byte('f'), spm_byte('_'), spm_byte('t'),
                     spm_byte('u'),  spm_id("r"),   spm_byte('n'), spm_byte('>')};
  EXPECT_EQ(encode(*with_prefix_, "<end_of_turn>"), plain);
  EXPECT_EQ(encode(*with_prefix_, "<end_of_turn>", false, /*parse_special=*/true),
            (Ids{spm_id("<end_of_turn>")}));
  EXPECT_EQ(encode(*with_prefix_, "hello<end_of_turn>hello", /*add_bos=*/true, true),
            (Ids{1, spm_id(kSpace), spm_id("hello"), spm_id("<end_of_turn>"), spm_id(kSpace),
                 spm_id("hello")}));
  EXPECT_EQ(encode(*without_prefix_, "<start_of_turn>user<end_of_turn>", false, true),
            (Ids{spm_id("<start_of_turn>"), spm_byte('u'), spm_byte('s'), spm_id("e"), spm_id("r"),
                 spm_id("<end_of_turn>")}));
  // The BOS text is a control token too.
  EXPECT_EQ(encode(*without_prefix_, "<s>", false, true), (Ids{1}));
}

TEST_F(SpmTest, EmptyText) {
  EXPECT_EQ(encode(*with_prefix_, "", /*add_bos=*/true), (Ids{1}));
  EXPECT_EQ(encode(*with_prefix_, ""), Ids{});
}

TEST_F(SpmTest, DecodeAndPieces) {
  EXPECT_EQ(with_prefix_->token_piece(spm_id(kSpace + "world")), " world");
  EXPECT_EQ(with_prefix_->token_piece(spm_byte('A')), "A");
  EXPECT_EQ(with_prefix_->token_piece(spm_id("<start_of_turn>")), "<start_of_turn>");
  EXPECT_EQ(with_prefix_->token_piece(spm_id("<start_of_turn>"), /*skip_special=*/true), "");
  EXPECT_EQ(with_prefix_->token_piece(spm_id("<td>"), /*skip_special=*/true), "<td>");
  EXPECT_EQ(with_prefix_->token_piece(-1), "");
  EXPECT_EQ(with_prefix_->token_piece(1 << 20), "");

  const Ids ids = {1, spm_id(kSpace), spm_id("hello"), spm_id(kSpace + "world")};
  // The space prefix encode() added after BOS is dropped again.
  EXPECT_EQ(with_prefix_->decode(ids), "<s>hello world");
  EXPECT_EQ(with_prefix_->decode(ids, /*skip_special=*/true), "hello world");
  EXPECT_EQ(without_prefix_->decode(ids, true), " hello world");
  // Byte tokens assemble into characters.
  EXPECT_EQ(without_prefix_->decode(Ids{spm_byte(0xE2), spm_byte(0x82), spm_byte(0xAC)}),
            "\xE2\x82\xAC");
}

TEST_F(SpmTest, InvalidUtf8IsAnErrorNamingTheOffset) {
  auto ids = with_prefix_->encode("ab\xE2\x82", false, false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), Errc::invalid_argument);
  EXPECT_NE(ids.error().message().find("byte offset 2"), std::string::npos)
      << ids.error().message();
}

}  // namespace
}  // namespace icam::llm
