#include "unicode_corpus.h"

#include <cstdint>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm::testing {
namespace {

// Code point pools to draw random strings from.
struct Pool {
  uint32_t first;
  uint32_t last;
};
constexpr Pool kPools[] = {
    {0x20, 0x7E},         // ASCII printable
    {0x20, 0x20},         // space (weighted up: runs of spaces)
    {0x09, 0x0D},         // tab, newline, vertical tab, form feed, carriage return
    {0x00, 0x1F},         // C0 controls including NUL
    {0xA0, 0x24F},        // Latin-1 supplement and Latin extended
    {0x300, 0x36F},       // combining diacritical marks
    {0x370, 0x4FF},       // Greek, Cyrillic
    {0x590, 0x6FF},       // Hebrew, Arabic
    {0x900, 0x97F},       // Devanagari
    {0x2000, 0x206F},     // general punctuation: spaces, ZWJ, bidi controls, line separator
    {0x3000, 0x303F},     // CJK punctuation, ideographic space
    {0x3040, 0x30FF},     // Hiragana, Katakana
    {0x4E00, 0x9FFF},     // CJK ideographs
    {0xAC00, 0xD7A3},     // Hangul syllables
    {0xE000, 0xF8FF},     // private use
    {0xFE00, 0xFFFD},     // variation selectors, specials, replacement character
    {0x1F300, 0x1FAFF},   // emoji
    {0x10000, 0x10FFFF},  // anything in the supplementary planes
};

class Lcg {
 public:
  explicit Lcg(uint64_t seed) : state_(seed) {}
  uint32_t next(uint32_t bound) {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>((state_ >> 33) % bound);
  }

 private:
  uint64_t state_;
};

std::string random_string(Lcg& rng) {
  std::string out;
  const uint32_t length = 1 + rng.next(40);
  for (uint32_t i = 0; i < length; ++i) {
    const Pool& pool = kPools[rng.next(sizeof(kPools) / sizeof(kPools[0]))];
    uint32_t cp = pool.first + rng.next(pool.last - pool.first + 1);
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) cp = 'x';
    const uint32_t repeat = rng.next(8) == 0 ? 1 + rng.next(12) : 1;
    for (uint32_t r = 0; r < repeat; ++r) append_utf8(out, cp);
  }
  return out;
}

std::vector<std::string> build() {
  std::vector<std::string> corpus = {
      "",
      "a",
      " ",
      "  ",
      "hello world",
      "Hello, World!",
      "  leading spaces",
      "trailing spaces   ",
      "\n",
      "\n\n\n\n",
      "\t\tindented\twith\ttabs",
      "windows\r\nline\r\nendings\r\n",
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6\xE6\xB5\x8B\xE8\xAF\x95",  // 中文字符测试
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83"
      "\x88",
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xED\x85\x8D\xEC\x8A\xA4\xED\x8A\xB8",  // 한국어 텍스트
      "\xF0\x9F\x98\x80",                                                           // 😀
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",  // family ZWJ
      "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",                                          // flag
      "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",                                   // thumbs up + tone
      "e\xCC\x81",                                                          // e + acute
      "a\xCC\x88\xCC\x84 Z\xCC\xA4\xCD\x94\xCD\xA7\xCC\x91\xCC\x93",        // stacked marks
      "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D",  // שלום עולם
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 "
      "\xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",
      "\xE2\x80\xAE"
      "abc"
      "\xE2\x80\xAC",  // RLO abc PDF
      "\x01\x02\x03\x7F",
      std::string("a\0b", 3),
      std::string(100, ' '),
      std::string(50, '\n'),
      std::string(40, '\t'),
      "x" + std::string(33, ' ') + "y" + std::string(65, '\n') + "z",
      "<table><tr><td>cell</td></tr></table>",
      "<h1>Title</h1>\n<p>para</p>",
      "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
      "<|im_start|>user\nhi<|im_end|>",
      "<s></s><unk><bos><eos><pad>",
      "int main() {\n    return 0;\n}\n",
      "def f(x):\n\tif x:\n\t\treturn x  # done\n",
      "1234567890 3.14159 -42 1e10",
      "\xF4\x8F\xBF\xBF",  // U+10FFFF
      "\xEF\xBF\xBD",      // U+FFFD
      "\xEF\xBB\xBF"
      "bom",
      "non\xC2\xA0"
      "breaking\xE3\x80\x80ideographic\xE2\x80\xA8separator",
      "I'm, you're, we'll, they've, she'd, it's",
      "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9",
      "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC "
      "\xD0\xA0\xD1\x83\xD1\x81\xD1\x81\xD0\xBA\xD0\xB8\xD0\xB9",
      "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80",  // हिन्दी
      "   \n   \n\t \r\n  ",
      "a \n b \t c",
      "mixed \xE4\xB8\xAD English \xF0\x9F\x98\x80 \xD7\xA9 123",
  };
  Lcg rng(20240601);
  while (corpus.size() < 320) corpus.push_back(random_string(rng));
  return corpus;
}

}  // namespace

const std::vector<std::string>& unicode_corpus() {
  static const std::vector<std::string> corpus = build();
  return corpus;
}

}  // namespace icam::llm::testing
