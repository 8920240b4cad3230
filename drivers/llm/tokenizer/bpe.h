// Byte-level BPE (GGUF tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen 2).
//
// A word from the pre-tokenizer is mapped byte by byte to GPT-2's printable characters
// (unicode.h), split into those characters, and the adjacent pair with the lowest merge rank
// (its index in tokenizer.ggml.merges) is merged, repeatedly (ties: the leftmost pair), until no
// adjacent pair has a rank. This matches llama.cpp's BPE tokenizer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/tokenizer/string_id_map.h"
#include "drivers/llm/tokenizer/vocab.h"

namespace icam::llm {

// The merge list: "left right" strings, rank = index.
class BpeMerges {
 public:
  // Errc::corrupt when an entry has no separating space (after its first byte) or repeats.
  static Result<BpeMerges> build(std::span<const std::string_view> merges);

  // The rank of merging `left` with `right`, or -1. `scratch` is reused to build the key.
  int32_t rank(std::string_view left, std::string_view right, std::string& scratch) const;

  size_t size() const { return ranks_.size(); }

 private:
  StringIdMap ranks_;  // "left right" -> rank
};

struct BpeOptions {
  // Llama 3's tokenizer emits a word that is itself a vocabulary piece without merging it.
  bool ignore_merges = false;
  int32_t unknown_token = -1;  // stands for characters the vocabulary lacks; -1: none
};

// Appends the ids of one byte-encoded word (UTF-8 of the mapped characters) to `out`. A merged
// symbol that is not a vocabulary piece falls back to its characters' pieces; a character that
// is not a piece either becomes the unknown token, or the call fails with Errc::unsupported when
// there is none. Thread-safe: uses only its arguments.
Status bpe_encode_word(const Vocab& vocab, const BpeMerges& merges, const BpeOptions& options,
                       std::string_view word, std::vector<int32_t>& out);

}  // namespace icam::llm
