// UTF-8 and Unicode helpers for the tokenizers: strict UTF-8 validation and decoding, the general
// category classes that pre-tokenizer patterns use (\p{L}, \p{N}, \s), and GPT-2's reversible
// byte-to-character mapping used by byte-level BPE vocabularies.
// All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::llm {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces: 1..4, or 0 for a byte that cannot start a
// sequence (a continuation byte, 0xC0, 0xC1, 0xF5..0xFF).
size_t utf8_sequence_length(uint8_t lead);

// Length of the valid UTF-8 sequence starting at text[pos] (1..4), or 0 when the bytes there are
// not a complete, shortest-form encoding of a scalar value (overlong forms, surrogates, values
// above U+10FFFF and truncated sequences are all invalid).
size_t utf8_valid_sequence_at(std::string_view text, size_t pos);

// True when text[pos..end) is a proper prefix of a valid sequence: the start of a character
// whose remaining bytes have not arrived yet (used by streaming decoders to hold bytes back).
bool utf8_is_incomplete_prefix(std::string_view text, size_t pos);

// Ok when `text` is valid UTF-8; otherwise Errc::invalid_argument naming the byte offset of the
// first byte that does not begin a valid sequence.
Status validate_utf8(std::string_view text);

// Decodes the sequence at text[pos] and advances pos past it. Precondition: the text is valid
// UTF-8 at pos (callers validate first).
uint32_t decode_utf8(std::string_view text, size_t& pos);

// Appends the UTF-8 encoding of a scalar value.
void append_utf8(std::string& out, uint32_t code_point);

// General category classes, as the \p{L}, \p{N} and \s of tokenizer pre-split patterns.
bool is_letter(uint32_t code_point);      // L: Lu Ll Lt Lm Lo
bool is_number(uint32_t code_point);      // N: Nd Nl No
bool is_whitespace(uint32_t code_point);  // the Unicode White_Space property

// GPT-2's byte-level mapping: every byte value maps to a printable code point (printable Latin-1
// bytes map to themselves, the rest to U+0100 onwards), so any byte string becomes a string of
// visible characters that byte-level BPE vocabularies are written in.
uint32_t byte_to_unicode(uint8_t byte);
// The inverse: the byte a mapped code point stands for, or -1 for a code point outside the map.
int unicode_to_byte(uint32_t code_point);
// UTF-8 text of the mapped characters for `bytes`, appended to `out`.
void append_byte_encoded(std::string& out, std::string_view bytes);

}  // namespace icam::llm
