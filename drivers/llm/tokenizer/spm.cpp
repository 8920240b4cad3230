#include "drivers/llm/tokenizer/spm.h"

#include "drivers/llm/tokenizer/symbol_merge.h"
#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {
Status spm_encode(const Vocab& vocab, const ByteTokens& byte_tokens, std::string_view text,
                  std::vector<int32_t>& out) {
  std::vector<MergeSymbol> symbols = split_utf8_characters(text);
  if (symbols.empty()) return ok_status();
  // Highest score first (negated, as merge_symbols takes lowest first; negation is exact);
  // only pairs whose concatenation is a vocabulary piece may merge.
  merge_symbols(symbols, [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<double> {
    const int32_t id = vocab.find(text.substr(l.offset, l.length + r.length));
    if (id < 0) return std::nullopt;
    return -static_cast<double>(vocab.score(id));
  });

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].offset, symbols[i].length);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Only single characters can be missing: every merged symbol is a vocabulary piece.
    for (const char c : piece) {
      const int32_t byte_id = byte_tokens[static_cast<uint8_t>(c)];
      if (byte_id < 0) {
        return make_error(Errc::unsupported, "the vocabulary has no piece for byte 0x", std::hex,
                          static_cast<unsigned>(static_cast<uint8_t>(c)),
                          " and no unknown token to stand for it");
      }
      out.push_back(byte_id);
    }
  }
  return ok_status();
}

}  // namespace icam::llm
