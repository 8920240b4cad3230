#include "drivers/llm/tokenizer/symbol_merge.h"

#include <algorithm>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {

std::vector<MergeSymbol> split_utf8_characters(std::string_view text) {
  std::vector<MergeSymbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length =
        std::max<size_t>(1, utf8_sequence_length(static_cast<uint8_t>(text[pos])));
    const size_t take = std::min(length, text.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(
        MergeSymbol{index - 1, index + 1, static_cast<uint32_t>(pos), static_cast<uint32_t>(take)});
    pos += take;
  }
  if (!symbols.empty()) symbols.back().next = -1;
  return symbols;
}

}  // namespace icam::llm
