// Splits special tokens out of raw text before the tokenizer model sees it.
//
// Control, unknown and user-defined tokens are never produced by merging pieces; they are
// matched as whole strings in the input first. User-defined tokens (Gemma's runs of newlines,
// spaces and tabs, its HTML tags) are always matched; control and unknown tokens only when the
// caller asks to parse special tokens (e.g. "<start_of_turn>" in a rendered chat prompt).
//
// The result is exactly that of llama.cpp's partition, which visits the special tokens longest
// first and, for each, splits every remaining raw fragment at its leftmost non-overlapping
// occurrences. Doing that literally costs one scan of the text per special token (262,144 tokens
// for Gemma with parse_special). Instead one trie walk finds the positions where any special token
// starts and which tokens occur at all; then only those tokens are visited, in the same order
// (length descending, then id ascending), each over only those positions, and an occurrence is
// accepted when none of its bytes was taken by an earlier one. This is the same rule, since an
// occurrence's fate depends only on the occurrences overlapping it, and it costs time and memory
// proportional to the text, not to the number of overlapping occurrences (a run of 1,000 spaces
// holds 30,000 occurrences of Gemma's space-run tokens).
// Thread-safety: split() is const and may run on many threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace icam::llm {

// One piece of the split input: raw text for the tokenizer model, or a special token's id.
struct Fragment {
  std::string_view text;  // the input bytes this fragment covers
  int32_t token = -1;     // the special token's id, or -1 for raw text
  bool is_token() const { return token >= 0; }
};

class SpecialTokenSplitter {
 public:
  // Registers a special token. `always` tokens (user-defined) are matched even without
  // parse_special. Empty texts are ignored. Call finish() after the last add().
  void add(std::string_view text, int32_t id, bool always);
  void finish();

  // Precondition: finish() was called. Splits `text` into fragments in input order; adjacent raw
  // fragments never occur and raw fragments are never empty. The fragments' views point into
  // `text`.
  void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

  size_t size() const { return tokens_.size(); }

 private:
  struct Token {
    uint32_t offset;  // text is arena_[offset, offset + length)
    uint32_t length;
    int32_t id;
    bool always;
  };
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index, sorted by byte
    int32_t token = -1;                                 // index into tokens_
  };

  int32_t child(int32_t node, uint8_t byte) const;

  std::string arena_;                // the tokens' texts
  std::vector<Token> tokens_;        // after finish(): sorted longest first, then by id
  std::vector<Node> nodes_{Node{}};  // nodes_[0] is the root
  std::vector<int32_t> root_children_ = std::vector<int32_t>(256, -1);  // fast first step
};

}  // namespace icam::llm
