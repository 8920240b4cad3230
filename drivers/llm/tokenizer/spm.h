// SentencePiece-style tokenization (GGUF tokenizer.ggml.model "llama": Llama 2, Gemma, Mistral).
//
// Matches llama.cpp's SPM tokenizer: the text, spaces already escaped as U+2581, is split into
// UTF-8 characters; then the adjacent pair whose concatenation is a vocabulary piece with the
// highest score is merged, repeatedly (ties: the leftmost pair), until no adjacent pair forms a
// piece. Each final symbol is its piece's id, or, for a character the vocabulary lacks, the ids
// of its bytes (<0xNN> byte-fallback pieces).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/tokenizer/vocab.h"

namespace icam::llm {

// Token ids of the 256 byte values (-1 where the vocabulary has none).
using ByteTokens = std::array<int32_t, 256>;

// Appends the ids for `text` (valid UTF-8, one raw fragment, whitespace already escaped) to
// `out`. Fails with Errc::unsupported only when a byte needs a fallback piece the vocabulary
// lacks. Thread-safe: uses only its arguments.
Status spm_encode(const Vocab& vocab, const ByteTokens& byte_tokens, std::string_view text,
                  std::vector<int32_t>& out);

}  // namespace icam::llm
