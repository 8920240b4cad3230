// UTF-8 validity. Text a model generates is bytes: a byte-fallback token can produce a stray
// continuation byte or a truncated character. Everything icam shows people or sends over JSON is
// made valid first, with U+FFFD in place of each invalid byte, so that byte offsets and lengths
// are the same on both sides of a JSON boundary.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace icam {

// Length of the valid UTF-8 sequence at the start of `text` (1 to 4), or 0 when the first byte
// does not begin one (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view text);

bool is_valid_utf8(std::string_view text);

// `text` with every byte that is not part of a valid sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace icam
