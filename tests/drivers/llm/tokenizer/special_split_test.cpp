// SpecialTokenSplitter reproduces llama.cpp's partition: special tokens are visited longest
// first, each splitting the remaining raw text at its leftmost non-overlapping occurrences.
#include "drivers/llm/tokenizer/special_split.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace icam::llm {
namespace {

// Renders fragments as "text" for raw text and "[id]" for tokens.
std::vector<std::string> split(const SpecialTokenSplitter& splitter, std::string_view text,
                               bool parse_special) {
  std::vector<Fragment> fragments;
  splitter.split(text, parse_special, fragments);
  std::vector<std::string> out;
  for (const Fragment& f : fragments) {
    if (f.is_token()) {
      // (snprintf: GCC 12 warns falsely on "[" + std::to_string(...) + "]".)
      char token[24];
      std::snprintf(token, sizeof(token), "[%d]", f.token);
      out.push_back(token);
    } else {
      out.emplace_back(f.text);
    }
  }
  return out;
}

using Parts = std::vector<std::string>;

TEST(SpecialTokenSplitter, LongestTokenFirstNotLeftmostLongest) {
  SpecialTokenSplitter splitter;
  splitter.add("ab", 1, true);
  splitter.add("bcd", 2, true);
  splitter.finish();
  // "bcd" is longer, so it is placed first and "ab" no longer fits; a leftmost-longest scan
  // would give [1] "cd" instead.
  EXPECT_EQ(split(splitter, "abcd", false), (Parts{"a", "[2]"}));
  EXPECT_EQ(split(splitter, "ab-bcd", false), (Parts{"[1]", "-", "[2]"}));
}

TEST(SpecialTokenSplitter, RunsSplitGreedilyFromTheLeft) {
  SpecialTokenSplitter splitter;
  splitter.add("\n", 10, true);
  splitter.add("\n\n", 11, true);
  splitter.add("\n\n\n", 12, true);
  splitter.finish();
  EXPECT_EQ(split(splitter, "a\n\n\n\n\n\n\nb", false), (Parts{"a", "[12]", "[12]", "[10]", "b"}));
  EXPECT_EQ(split(splitter, "\n\n\n\n\n", false), (Parts{"[12]", "[11]"}));
}

TEST(SpecialTokenSplitter, ControlTokensOnlyWithParseSpecial) {
  SpecialTokenSplitter splitter;
  splitter.add("<ctl>", 5, /*always=*/false);
  splitter.add("<ud>", 6, /*always=*/true);
  splitter.add("", 7, true);  // ignored
  splitter.finish();
  EXPECT_EQ(split(splitter, "x<ctl>y<ud>z", false), (Parts{"x<ctl>y", "[6]", "z"}));
  EXPECT_EQ(split(splitter, "x<ctl>y<ud>z", true), (Parts{"x", "[5]", "y", "[6]", "z"}));
  EXPECT_EQ(split(splitter, "", true), Parts{});
  EXPECT_EQ(split(splitter, "<ctl>", true), (Parts{"[5]"}));
  EXPECT_EQ(split(splitter, "<ctl", true), (Parts{"<ctl"}));
}

TEST(SpecialTokenSplitter, EqualLengthOverlapsGoToTheLowerId) {
  SpecialTokenSplitter splitter;
  splitter.add("ba", 9, true);
  splitter.add("ab", 3, true);
  splitter.finish();
  EXPECT_EQ(split(splitter, "bab", false), (Parts{"b", "[3]"}));
}

}  // namespace
}  // namespace icam::llm
