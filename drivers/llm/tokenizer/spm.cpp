#include "drivers/llm/tokenizer/spm.h"

#include <queue>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {
namespace {

// A run of input bytes in a doubly linked list; merged-away symbols keep length 0.
struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
  uint32_t length;
};

// A candidate merge of two adjacent symbols. `length` is their combined length when queued: the
// symbols only grow, so a changed sum means one of them has merged since and the entry is stale.
struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  uint32_t length;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

Status spm_encode(const Vocab& vocab, const ByteTokens& byte_tokens, std::string_view text,
                  std::vector<int32_t>& out) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length =
        std::max<size_t>(1, utf8_sequence_length(static_cast<uint8_t>(text[pos])));
    const size_t take = std::min(length, text.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(
        Symbol{index - 1, index + 1, static_cast<uint32_t>(pos), static_cast<uint32_t>(take)});
    pos += take;
  }
  if (symbols.empty()) return ok_status();
  symbols.back().next = -1;

  std::vector<Bigram> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{},
                                                                      std::move(storage));
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t length = symbols[left].length + symbols[right].length;
    const int32_t id = vocab.find(text.substr(symbols[left].offset, length));
    if (id < 0) return;
    queue.push(Bigram{left, right, vocab.score(id), length});
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
