// The token table of a vocabulary: each id's text, score and type, and the reverse lookup from
// text to id. Both tokenizer algorithms (spm.cpp, bpe.cpp) and the Tokenizer read it.
// Immutable after build(); any thread may read it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/tokenizer/string_id_map.h"

namespace icam::llm {

// Token types, numbered as in GGUF's tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // <bos>, <start_of_turn>, <|im_end|>: text only when parsed as special
  user_defined = 4,  // pieces added by the model's authors; always matched whole, before the model
  unused = 5,
  byte = 6,  // <0xNN> byte-fallback pieces
};
std::string_view token_type_name(TokenType type);

class Vocab {
 public:
  // Builds the table. `scores` and `types` are empty (all 0 / normal) or as long as `texts`.
  // A text that appears twice is Errc::corrupt naming both ids. Empty texts are kept (their ids
  // decode to nothing) but cannot be looked up.
  static Result<Vocab> build(std::span<const std::string_view> texts, std::vector<float> scores,
                             std::vector<TokenType> types);

  int32_t size() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  bool contains(int32_t id) const { return id >= 0 && id < size(); }

  // Preconditions for the per-id accessors: contains(id).
  std::string_view text(int32_t id) const {
    return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  float score(int32_t id) const { return scores_[id]; }
  TokenType type(int32_t id) const { return types_[id]; }

  // The id whose text is exactly `text`, or -1.
  int32_t find(std::string_view text) const { return ids_.find(text); }

  // Changes one token's type; used while loading, for tokens a model marks inconsistently.
  void set_type(int32_t id, TokenType type) { types_[id] = type; }

 private:
  std::string arena_;              // every token text, back to back
  std::vector<uint32_t> offsets_;  // size() + 1 offsets into arena_
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  StringIdMap ids_;
};

}  // namespace icam::llm
