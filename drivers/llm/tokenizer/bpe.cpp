#include "drivers/llm/tokenizer/bpe.h"

#include <queue>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
  uint32_t length;  // 0 once merged into its left neighbour
};

// `length` is the pair's combined length when queued; symbols only grow, so a different sum
// later means the entry is stale.
struct Bigram {
  int32_t left;
  int32_t right;
  int32_t rank;
  uint32_t length;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

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

  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length =
        std::max<size_t>(1, utf8_sequence_length(static_cast<uint8_t>(word[pos])));
    const size_t take = std::min(length, word.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(
        Symbol{index - 1, index + 1, static_cast<uint32_t>(pos), static_cast<uint32_t>(take)});
    pos += take;
  }
  symbols.back().next = -1;

  std::string scratch;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t rank =
        merges.rank(word.substr(l.offset, l.length), word.substr(r.offset, r.length), scratch);
    if (rank < 0) return;
    queue.push(Bigram{left, right, rank, l.length + r.length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) {
      continue;
    }
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

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
