#include "drivers/llm/tokenizer/tokenizer.h"

#include <limits>

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Texts of tokens that end a turn in the chat formats icam knows: end of generation.
constexpr std::string_view kEndOfTurnTexts[] = {
    "<end_of_turn>", "<|eot_id|>", "<|eom_id|>",      "<|im_end|>",         "<|endoftext|>",
    "<|end|>",       "<EOT>",      "<|end_of_text|>", "<end_of_utterance>",
};

// Texts that llama.cpp treats as control tokens whatever type the file gives them (its
// end-of-turn, end-of-generation and fill-in-the-middle tokens). Doing the same keeps encodings
// identical: Gemma 3's "</s>" (an HTML tag, typed user-defined) is split out of the text only
// with parse_special, and skipped by decode(skip_special). (llama.cpp also ends generation on
// "</s>"; icam does not, unless it is the model's EOS.)
// clang-format off
constexpr std::string_view kForcedControlTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<end_of_utterance>", "<|eom_id|>", "<|return|>",
    "<|call|>", "<|flush|>", "<|calls|>", "</s>", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",  // DeepSeek
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>",
    "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
    "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};
// clang-format on

bool is_special_type(TokenType type) {
  return type == TokenType::control || type == TokenType::unknown ||
         type == TokenType::user_defined;
}

// "<0xNN>" -> NN, or -1 when `text` is not of that form.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (const char c : text.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') {
      value += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value += c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

std::string byte_token_text(uint8_t byte) {
  static const char* const kHex = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
}

void append_unescaped_spaces(std::string& out, std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t found = text.find(kSpaceSymbol, pos);
    if (found == std::string_view::npos) break;
    out.append(text.substr(pos, found - pos));
    out.push_back(' ');
    pos = found + kSpaceSymbol.size();
  }
  out.append(text.substr(pos));
}

// Byte-level BPE pieces are written in GPT-2's mapped characters; map them back to bytes. A
// character outside the map (a hand-made vocabulary) stands for itself.
void append_byte_decoded(std::string& out, std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    const uint32_t cp = decode_utf8(text, pos);
    const int byte = unicode_to_byte(cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(text.substr(start, pos - start));
    }
  }
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& file) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  ICAM_TRY(tokenizer->load(file));
  return tokenizer;
}

Status Tokenizer::load(const GgufFile& file) {
  const auto fail = [&](Errc code, const auto&... args) {
    return make_error(code, args...).with_context(file.path());
  };

  if (file.find("tokenizer.ggml.model") == nullptr) {
    return fail(Errc::not_found, "no tokenizer.ggml.model: the file carries no tokenizer");
  }
  const std::string_view model = ICAM_TRY(file.get_string("tokenizer.ggml.model"));
  if (model == "llama") {
    kind_ = Kind::spm;
  } else if (model == "gpt2") {
    kind_ = Kind::bpe;
  } else {
    return fail(Errc::unsupported, "tokenizer.ggml.model '", model,
                "' is not supported (icam implements 'llama', SentencePiece-style, and 'gpt2', "
                "byte-level BPE)");
  }

  const auto texts = ICAM_TRY(file.get_string_array("tokenizer.ggml.tokens"));
  if (texts.empty()) return fail(Errc::corrupt, "tokenizer.ggml.tokens is empty");
  if (texts.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return fail(Errc::unsupported, "tokenizer.ggml.tokens has ", texts.size(), " entries");
  }
  const size_t n = texts.size();

  std::vector<float> scores;
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    scores = ICAM_TRY(file.get_float_array("tokenizer.ggml.scores"));
    if (scores.size() != n) {
      return fail(Errc::corrupt, "tokenizer.ggml.scores has ", scores.size(),
                  " entries but tokenizer.ggml.tokens has ", n);
    }
  }
  std::vector<TokenType> types;
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    const auto raw = ICAM_TRY(file.get_int_array("tokenizer.ggml.token_type"));
    if (raw.size() != n) {
      return fail(Errc::corrupt, "tokenizer.ggml.token_type has ", raw.size(),
                  " entries but tokenizer.ggml.tokens has ", n);
    }
    types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (raw[i] < 0 || raw[i] > static_cast<int64_t>(TokenType::byte)) {
        return fail(Errc::corrupt, "tokenizer.ggml.token_type[", i, "] = ", raw[i],
                    " is not a token type (0..6)");
      }
      types.push_back(static_cast<TokenType>(raw[i]));
    }
  }
  vocab_ = ICAM_TRY_CTX(Vocab::build(texts, std::move(scores), std::move(types)),
                        file.path() + ": tokenizer.ggml.tokens");

  if (kind_ == Kind::bpe) {
    std::string_view pre;
    if (file.find("tokenizer.ggml.pre") != nullptr) {
      pre = ICAM_TRY(file.get_string("tokenizer.ggml.pre"));
    }
    const auto kind = pretokenizer_from_name(pre);
    if (!kind) {
      return fail(Errc::unsupported, "tokenizer.ggml.pre '", pre,
                  "' is not supported (icam implements 'gpt2'/'default', 'llama3'/'llama-bpe' "
                  "and 'qwen2')");
    }
    pre_ = *kind;
    if (file.find("tokenizer.ggml.merges") == nullptr) {
      return fail(Errc::not_found, "a 'gpt2' tokenizer needs tokenizer.ggml.merges");
    }
    const auto merges = ICAM_TRY(file.get_string_array("tokenizer.ggml.merges"));
    merges_ = ICAM_TRY_CTX(BpeMerges::build(merges), file.path() + ": tokenizer.ggml.merges");
  }

  ICAM_TRY(load_special_ids(file));
  build_derived_tables();
  return ok_status();
}

Status Tokenizer::load_special_ids(const GgufFile& file) {
  const int32_t n = vocab_.size();
  // Defaults as llama.cpp uses them for files that do not say.
  if (kind_ == Kind::spm) {
    bos_ = n > 1 ? 1 : -1;
    eos_ = n > 2 ? 2 : -1;
    unk_ = 0;
    add_bos_ = true;
    add_space_prefix_ = true;
  } else {
    add_bos_ = pre_ == PreTokenizer::llama3;
    add_space_prefix_ = false;
  }
  add_eos_ = false;

  const struct {
    const char* key;
    int32_t* id;
  } ids[] = {
      {"tokenizer.ggml.bos_token_id", &bos_},     {"tokenizer.ggml.eos_token_id", &eos_},
      {"tokenizer.ggml.unknown_token_id", &unk_}, {"tokenizer.ggml.padding_token_id", &pad_},
      {"tokenizer.ggml.eot_token_id", &eot_},     {"tokenizer.ggml.eom_token_id", &eom_},
  };
  for (const auto& entry : ids) {
    if (file.find(entry.key) == nullptr) continue;
    const uint32_t id = ICAM_TRY(file.get_u32(entry.key));
    if (id >= static_cast<uint32_t>(n)) {
      return make_error(Errc::corrupt, entry.key, " = ", id, " is outside the vocabulary (", n,
                        " tokens)")
          .with_context(file.path());
    }
    *entry.id = static_cast<int32_t>(id);
  }

  if (file.find("tokenizer.ggml.add_bos_token") != nullptr) {
    add_bos_ = ICAM_TRY(file.get_bool("tokenizer.ggml.add_bos_token"));
  }
  if (file.find("tokenizer.ggml.add_eos_token") != nullptr) {
    add_eos_ = ICAM_TRY(file.get_bool("tokenizer.ggml.add_eos_token"));
  }
  // Only SentencePiece-style vocabularies put a space before the text; BPE ignores the key.
  if (kind_ == Kind::spm && file.find("tokenizer.ggml.add_space_prefix") != nullptr) {
    add_space_prefix_ = ICAM_TRY(file.get_bool("tokenizer.ggml.add_space_prefix"));
  }
  if (add_bos_ && bos_ < 0) {
    return make_error(Errc::corrupt, "tokenizer.ggml.add_bos_token is true but there is no BOS")
        .with_context(file.path());
  }
  if (add_eos_ && eos_ < 0) {
    return make_error(Errc::corrupt, "tokenizer.ggml.add_eos_token is true but there is no EOS")
        .with_context(file.path());
  }
  return ok_status();
}

void Tokenizer::build_derived_tables() {
  const int32_t n = vocab_.size();

  for (const std::string_view text : kForcedControlTexts) {
    const int32_t id = vocab_.find(text);
    if (id >= 0) vocab_.set_type(id, TokenType::control);
  }
  end_of_generation_.assign(n, false);
  for (const std::string_view text : kEndOfTurnTexts) {
    const int32_t id = vocab_.find(text);
    if (id >= 0) end_of_generation_[id] = true;
  }
  for (const int32_t id : {eos_, eot_, eom_}) {
    if (id >= 0) end_of_generation_[id] = true;
  }

  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = vocab_.type(id);
    if (is_special_type(type)) {
      splitter_.add(vocab_.text(id), id, type == TokenType::user_defined);
    }
  }
  splitter_.finish();

  // SentencePiece byte fallback: "<0xNN>", else the byte as a one-byte piece, else unknown.
  for (int byte = 0; byte < 256; ++byte) {
    int32_t id = vocab_.find(byte_token_text(static_cast<uint8_t>(byte)));
    if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(byte)));
    if (id < 0) id = unk_;
    byte_tokens_[byte] = id;
  }
  bpe_options_.ignore_merges = pre_ == PreTokenizer::llama3;
  bpe_options_.unknown_token = unk_;

  piece_offsets_.clear();
  piece_offsets_.reserve(n + 1);
  piece_offsets_.push_back(0);
  pieces_.clear();
  for (int32_t id = 0; id < n; ++id) {
    const std::string_view text = vocab_.text(id);
    switch (vocab_.type(id)) {
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::user_defined:
        pieces_.append(text);
        break;
      case TokenType::normal:
        if (kind_ == Kind::spm) {
          append_unescaped_spaces(pieces_, text);
        } else {
          append_byte_decoded(pieces_, text);
        }
        break;
      case TokenType::byte: {
        const int byte = parse_byte_token(text);
        if (byte >= 0) {
          pieces_.push_back(static_cast<char>(byte));
        } else if (kind_ == Kind::bpe) {
          append_byte_decoded(pieces_, text);
        } else {
          pieces_.append(text);
        }
        break;
      }
      case TokenType::unused:
      case TokenType::undefined:
        break;  // produce no text, as in llama.cpp
    }
    piece_offsets_.push_back(static_cast<uint32_t>(pieces_.size()));
  }
}

Status Tokenizer::encode_fragment(std::string_view text, bool space_prefix,
                                  std::vector<int32_t>& out) const {
  if (kind_ == Kind::spm) {
    std::string escaped;
    escaped.reserve(text.size() + text.size() / 2 + 3);
    if (space_prefix) escaped.append(kSpaceSymbol);
    for (const char c : text) {
      if (c == ' ') {
        escaped.append(kSpaceSymbol);
      } else {
        escaped.push_back(c);
      }
    }
    return spm_encode(vocab_, byte_tokens_, escaped, out);
  }
  std::vector<std::string_view> words;
  pretokenize(pre_, text, words);
  std::string encoded;
  for (const std::string_view word : words) {
    encoded.clear();
    append_byte_encoded(encoded, word);
    ICAM_TRY(bpe_encode_word(vocab_, merges_, bpe_options_, encoded, out));
  }
  return ok_status();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_bos,
                                               bool parse_special) const {
  ICAM_TRY(validate_utf8(text));
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && bos_ >= 0) out.push_back(bos_);

  std::vector<Fragment> fragments;
  splitter_.split(text, parse_special, fragments);
  // Like llama.cpp, SentencePiece's space prefix goes before every raw fragment that starts the
  // text or follows a special token.
  bool after_special = true;
  for (const Fragment& fragment : fragments) {
    if (fragment.is_token()) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    ICAM_TRY(encode_fragment(fragment.text, add_space_prefix_ && after_special, out));
    after_special = false;
  }
  return out;
}

void Tokenizer::decode_append(int32_t id, bool skip_special, DecodeState& state,
                              std::string& out) const {
  if (!vocab_.contains(id)) return;
  const TokenType type = vocab_.type(id);
  std::string_view piece = std::string_view(pieces_).substr(
      piece_offsets_[id], piece_offsets_[id + 1] - piece_offsets_[id]);
  if (is_special_type(type)) {
    state.at_text_start = true;
    if (skip_special && type != TokenType::user_defined) return;
    out.append(piece);
    return;
  }
  // Drop the space that encode() put before a fragment at the start or after a special token.
  if (add_space_prefix_ && state.at_text_start && !piece.empty() && piece.front() == ' ') {
    piece.remove_prefix(1);
  }
  state.at_text_start = false;
  out.append(piece);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  DecodeState state;
  for (const int32_t id : ids) decode_append(id, skip_special, state, out);
  return out;
}

std::string Tokenizer::token_piece(int32_t id, bool skip_special) const {
  if (!vocab_.contains(id)) return {};
  const TokenType type = vocab_.type(id);
  if (skip_special && (type == TokenType::control || type == TokenType::unknown)) return {};
  return pieces_.substr(piece_offsets_[id], piece_offsets_[id + 1] - piece_offsets_[id]);
}

bool Tokenizer::is_control(int32_t id) const {
  return vocab_.contains(id) && vocab_.type(id) == TokenType::control;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return vocab_.contains(id) && end_of_generation_[id];
}

std::string_view Tokenizer::token_text(int32_t id) const {
  return vocab_.contains(id) ? vocab_.text(id) : std::string_view();
}

TokenType Tokenizer::token_type(int32_t id) const {
  return vocab_.contains(id) ? vocab_.type(id) : TokenType::undefined;
}

std::string_view Tokenizer::pre_tokenizer() const {
  return kind_ == Kind::bpe ? pretokenizer_name(pre_) : std::string_view();
}

}  // namespace icam::llm
