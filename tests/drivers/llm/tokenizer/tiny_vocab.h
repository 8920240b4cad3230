// Tiny hand-made tokenizer vocabularies, written as GGUF files with GgufWriter, whose expected
// token ids are worked out by hand in the tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/gguf_writer.h"
#include "drivers/llm/tokenizer/tokenizer.h"

namespace icam::llm::testing {

struct TinyToken {
  std::string text;
  float score = 0.0f;
  TokenType type = TokenType::normal;
};

// Writes the tokenizer.ggml.* keys for `tokens` (tokens, scores, token_type) and `model`.
void write_vocab(GgufWriter& writer, const std::string& model,
                 const std::vector<TinyToken>& tokens);

// Opens the writer's image as a GgufFile named "tiny.gguf"; fails the current test on error.
std::unique_ptr<GgufFile> open_image(const GgufWriter& writer);

// SentencePiece-style ("llama") vocabulary:
//   0 <unk> (unknown)  1 <s> (control)  2 </s> (control)
//   3..258 <0x00>..<0xFF> (byte)
//   then kSpmPieces in order from id 259 (see tiny_vocab.cpp), including user-defined "\n\n",
//   "<td>" and control "<start_of_turn>", "<end_of_turn>".
// bos 1, eos 2, unk 0, add_bos_token true, add_space_prefix as given.
GgufWriter tiny_spm_writer(bool add_space_prefix);
// The id of a piece of the tiny SPM vocabulary (fails the test when absent).
int32_t spm_id(const std::string& text);
inline int32_t spm_byte(uint8_t byte) {
  return 3 + byte;
}

// Byte-level BPE ("gpt2") vocabulary: ids 0..255 are the single mapped characters of bytes
// 0..255 (id == byte value), then the merged pieces and special tokens listed in
// tiny_vocab.cpp. Merges: "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l",
// "Ġworl d", "Ġ Ġ" in rank order. `pre` is written as tokenizer.ggml.pre.
GgufWriter tiny_bpe_writer(const std::string& pre);
int32_t bpe_id(const std::string& text);

std::unique_ptr<Tokenizer> load_tokenizer(const GgufWriter& writer);

}  // namespace icam::llm::testing
