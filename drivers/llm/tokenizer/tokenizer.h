// Text <-> token ids for the model in a GGUF file.
//
// Two tokenizer families are implemented, chosen by tokenizer.ggml.model:
//   "llama" -> SentencePiece-style (spm.h): Llama 2, Gemma, Mistral;
//   "gpt2"  -> byte-level BPE (bpe.h, pretokenize.h): GPT-2, Llama 3, Qwen 2.
// Encoding matches llama.cpp's tokenizer for the same file, including its handling of special
// tokens (special_split.h): user-defined tokens are always split out of the text whole; control
// tokens only when the caller asks to parse special tokens.
//
// Round trip: decode(encode(s)) == s for every valid UTF-8 s, with one exception inherent to
// SentencePiece vocabularies: U+2581 ("▁") in the input is the vocabulary's own symbol for a space
// and decodes as a space.
//
// A Tokenizer copies what it needs from the GgufFile; the file may be closed afterwards.
// Thread-safety: immutable after from_gguf; every const method may run on many threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/tokenizer/bpe.h"
#include "drivers/llm/tokenizer/pretokenize.h"
#include "drivers/llm/tokenizer/special_split.h"
#include "drivers/llm/tokenizer/spm.h"
#include "drivers/llm/tokenizer/vocab.h"

namespace icam::llm {

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from `file` and validates it: the token, score and type arrays have
  // equal lengths, types are known, special token ids are in range, merges are well formed, a
  // token text appears once. Errors name the file and the key. An unknown tokenizer.ggml.model
  // or tokenizer.ggml.pre is Errc::unsupported naming it.
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& file);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text`. add_bos: start with the BOS token (callers usually pass
  // add_bos_default(); a vocabulary without BOS adds nothing); EOS is never appended, callers
  // that want it check add_eos_default(). parse_special: control tokens written in the text
  // ("<start_of_turn>") become their ids; otherwise they are tokenized as plain text. Invalid
  // UTF-8 is Errc::invalid_argument naming the byte offset. Costs O(n log n) in the text length.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_bos,
                                      bool parse_special) const;

  // The text of `ids`, concatenated. skip_special drops control and unknown tokens (user-defined
  // tokens are text and always kept). The result is the exact bytes, which may end inside a
  // UTF-8 character when the ids do (use StreamDecoder for incremental, always-valid text). Ids
  // outside the vocabulary produce nothing.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The bytes one token produces: its text for control, unknown and user-defined tokens (nothing
  // when skip_special and the token is control or unknown), the byte for byte tokens, the piece
  // with the vocabulary's space symbol turned back into spaces (SPM) or its byte-level
  // characters turned back into bytes (BPE). Empty for ids outside the vocabulary.
  std::string token_piece(int32_t id, bool skip_special = false) const;

  // Incremental decoding state: decode() is decode_append() over the ids with one fresh state.
  // It tracks where a space prefix inserted by encode() must be dropped again.
  struct DecodeState {
    bool at_text_start = true;  // at the start of the text or right after a special token
  };
  void decode_append(int32_t id, bool skip_special, DecodeState& state, std::string& out) const;

  int32_t vocab_size() const { return vocab_.size(); }
  int32_t bos() const { return bos_; }  // -1 when the vocabulary has none
  int32_t eos() const { return eos_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool add_bos_default() const { return add_bos_; }  // tokenizer.ggml.add_bos_token
  bool add_eos_default() const { return add_eos_; }  // tokenizer.ggml.add_eos_token
  bool add_space_prefix() const { return add_space_prefix_; }

  bool is_control(int32_t id) const;
  // EOS, plus end-of-turn tokens such as "<end_of_turn>", "<|eot_id|>", "<|im_end|>",
  // "<|endoftext|>" and tokenizer.ggml.eot_token_id / eom_token_id when present.
  bool is_end_of_generation(int32_t id) const;
  // The id whose vocabulary text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const { return vocab_.find(text); }
  // The raw vocabulary entry; empty for ids outside the vocabulary.
  std::string_view token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;

  std::string_view kind() const { return kind_ == Kind::spm ? "spm" : "bpe"; }
  // The pre-tokenizer (BPE only; "" for SPM).
  std::string_view pre_tokenizer() const;
  const Vocab& vocab() const { return vocab_; }

 private:
  enum class Kind { spm, bpe };
  Tokenizer() = default;

  Status load(const GgufFile& file);
  Status load_special_ids(const GgufFile& file);
  void build_derived_tables();
  Status encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;

  Kind kind_ = Kind::spm;
  Vocab vocab_;
  PreTokenizer pre_ = PreTokenizer::gpt2;
  BpeMerges merges_;
  BpeOptions bpe_options_;
  SpecialTokenSplitter splitter_;
  ByteTokens byte_tokens_{};

  // Decoded bytes of every token (token_piece with skip_special = false), back to back.
  std::string pieces_;
  std::vector<uint32_t> piece_offsets_;
  std::vector<bool> end_of_generation_;

  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t unk_ = -1;
  int32_t pad_ = -1;
  int32_t eot_ = -1;
  int32_t eom_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
};

}  // namespace icam::llm
