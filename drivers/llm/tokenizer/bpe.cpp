#include "drivers/llm/tokenizer/bpe.h"

#include "drivers/llm/tokenizer/symbol_merge.h"
#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {

Result<BpeMerges> BpeMerges::build(std::span<const std::string_view> merges) {
  BpeMerges result;
  result.ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string_view merge = merges[i];
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos || space + 1 >= merge.size()) {
      return make_error(Errc::corrupt, "merge ", i, " ('", merge,
                        "') is not two pieces separated by a space");
    }
    // Key on the two pieces joined by one space; rank() builds its keys the same way.
    if (!result.ranks_.insert(merge, static_cast<int32_t>(i))) {
      return make_error(Errc::corrupt, "merge ", i, " ('", merge, "') repeats merge ",
                        result.ranks_.find(merge));
    }
  }
  return result;
}

int32_t BpeMerges::rank(std::string_view left, std::string_view right, std::string& scratch) const {
  scratch.assign(left);
  scratch.push_back(' ');
  scratch.append(right);
  return ranks_.find(scratch);
}

Status bpe_encode_word(const Vocab& vocab, const BpeMerges& merges, const BpeOptions& options,
                       std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return ok_status();
  if (options.ignore_merges) {
    if (const int32_t id = vocab.find(word); id >= 0) {
      out.push_back(id);
      return ok_status();
    }
  }

  std::vector<MergeSymbol> symbols = split_utf8_characters(word);
  std::string scratch;
  // Lowest rank first; pairs without a merge rule never merge.
  merge_symbols(symbols, [&](const MergeSymbol& l, const MergeSymbol& r) -> std::optional<double> {
    const int32_t rank =
        merges.rank(word.substr(l.offset, l.length), word.substr(r.offset, r.length), scratch);
    if (rank < 0) return std::nullopt;
    return rank;
  });

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = word.substr(symbols[i].offset, symbols[i].length);
    if (const int32_t id = vocab.find(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    // A merge produced a piece the vocabulary lacks (a malformed vocabulary), or a single
    // character is missing: fall back to the characters one by one.
    for (size_t pos = 0; pos < piece.size();) {
      const size_t start = pos;
      decode_utf8(piece, pos);
      const int32_t id = vocab.find(piece.substr(start, pos - start));
      if (id >= 0) {
        out.push_back(id);
      } else if (options.unknown_token >= 0) {
        out.push_back(options.unknown_token);
      } else {
        return make_error(Errc::unsupported, "the vocabulary has no piece for '",
                          piece.substr(start, pos - start), "' and no unknown token");
      }
    }
  }
  return ok_status();
}

}  // namespace icam::llm
