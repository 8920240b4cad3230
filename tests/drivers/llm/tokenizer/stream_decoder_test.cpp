#include "drivers/llm/tokenizer/stream_decoder.h"

#include <gtest/gtest.h>

#include "tiny_vocab.h"

namespace icam::llm {
namespace {

using testing::spm_byte;
using testing::spm_id;

class StreamDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing::load_tokenizer(testing::tiny_spm_writer(/*add_space_prefix=*/false));
    ASSERT_NE(tokenizer_, nullptr);
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(StreamDecoderTest, HoldsBackSplitCharacters) {
  // "€" (E2 82 AC) is not a piece: three byte tokens.
  const auto ids = *tokenizer_->encode(
      "a\xE2\x82\xAC"
      "b",
      false, false);
  ASSERT_EQ(ids, (std::vector<int32_t>{spm_id("a"), spm_byte(0xE2), spm_byte(0x82), spm_byte(0xAC),
                                       spm_id("b")}));
  StreamDecoder stream(*tokenizer_);
  EXPECT_EQ(stream.feed(ids[0]), "a");
  EXPECT_EQ(stream.feed(ids[1]), "");
  EXPECT_TRUE(stream.has_pending());
  EXPECT_EQ(stream.feed(ids[2]), "");
  EXPECT_EQ(stream.feed(ids[3]), "\xE2\x82\xAC");
  EXPECT_FALSE(stream.has_pending());
  EXPECT_EQ(stream.feed(ids[4]), "b");
  EXPECT_EQ(stream.finish(), "");
}

TEST_F(StreamDecoderTest, FourByteCharacter) {
  StreamDecoder stream(*tokenizer_);
  std::string out;
  for (const uint8_t byte : {0xF0, 0x9F, 0x98, 0x80}) {
    out += stream.feed(spm_byte(byte));
    if (byte != 0x80) {
      EXPECT_EQ(out, "");
    }
  }
  EXPECT_EQ(out, "\xF0\x9F\x98\x80");
}

TEST_F(StreamDecoderTest, InvalidBytesBecomeReplacementCharacters) {
  StreamDecoder stream(*tokenizer_);
  // 0xFF can never start a character: replaced at once.
  EXPECT_EQ(stream.feed(spm_byte(0xFF)), "\xEF\xBF\xBD");
  // E2 followed by 'a' is a broken sequence: E2 is replaced when 'a' arrives.
  EXPECT_EQ(stream.feed(spm_byte(0xE2)), "");
  EXPECT_EQ(stream.feed(spm_id("a")),
            "\xEF\xBF\xBD"
            "a");
  // A sequence cut off by the end of the stream.
  EXPECT_EQ(stream.feed(spm_byte(0xE2)), "");
  EXPECT_EQ(stream.feed(spm_byte(0x82)), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_FALSE(stream.has_pending());
}

TEST_F(StreamDecoderTest, SkipsControlTokensByDefault) {
  StreamDecoder stream(*tokenizer_);
  EXPECT_EQ(stream.feed(tokenizer_->bos()), "");
  EXPECT_EQ(stream.feed(spm_id("<end_of_turn>")), "");
  EXPECT_EQ(stream.feed(spm_id("<td>")), "<td>");
  StreamDecoder raw(*tokenizer_, /*skip_special=*/false);
  EXPECT_EQ(raw.feed(spm_id("<end_of_turn>")), "<end_of_turn>");
}

TEST_F(StreamDecoderTest, DropsTheSpacePrefixLikeDecode) {
  auto tokenizer = testing::load_tokenizer(testing::tiny_spm_writer(/*add_space_prefix=*/true));
  const auto ids = *tokenizer->encode("hello world", /*add_bos=*/true, false);
  StreamDecoder stream(*tokenizer);
  std::string out;
  for (const int32_t id : ids) out += stream.feed(id);
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(tokenizer->decode(ids, /*skip_special=*/true), "hello world");
}

}  // namespace
}  // namespace icam::llm
