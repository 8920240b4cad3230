#include "drivers/llm/sampling/stop_condition.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace icam::llm {
namespace {

struct Streamed {
  std::vector<std::string> emitted;  // text_to_emit per piece fed
  std::string text;                  // everything emitted, flush included when not stopped
  StopReason reason = StopReason::none;
  int stop_string = -1;
};

// Feeds pieces as tokens 1000, 1001, ... (never stop tokens unless listed in `tokens`).
Streamed run(StopMatcher& matcher, const std::vector<std::string>& pieces,
             const std::vector<int32_t>& tokens = {}) {
  Streamed out;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    int32_t token = i < tokens.size() ? tokens[i] : static_cast<int32_t>(1000 + i);
    StopResult r = matcher.feed(token, pieces[i]);
    out.emitted.push_back(r.text_to_emit);
    out.text += r.text_to_emit;
    if (r.stopped) {
      out.reason = r.reason;
      out.stop_string = r.stop_string;
      EXPECT_TRUE(matcher.stopped());
      EXPECT_EQ(matcher.flush(), "");
      return out;
    }
  }
  out.text += matcher.flush();
  return out;
}

Streamed run_strings(const std::vector<std::string>& stops,
                     const std::vector<std::string>& pieces) {
  StopMatcher matcher(stops, {});
  return run(matcher, pieces);
}

TEST(StopMatcherTest, NoStopsPassesTextThrough) {
  Streamed r = run_strings({}, {"Hello", ", ", "world"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_EQ(r.reason, StopReason::none);
}

TEST(StopMatcherTest, StopStringSplitAcrossTokens) {
  Streamed r = run_strings({"</stop>"}, {"Hi </s", "top>", "never shown"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"Hi ", ""}));
  EXPECT_EQ(r.text, "Hi ");
  EXPECT_EQ(r.reason, StopReason::string);
  EXPECT_EQ(r.stop_string, 0);
}

TEST(StopMatcherTest, HeldPrefixIsReleasedWhenItDiverges) {
  Streamed r = run_strings({"</s>"}, {"Hi </s", "top>", " done"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"Hi ", "</stop>", " done"}));
  EXPECT_EQ(r.reason, StopReason::none);
}

TEST(StopMatcherTest, TextAfterTheStopStringInTheSamePieceIsDropped) {
  Streamed r = run_strings({"\n\n"}, {"one\n", "\ntwo"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"one", ""}));
  EXPECT_EQ(r.reason, StopReason::string);
}

TEST(StopMatcherTest, OverlappingPrefixes) {
  // "abaabab": the first "aba" cannot start "abab" once the second 'a' follows it.
  Streamed r = run_strings({"abab"}, {"a", "b", "a", "a", "b", "a", "b", "x"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"", "", "", "aba", "", "", ""}));
  EXPECT_EQ(r.text, "aba");
  EXPECT_EQ(r.reason, StopReason::string);
  // Self-overlap inside one piece: "ababab" contains "abab" ending at byte 4.
  Streamed whole = run_strings({"abab"}, {"xababab"});
  EXPECT_EQ(whole.text, "x");
}

TEST(StopMatcherTest, StopStringAtTheVeryStart) {
  Streamed r = run_strings({"###"}, {"###", "tail"});
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.reason, StopReason::string);
  Streamed split = run_strings({"###"}, {"#", "#", "#rest"});
  EXPECT_EQ(split.emitted, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(split.reason, StopReason::string);
}

TEST(StopMatcherTest, MultipleStopStrings) {
  Streamed r = run_strings({"\n\n", "User:"}, {"Hello\n", "Us", "er: hi"});
  EXPECT_EQ(r.text, "Hello\n");
  EXPECT_EQ(r.stop_string, 1);
  // The first to complete wins, even if another started earlier...
  Streamed first = run_strings({"abcd", "bc"}, {"abcd"});
  EXPECT_EQ(first.text, "a");
  EXPECT_EQ(first.stop_string, 1);
  // ...and among those completing at the same byte, the longest.
  Streamed longest = run_strings({"bc", "abc"}, {"xab", "c"});
  EXPECT_EQ(longest.text, "x");
  EXPECT_EQ(longest.stop_string, 1);
}

TEST(StopMatcherTest, MultiByteUtf8InStopStringsAndPieces) {
  // "。" is E3 80 82; the token boundaries fall inside it.
  Streamed r = run_strings({"。"}, {"你好", "\xE3\x80", "\x82more"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"你好", "", ""}));
  EXPECT_EQ(r.reason, StopReason::string);
  // A held multi-byte prefix is released whole when it diverges.
  Streamed diverge = run_strings({"é!"}, {"caf", "é", "?"});
  EXPECT_EQ(diverge.emitted, (std::vector<std::string>{"caf", "", "é?"}));
  // A stop string starting with the same lead byte as the text: "é" (C3 A9) vs "ë" (C3 AB).
  Streamed lead = run_strings({"ë"}, {"\xC3", "\xA9x"});
  EXPECT_EQ(lead.emitted, (std::vector<std::string>{"", "éx"}));
}

TEST(StopMatcherTest, IncompleteUtf8IsHeldUntilTheCharacterCompletes) {
  // "€" is E2 82 AC, decoded by a byte-fallback tokenizer one byte per token.
  Streamed r = run_strings({}, {"price: \xE2", "\x82", "\xAC", " 5"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"price: ", "", "€", " 5"}));
  // An unfinished character at the end still comes out of flush().
  StopMatcher matcher({}, {});
  EXPECT_EQ(matcher.feed(1, "ok\xF0\x9F").text_to_emit, "ok");
  EXPECT_EQ(matcher.flush(), "\xF0\x9F");
  // Stray continuation bytes are not held (nothing could complete them).
  Streamed stray = run_strings({}, {"a\x80", "b"});
  EXPECT_EQ(stray.emitted, (std::vector<std::string>{"a\x80", "b"}));
}

TEST(StopMatcherTest, StopTokenEmitsHeldTextButNotItsOwnPiece) {
  StopMatcher matcher({"ab!"}, {2, 106});
  Streamed r = run(matcher, {"xab", "<end_of_turn>", "more"}, {5, 106, 7});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"x", "ab"}));
  EXPECT_EQ(r.reason, StopReason::token);
  EXPECT_EQ(r.stop_string, -1);
}

TEST(StopMatcherTest, FeedingAfterAStopReturnsStoppedAndNoText) {
  StopMatcher matcher({"z"}, {});
  StopResult first = matcher.feed(1, "az");
  EXPECT_TRUE(first.stopped);
  EXPECT_EQ(first.text_to_emit, "a");
  StopResult again = matcher.feed(2, "more");
  EXPECT_TRUE(again.stopped);
  EXPECT_EQ(again.reason, StopReason::string);
  EXPECT_EQ(again.text_to_emit, "");
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopMatcherTest, FlushReturnsHeldText) {
  StopMatcher matcher({"</s>"}, {});
  EXPECT_EQ(matcher.feed(1, "Hi </").text_to_emit, "Hi ");
  EXPECT_EQ(matcher.flush(), "</");
  EXPECT_FALSE(matcher.stopped());
}

TEST(StopMatcherTest, BuiltFromParams) {
  SamplingParams params;
  params.stop_strings = {"END"};
  params.stop_tokens = {9};
  StopMatcher matcher(params);
  EXPECT_EQ(matcher.feed(1, "xEN").text_to_emit, "x");
  StopResult r = matcher.feed(9, "D");
  EXPECT_EQ(r.reason, StopReason::token);
  EXPECT_EQ(r.text_to_emit, "EN");
}

// The result must not depend on how the text is cut into pieces, and must equal a direct search
// for the first position at which any stop string ends.
TEST(StopMatcherTest, SplitInvarianceAgainstAReference) {
  const std::vector<std::string> stops = {"abab", "ba<", "<<", "aab"};
  std::mt19937 gen(77);
  const std::string alphabet = "ab<";
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    std::size_t length = 1 + gen() % 24;
    for (std::size_t i = 0; i < length; ++i) text += alphabet[gen() % alphabet.size()];

    // Reference: the earliest end; at equal ends the longest stop string.
    std::string expected = text;
    bool expect_stop = false;
    for (std::size_t end = 1; end <= text.size() && !expect_stop; ++end) {
      std::size_t best = 0;
      for (const std::string& s : stops) {
        if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) {
          best = std::max(best, s.size());
        }
      }
      if (best > 0) {
        expected = text.substr(0, end - best);
        expect_stop = true;
      }
    }

    std::vector<std::string> pieces;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t take = 1 + gen() % 5;
      pieces.push_back(text.substr(pos, take));
      pos += take;
    }
    Streamed r = run_strings(stops, pieces);
    EXPECT_EQ(r.text, expected) << text;
    EXPECT_EQ(r.reason == StopReason::string, expect_stop) << text;
  }
}

}  // namespace
}  // namespace icam::llm
