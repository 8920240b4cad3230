#include "drivers/llm/tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <vector>

namespace icam::llm {
namespace {

TEST(Utf8, ValidatesAndNamesTheOffset) {
  EXPECT_TRUE(validate_utf8("").ok());
  EXPECT_TRUE(validate_utf8("plain ascii").ok());
  EXPECT_TRUE(validate_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF").ok());
  EXPECT_TRUE(validate_utf8(std::string("nul\0inside", 10)).ok());

  const struct {
    std::string text;
    size_t offset;
  } bad[] = {
      {"\x80", 0},              // lone continuation byte
      {"ab\xC3", 2},            // truncated 2-byte sequence
      {"ab\xE2\x82", 2},        // truncated 3-byte sequence
      {"\xC0\xAF", 0},          // overlong '/'
      {"x\xE0\x80\xAF", 1},     // overlong 3-byte
      {"xy\xED\xA0\x80", 2},    // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},  // above U+10FFFF
      {"\xF5\x80\x80\x80", 0},  // invalid lead byte
      {"abc\xFF", 3},
      {"\xC3\xA9\xC3(", 2},  // second sequence broken
  };
  for (const auto& [text, offset] : bad) {
    const Status status = validate_utf8(text);
    ASSERT_FALSE(status.ok()) << "accepted invalid text at " << offset;
    EXPECT_EQ(status.error().code(), Errc::invalid_argument);
    EXPECT_NE(status.error().message().find("byte offset " + std::to_string(offset)),
              std::string::npos)
        << status.error().message();
  }
}

TEST(Utf8, DecodeAndEncode) {
  for (const uint32_t cp : std::vector<uint32_t>{0x0u, 0x41u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFDu,
                                                 0x10000u, 0x1F600u, 0x10FFFFu}) {
    std::string text;
    append_utf8(text, cp);
    EXPECT_TRUE(validate_utf8(text).ok());
    size_t pos = 0;
    EXPECT_EQ(decode_utf8(text, pos), cp);
    EXPECT_EQ(pos, text.size());
  }
}

TEST(Utf8, IncompletePrefixes) {
  EXPECT_TRUE(utf8_is_incomplete_prefix("\xE2", 0));
  EXPECT_TRUE(utf8_is_incomplete_prefix("\xE2\x82", 0));
  EXPECT_TRUE(utf8_is_incomplete_prefix("\xF0\x9F\x98", 0));
  EXPECT_FALSE(utf8_is_incomplete_prefix("\xE2\x82\xAC", 0));  // complete
  EXPECT_FALSE(
      utf8_is_incomplete_prefix("\xE2"
                                "a",
                                0));                       // broken
  EXPECT_FALSE(utf8_is_incomplete_prefix("\xED\xA0", 0));  // would be a surrogate
  EXPECT_FALSE(utf8_is_incomplete_prefix("\xFF", 0));
  EXPECT_FALSE(utf8_is_incomplete_prefix("a", 0));
}

TEST(UnicodeClasses, LettersNumbersSpaces) {
  for (const uint32_t cp : std::vector<uint32_t>{'a', 'Z', 0xE9u, 0x3B1u, 0x416u, 0x5D0u, 0x628u,
                                                 0x4E2Du, 0xAC00u, 0x3042u, 0x1D400u, 0x20000u}) {
    EXPECT_TRUE(is_letter(cp)) << std::hex << cp;
    EXPECT_FALSE(is_number(cp)) << std::hex << cp;
  }
  for (const uint32_t cp :
       std::vector<uint32_t>{'0', '9', 0xB2u, 0x661u, 0x2163u, 0xFF15u, 0x1D7CEu}) {
    EXPECT_TRUE(is_number(cp)) << std::hex << cp;
    EXPECT_FALSE(is_letter(cp)) << std::hex << cp;
  }
  for (const uint32_t cp :
       std::vector<uint32_t>{' ', '!', '_', 0x301u, 0x1F600u, 0x2581u, 0xFFFDu}) {
    EXPECT_FALSE(is_letter(cp)) << std::hex << cp;
    EXPECT_FALSE(is_number(cp)) << std::hex << cp;
  }
  for (const uint32_t cp : std::vector<uint32_t>{' ', '\t', '\n', '\r', 0x0Bu, 0x0Cu, 0x85u, 0xA0u,
                                                 0x2000u, 0x200Au, 0x2028u, 0x3000u}) {
    EXPECT_TRUE(is_whitespace(cp)) << std::hex << cp;
  }
  for (const uint32_t cp : std::vector<uint32_t>{'a', 0x200Bu, 0x1Cu, 0x2581u})
    EXPECT_FALSE(is_whitespace(cp));
}

TEST(ByteLevelMap, IsABijection) {
  EXPECT_EQ(byte_to_unicode('!'), uint32_t{'!'});
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);  // the last unprintable byte
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(unicode_to_byte(byte_to_unicode(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(unicode_to_byte(0x20), -1);
  EXPECT_EQ(unicode_to_byte(0x4E2D), -1);
}

}  // namespace
}  // namespace icam::llm
