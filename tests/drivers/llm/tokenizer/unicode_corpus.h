// A few hundred varied, valid UTF-8 strings for round-trip tests: scripts (CJK, Hangul, Arabic,
// Hebrew, Cyrillic, Greek), emoji with ZWJ sequences and modifiers, combining marks, bidi
// controls, ASCII control characters and NUL, long runs of spaces, tabs and newlines, markup
// and special-token look-alikes, plus deterministic pseudo-random mixtures of all of these.
#pragma once

#include <string>
#include <vector>

namespace icam::llm::testing {

// None of the strings contains U+2581, SentencePiece's space symbol (it decodes as a space).
const std::vector<std::string>& unicode_corpus();

}  // namespace icam::llm::testing
