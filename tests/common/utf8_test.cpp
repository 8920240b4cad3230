#include "common/utf8.h"

#include <gtest/gtest.h>

namespace icam {
namespace {

TEST(Utf8, ValidTextIsUnchanged) {
  for (const char* s : {"", "plain ascii", "caf\xC3\xA9", "\xE2\x82\xAC 5", "\xF0\x9F\x98\x80!"}) {
    EXPECT_TRUE(is_valid_utf8(s)) << s;
    EXPECT_EQ(sanitize_utf8(s), s);
  }
}

TEST(Utf8, EachInvalidByteBecomesOneReplacementCharacter) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(sanitize_utf8("a\x97" "b"), "a" + r + "b");           // stray continuation byte
  EXPECT_EQ(sanitize_utf8("\xC3"), r);                            // truncated character
  EXPECT_EQ(sanitize_utf8("\xE2\x82" "x"), r + r + "x");          // truncated, then ASCII
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), r + r);                    // overlong '/'
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), r + r + r);            // a surrogate
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), r + r + r + r);    // above U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xFF"), r);
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\x80\xC3\xE2\x82\xF0\x9F\x98")));
}

}  // namespace
}  // namespace icam
