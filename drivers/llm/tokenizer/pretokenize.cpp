#include "drivers/llm/tokenizer/pretokenize.h"

#include <cstdint>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {
namespace {

// The text as code points, each with its classes precomputed, plus a sentinel past the end.
class CodePoints {
 public:
  explicit CodePoints(std::string_view text) {
    for (size_t pos = 0; pos < text.size();) {
      offsets_.push_back(static_cast<uint32_t>(pos));
      values_.push_back(decode_utf8(text, pos));
    }
    offsets_.push_back(static_cast<uint32_t>(text.size()));
    classes_.reserve(values_.size());
    for (const uint32_t cp : values_) {
      uint8_t c = 0;
      if (is_letter(cp)) c |= kLetter;
      if (is_number(cp)) c |= kNumber;
      if (is_whitespace(cp)) c |= kSpace;
      classes_.push_back(c);
    }
  }

  size_t size() const { return values_.size(); }
  uint32_t offset(size_t i) const { return offsets_[i]; }
  // Beyond the end every accessor answers "no", so scanners need no bounds checks of their own.
  uint32_t at(size_t i) const { return i < size() ? values_[i] : 0xFFFFFFFF; }
  bool letter(size_t i) const { return i < size() && (classes_[i] & kLetter); }
  bool number(size_t i) const { return i < size() && (classes_[i] & kNumber); }
  bool space(size_t i) const { return i < size() && (classes_[i] & kSpace); }
  bool newline(size_t i) const { return at(i) == '\r' || at(i) == '\n'; }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const { return i < size() && classes_[i] == 0; }

 private:
  static constexpr uint8_t kLetter = 1, kNumber = 2, kSpace = 4;
  std::vector<uint32_t> values_;
  std::vector<uint32_t> offsets_;
  std::vector<uint8_t> classes_;
};

uint32_t ascii_lower(uint32_t cp) {
  return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
}

// Length of the contraction 's 't 're 've 'm 'll 'd at i, or 0.
size_t contraction(const CodePoints& cps, size_t i, bool ignore_case) {
  if (cps.at(i) != '\'') return 0;
  const auto fold = [&](uint32_t cp) { return ignore_case ? ascii_lower(cp) : cp; };
  const uint32_t a = fold(cps.at(i + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  const uint32_t b = fold(cps.at(i + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

template <typename Pred>
size_t run_end(size_t i, Pred pred) {
  while (pred(i)) ++i;
  return i;
}

// \s+(?!\S)|\s+ at i (a whitespace character): the run, less its last character when a
// non-space follows and the run is longer than one.
size_t trailing_space_rule(const CodePoints& cps, size_t i) {
  const size_t end = run_end(i, [&](size_t k) { return cps.space(k); });
  if (end == cps.size() || end - i == 1) return end;
  return end - 1;
}

// End (exclusive) of the GPT-2 word starting at i.
size_t gpt2_word(const CodePoints& cps, size_t i) {
  if (const size_t n = contraction(cps, i, false)) return i + n;
  const size_t j = cps.at(i) == ' ' ? i + 1 : i;  // the optional leading space
  if (cps.letter(j)) return run_end(j, [&](size_t k) { return cps.letter(k); });
  if (cps.number(j)) return run_end(j, [&](size_t k) { return cps.number(k); });
  if (cps.other(j)) return run_end(j, [&](size_t k) { return cps.other(k); });
  return trailing_space_rule(cps, i);
}

// End (exclusive) of the Llama 3 / Qwen 2 word starting at i.
size_t llama3_word(const CodePoints& cps, size_t i, size_t max_digits) {
  if (const size_t n = contraction(cps, i, true)) return i + n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!cps.newline(i) && !cps.letter(i) && !cps.number(i) && cps.letter(i + 1)) {
    return run_end(i + 1, [&](size_t k) { return cps.letter(k); });
  }
  if (cps.letter(i)) return run_end(i, [&](size_t k) { return cps.letter(k); });
  // \p{N}{1,max_digits}
  if (cps.number(i)) {
    size_t end = i;
    while (end - i < max_digits && cps.number(end)) ++end;
    return end;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const size_t j = cps.at(i) == ' ' ? i + 1 : i;
  if (cps.other(j)) {
    const size_t end = run_end(j, [&](size_t k) { return cps.other(k); });
    return run_end(end, [&](size_t k) { return cps.newline(k); });
  }
  // \s*[\r\n]+ : through the last line break of the whitespace run, if it has one.
  const size_t end = run_end(i, [&](size_t k) { return cps.space(k); });
  for (size_t k = end; k > i; --k) {
    if (cps.newline(k - 1)) return k;
  }
  return trailing_space_rule(cps, i);
}

}  // namespace

std::optional<PreTokenizer> pretokenizer_from_name(std::string_view name) {
  if (name == "gpt2" || name == "gpt-2" || name == "default" || name.empty()) {
    return PreTokenizer::gpt2;
  }
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") return PreTokenizer::llama3;
  if (name == "qwen2") return PreTokenizer::qwen2;
  return std::nullopt;
}

std::string_view pretokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::gpt2:
      return "gpt2";
    case PreTokenizer::llama3:
      return "llama3";
    case PreTokenizer::qwen2:
      return "qwen2";
  }
  return "unknown";
}

void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>& words) {
  const CodePoints cps(text);
  size_t i = 0;
  while (i < cps.size()) {
    size_t end = 0;
    switch (kind) {
      case PreTokenizer::gpt2:
        end = gpt2_word(cps, i);
        break;
      case PreTokenizer::llama3:
        end = llama3_word(cps, i, 3);
        break;
      case PreTokenizer::qwen2:
        end = llama3_word(cps, i, 1);
        break;
    }
    if (end <= i) end = i + 1;  // defensive: every rule consumes at least one character
    words.push_back(text.substr(cps.offset(i), cps.offset(end) - cps.offset(i)));
    i = end;
  }
}

}  // namespace icam::llm
