// Decides when generation stops and what text a stream may show so far.
//
// The caller feeds each generated token with the text it decodes to. A stop token ends generation
// at once; its own text is not emitted. A stop string ends generation when the emitted bytes
// complete it; the text before it is emitted, the stop string and anything after it are not.
//
// Streaming: text that could still turn out to be the start of a stop string is held back until
// it either completes one (and is dropped) or stops being a possible start (and is released), so a
// stream never shows part of a stop string. Text ending in an incomplete UTF-8 sequence (a token
// that decodes to part of a character) is held back too until the character is complete, so
// emitted text never splits a code point. Matching works on bytes, one at a time, with one KMP
// automaton per stop string: the outcome does not depend on how the text is split into pieces, and
// stop strings spanning several tokens, overlapping prefixes ("abab" in "abaabab") and multi-byte
// characters need no special cases. When several stop strings complete at the same byte, the
// longest wins (the least text is emitted); otherwise the first to complete wins.
//
// Length limits (max_tokens) are the caller's business.
// Thread safety: one matcher per sequence, used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/sampling/sampling_params.h"

namespace icam::llm {

enum class StopReason { none, token, string };

struct StopResult {
  bool stopped = false;
  StopReason reason = StopReason::none;
  std::string text_to_emit;  // may be empty; append to the visible output
  int stop_string = -1;      // index into the stop strings when reason == string
};

class StopMatcher {
 public:
  // Empty stop strings are ignored (validate() rejects them in SamplingParams).
  StopMatcher(std::vector<std::string> stop_strings, std::vector<int32_t> stop_tokens);
  explicit StopMatcher(const SamplingParams& params);

  // Feeds one generated token and its decoded text. Once stopped, every later call returns
  // stopped with the same reason and no text. On stopping, text_to_emit already holds everything
  // that is still to be shown; flush() then returns nothing.
  StopResult feed(int32_t token, std::string_view piece);

  // At the end of generation without a stop (e.g. max_tokens reached): returns the text held back
  // (a possible stop-string start, an incomplete UTF-8 tail) and clears it.
  std::string flush();

  bool stopped() const { return reason_ != StopReason::none; }
  StopReason reason() const { return reason_; }

 private:
  struct Pattern {
    std::string text;
    std::vector<std::size_t> fail;  // KMP: longest proper border of text[0, i + 1)
    std::size_t matched = 0;        // longest prefix of text that is a suffix of the stream
  };

  // Advances every automaton by one byte; returns the index of the stop string it completes
  // (the longest if several), or -1.
  int advance(char byte);

  std::vector<Pattern> patterns_;
  std::vector<int32_t> stop_tokens_;  // sorted
  std::string pending_;               // fed text not yet emitted
  StopReason reason_ = StopReason::none;
  int stop_string_ = -1;
};

}  // namespace icam::llm
