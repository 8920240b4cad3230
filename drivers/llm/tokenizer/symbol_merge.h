// The merge loop shared by the SentencePiece-style and the byte-level BPE tokenizers: the text
// starts as a doubly linked list of UTF-8 characters, and the adjacent pair with the best
// priority is merged, again and again, until no adjacent pair qualifies. The two tokenizers
// differ only in how a pair is rated (SPM: the merged piece's score; BPE: the merge's rank).
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

namespace icam::llm {

// A run of input bytes; merged-away symbols keep length 0.
struct MergeSymbol {
  int32_t prev;
  int32_t next;  // -1 after the last symbol
  uint32_t offset;
  uint32_t length;
};

// One symbol per UTF-8 character of `text` (a malformed lead byte stands alone).
std::vector<MergeSymbol> split_utf8_characters(std::string_view text);

// Merges adjacent symbols in order of `rate(left, right)`, a std::optional<double> where lower is
// better and nullopt means the pair may not merge; ties go to the leftmost pair. Afterwards the
// surviving symbols are reached from index 0 through `next`.
template <typename Rate>
void merge_symbols(std::vector<MergeSymbol>& symbols, Rate&& rate) {
  // `length` is the pair's combined length when queued: symbols only grow, so a different sum
  // later means one side has merged since and the entry is stale.
  struct Candidate {
    int32_t left;
    int32_t right;
    double priority;
    uint32_t length;
  };
  struct Later {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue(Later{}, std::move(storage));
  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const std::optional<double> priority = rate(symbols[left], symbols[right]);
    if (priority)
      queue.push({left, right, *priority, symbols[left].length + symbols[right].length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) consider(i - 1, i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    MergeSymbol& left = symbols[top.left];
    MergeSymbol& right = symbols[top.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != top.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }
}

}  // namespace icam::llm
