// decode(encode(s)) == s for a few hundred varied strings, on every tiny vocabulary and with
// and without parsing special tokens.
#include <gtest/gtest.h>

#include "drivers/llm/tokenizer/stream_decoder.h"
#include "drivers/llm/tokenizer/tokenizer.h"
#include "tiny_vocab.h"
#include "unicode_corpus.h"

namespace icam::llm {
namespace {

void expect_round_trips(const Tokenizer& tokenizer, const std::string& label) {
  size_t checked = 0;
  for (const std::string& text : testing::unicode_corpus()) {
    for (const bool parse_special : {false, true}) {
      auto ids = tokenizer.encode(text, /*add_bos=*/true, parse_special);
      ASSERT_TRUE(ids.ok()) << label << ": " << ids.error().message();
      std::span<const int32_t> body(*ids);
      if (tokenizer.bos() >= 0) {
        ASSERT_FALSE(body.empty());
        EXPECT_EQ(body.front(), tokenizer.bos());
        body = body.subspan(1);
      }
      EXPECT_EQ(tokenizer.decode(body), text) << label << " parse_special=" << parse_special;
      // Streaming the same ids yields the same text, since it is valid UTF-8.
      StreamDecoder stream(tokenizer, /*skip_special=*/false);
      std::string streamed;
      for (const int32_t id : body) streamed += stream.feed(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, text) << label << " (streamed)";
      ++checked;
    }
  }
  EXPECT_GE(checked, 600u);
}

TEST(RoundTrip, SpmWithSpacePrefix) {
  auto tokenizer = testing::load_tokenizer(testing::tiny_spm_writer(true));
  ASSERT_NE(tokenizer, nullptr);
  expect_round_trips(*tokenizer, "spm+prefix");
}

TEST(RoundTrip, SpmWithoutSpacePrefix) {
  auto tokenizer = testing::load_tokenizer(testing::tiny_spm_writer(false));
  ASSERT_NE(tokenizer, nullptr);
  expect_round_trips(*tokenizer, "spm");
}

TEST(RoundTrip, BpeEveryPreTokenizer) {
  for (const char* pre : {"gpt2", "llama-bpe", "qwen2"}) {
    auto tokenizer = testing::load_tokenizer(testing::tiny_bpe_writer(pre));
    ASSERT_NE(tokenizer, nullptr);
    expect_round_trips(*tokenizer, pre);
  }
}

// U+2581 is SentencePiece's own space symbol: it encodes like a space and decodes as one. BPE
// vocabularies have no such symbol and keep it.
TEST(RoundTrip, SpaceSymbolDecodesAsSpaceInSpm) {
  const std::string text =
      "a\xE2\x96\x81"
      "b";
  auto spm = testing::load_tokenizer(testing::tiny_spm_writer(false));
  EXPECT_EQ(spm->decode(*spm->encode(text, false, false)), "a b");
  EXPECT_EQ(*spm->encode(text, false, false), *spm->encode("a b", false, false));
  auto bpe = testing::load_tokenizer(testing::tiny_bpe_writer("gpt2"));
  EXPECT_EQ(bpe->decode(*bpe->encode(text, false, false)), text);
}

}  // namespace
}  // namespace icam::llm
