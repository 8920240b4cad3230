// Pre-tokenizers of byte-level BPE vocabularies: they cut text into words before merging, so
// that no merge crosses a word boundary. Each is the hand-written equivalent of a pattern from
// the model's tokenizer.json (named by GGUF's tokenizer.ggml.pre), with \p{L}, \p{N} and \s taken
// from unicode.h. std::regex is neither Unicode-aware nor fast enough for this.
//
//   gpt2   ("gpt2", "gpt-2", "default", or no tokenizer.ggml.pre):
//          's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3 ("llama3", "llama-v3", "llama-bpe"):
//          (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2  ("qwen2"): as llama3, with \p{N} (one digit per word) instead of \p{N}{1,3}
//
// Code points that are in no category (unassigned in Unicode 14) count as [^\s\p{L}\p{N}], as
// in the patterns; llama.cpp's scanners instead cut them off as single-character words.
// Note: llama.cpp's "default" uses a different, multi-pattern split; icam treats "default" as
// GPT-2's pattern, the one the original byte-level BPE vocabularies were trained with.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace icam::llm {

enum class PreTokenizer { gpt2, llama3, qwen2 };

// The pre-tokenizer for a tokenizer.ggml.pre value, or nullopt for one icam does not implement.
std::optional<PreTokenizer> pretokenizer_from_name(std::string_view name);
std::string_view pretokenizer_name(PreTokenizer kind);

// Appends the words of `text` (valid UTF-8) to `words`, in order; together they cover the text
// exactly and none is empty. The views point into `text`. Thread-safe.
void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>& words);

}  // namespace icam::llm
