#include "drivers/llm/tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <vector>

#include "drivers/llm/tokenizer/unicode_tables.h"

namespace icam::llm {
namespace {

bool is_continuation(uint8_t byte) {
  return (byte & 0xC0) == 0x80;
}

bool in_ranges(const unicode_tables::CodePointRange* ranges, size_t count, uint32_t cp) {
  const auto* end = ranges + count;
  // First range whose last >= cp; cp is inside it when first <= cp.
  const auto* it = std::lower_bound(
      ranges, end, cp, [](const auto& range, uint32_t value) { return range.last < value; });
  return it != end && it->first <= cp;
}

constexpr uint8_t kLetterFlag = 1;
constexpr uint8_t kNumberFlag = 2;
constexpr uint8_t kSpaceFlag = 4;

bool white_space_property(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Flags for the Basic Multilingual Plane, where nearly all text lives, so that classifying a
// character is one load; planes above fall back to a binary search of the range tables.
const std::vector<uint8_t>& bmp_flags() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> flags(0x10000, 0);
    for (size_t i = 0; i < unicode_tables::kLetters_count; ++i) {
      const auto& r = unicode_tables::kLetters[i];
      for (uint32_t cp = r.first; cp <= r.last && cp < 0x10000; ++cp) flags[cp] |= kLetterFlag;
    }
    for (size_t i = 0; i < unicode_tables::kNumbers_count; ++i) {
      const auto& r = unicode_tables::kNumbers[i];
      for (uint32_t cp = r.first; cp <= r.last && cp < 0x10000; ++cp) flags[cp] |= kNumberFlag;
    }
    for (uint32_t cp = 0; cp < 0x10000; ++cp) {
      if (white_space_property(cp)) flags[cp] |= kSpaceFlag;
    }
    return flags;
  }();
  return table;
}

struct ByteMap {
  std::array<uint32_t, 256> to_unicode{};
  std::array<int16_t, 0x144> to_byte{};  // mapped code points are all below U+0144
};

const ByteMap& byte_map() {
  static const ByteMap map = [] {
    ByteMap m;
    m.to_byte.fill(-1);
    uint32_t next = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      m.to_unicode[b] = cp;
      m.to_byte[cp] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return map;
}

}  // namespace

size_t utf8_sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

size_t utf8_valid_sequence_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[pos + i]); };
  const uint8_t lead = byte(0);
  const size_t length = utf8_sequence_length(lead);
  if (length == 0 || pos + length > text.size()) return 0;
  if (length == 1) return 1;
  // The second byte's allowed range excludes overlong forms, surrogates and values > U+10FFFF.
  uint8_t low = 0x80, high = 0xBF;
  if (lead == 0xE0) low = 0xA0;
  if (lead == 0xED) high = 0x9F;
  if (lead == 0xF0) low = 0x90;
  if (lead == 0xF4) high = 0x8F;
  if (byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (!is_continuation(byte(i))) return 0;
  }
  return length;
}

Status validate_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // ASCII runs are the common case; skip them quickly.
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t length = utf8_valid_sequence_at(text, pos);
    if (length == 0) {
      static const char* const kHex = "0123456789ABCDEF";
      const uint8_t byte = static_cast<uint8_t>(text[pos]);
      const char hex[3] = {kHex[byte >> 4], kHex[byte & 15], 0};
      return make_error(Errc::invalid_argument, "invalid UTF-8 at byte offset ", pos, " (byte 0x",
                        hex, ")");
    }
    pos += length;
  }
  return ok_status();
}

uint32_t decode_utf8(std::string_view text, size_t& pos) {
  const uint8_t lead = static_cast<uint8_t>(text[pos]);
  const size_t length = utf8_sequence_length(lead);
  uint32_t cp = 0;
  switch (length) {
    case 1:
      cp = lead;
      break;
    case 2:
      cp = lead & 0x1F;
      break;
    case 3:
      cp = lead & 0x0F;
      break;
    case 4:
      cp = lead & 0x07;
      break;
    default:  // invalid lead byte: callers validate first; consume it as U+FFFD
      ++pos;
      return kReplacementChar;
  }
  for (size_t i = 1; i < length; ++i) {
    cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  }
  pos += length;
  return cp;
}

bool utf8_is_incomplete_prefix(std::string_view text, size_t pos) {
  if (pos >= text.size()) return false;
  const uint8_t lead = static_cast<uint8_t>(text[pos]);
  const size_t length = utf8_sequence_length(lead);
  const size_t available = text.size() - pos;
  if (length <= 1 || available >= length) return false;
  if (available >= 2) {
    const uint8_t second = static_cast<uint8_t>(text[pos + 1]);
    uint8_t low = 0x80, high = 0xBF;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
    if (second < low || second > high) return false;
  }
  for (size_t i = 2; i < available; ++i) {
    if (!is_continuation(static_cast<uint8_t>(text[pos + i]))) return false;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_letter(uint32_t cp) {
  if (cp < 0x10000) return (bmp_flags()[cp] & kLetterFlag) != 0;
  return in_ranges(unicode_tables::kLetters, unicode_tables::kLetters_count, cp);
}

bool is_number(uint32_t cp) {
  if (cp < 0x10000) return (bmp_flags()[cp] & kNumberFlag) != 0;
  return in_ranges(unicode_tables::kNumbers, unicode_tables::kNumbers_count, cp);
}

bool is_whitespace(uint32_t cp) {
  return white_space_property(cp);
}

uint32_t byte_to_unicode(uint8_t byte) {
  return byte_map().to_unicode[byte];
}

int unicode_to_byte(uint32_t cp) {
  if (cp >= byte_map().to_byte.size()) return -1;
  return byte_map().to_byte[cp];
}

void append_byte_encoded(std::string& out, std::string_view bytes) {
  for (const char c : bytes) append_utf8(out, byte_to_unicode(static_cast<uint8_t>(c)));
}

}  // namespace icam::llm
