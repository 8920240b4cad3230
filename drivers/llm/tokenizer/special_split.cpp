#include "drivers/llm/tokenizer/special_split.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace icam::llm {

int32_t SpecialTokenSplitter::child(int32_t node, uint8_t byte) const {
  if (node == 0) return root_children_[byte];
  for (const auto& [b, next] : nodes_[node].children) {
    if (b == byte) return next;
  }
  return -1;
}

void SpecialTokenSplitter::add(std::string_view text, int32_t id, bool always) {
  if (text.empty()) return;
  tokens_.push_back(
      Token{static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(text.size()), id, always});
  arena_.append(text);
}

void SpecialTokenSplitter::finish() {
  // llama.cpp visits special tokens longest first; ties go to the lower id here (its sort leaves
  // them unspecified, which matters only for equal-length tokens that overlap each other).
  std::sort(tokens_.begin(), tokens_.end(), [](const Token& a, const Token& b) {
    return a.length != b.length ? a.length > b.length : a.id < b.id;
  });
  nodes_.assign(1, Node{});
  root_children_.assign(256, -1);
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string_view text(arena_.data() + tokens_[t].offset, tokens_[t].length);
    int32_t node = 0;
    for (const char c : text) {
      const uint8_t byte = static_cast<uint8_t>(c);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(Node{});
        if (node == 0) {
          root_children_[byte] = next;
        } else {
          auto& children = nodes_[node].children;
          children.insert(std::upper_bound(children.begin(), children.end(),
                                           std::pair<uint8_t, int32_t>(byte, -1)),
                          {byte, next});
        }
      }
      node = next;
    }
    // Texts are unique in a vocabulary, so each terminal node holds one token.
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

void SpecialTokenSplitter::split(std::string_view text, bool parse_special,
                                 std::vector<Fragment>& out) const {
  const size_t n = text.size();
  const auto byte_at = [&](size_t i) { return static_cast<uint8_t>(text[i]); };

  // Pass 1: positions where an allowed special token starts, and which tokens occur.
  std::vector<uint32_t> starts;
  std::vector<uint32_t> occurring;  // indices into tokens_ (so: in visiting order once sorted)
  std::vector<bool> seen;
  for (size_t pos = 0; pos < n; ++pos) {
    int32_t node = root_children_[byte_at(pos)];
    bool any = false;
    for (size_t k = pos + 1; node >= 0; ++k) {
      const int32_t t = nodes_[node].token;
      if (t >= 0 && (parse_special || tokens_[t].always)) {
        any = true;
        if (seen.empty()) seen.assign(tokens_.size(), false);
        if (!seen[t]) {
          seen[t] = true;
          occurring.push_back(static_cast<uint32_t>(t));
        }
      }
      if (k == n) break;
      node = child(node, byte_at(k));
    }
    if (any) starts.push_back(static_cast<uint32_t>(pos));
  }

  // Pass 2: visit the occurring tokens in order; accept each occurrence whose bytes are free.
  struct Match {
    uint32_t pos;
    uint32_t length;
    int32_t id;
  };
  std::vector<Match> matches;
  if (!occurring.empty()) {
    std::sort(occurring.begin(), occurring.end());
    std::vector<uint8_t> taken(n, 0);
    for (const uint32_t t : occurring) {
      const Token& token = tokens_[t];
      const char* token_text = arena_.data() + token.offset;
      for (const uint32_t pos : starts) {
        if (taken[pos] || n - pos < token.length) continue;
        if (std::memcmp(text.data() + pos, token_text, token.length) != 0) continue;
        bool free = true;
        for (uint32_t i = 1; i < token.length && free; ++i) free = taken[pos + i] == 0;
        if (!free) continue;
        std::memset(taken.data() + pos, 1, token.length);
        matches.push_back(Match{pos, token.length, token.id});
      }
    }
    std::sort(matches.begin(), matches.end(),
              [](const Match& a, const Match& b) { return a.pos < b.pos; });
  }

  size_t cursor = 0;
  for (const Match& match : matches) {
    if (match.pos > cursor) out.push_back(Fragment{text.substr(cursor, match.pos - cursor), -1});
    out.push_back(Fragment{text.substr(match.pos, match.length), match.id});
    cursor = match.pos + match.length;
  }
  if (cursor < n) out.push_back(Fragment{text.substr(cursor), -1});
}

}  // namespace icam::llm
