#include "drivers/llm/tokenizer/vocab.h"

namespace icam::llm {

std::string_view token_type_name(TokenType type) {
  switch (type) {
    case TokenType::undefined:
      return "undefined";
    case TokenType::normal:
      return "normal";
    case TokenType::unknown:
      return "unknown";
    case TokenType::control:
      return "control";
    case TokenType::user_defined:
      return "user_defined";
    case TokenType::unused:
      return "unused";
    case TokenType::byte:
      return "byte";
  }
  return "invalid";
}

Result<Vocab> Vocab::build(std::span<const std::string_view> texts, std::vector<float> scores,
                           std::vector<TokenType> types) {
  if (!scores.empty() && scores.size() != texts.size()) {
    return make_error(Errc::invalid_argument, "vocabulary has ", texts.size(), " tokens but ",
                      scores.size(), " scores");
  }
  if (!types.empty() && types.size() != texts.size()) {
    return make_error(Errc::invalid_argument, "vocabulary has ", texts.size(), " tokens but ",
                      types.size(), " token types");
  }
  Vocab vocab;
  size_t total = 0;
  for (const auto text : texts) total += text.size();
  if (total > UINT32_MAX) {
    return make_error(Errc::unsupported, "vocabulary text is ", total, " bytes (limit 4 GiB)");
  }
  vocab.arena_.reserve(total);
  vocab.offsets_.reserve(texts.size() + 1);
  vocab.offsets_.push_back(0);
  for (const auto text : texts) {
    vocab.arena_.append(text);
    vocab.offsets_.push_back(static_cast<uint32_t>(vocab.arena_.size()));
  }
  vocab.scores_ = scores.empty() ? std::vector<float>(texts.size(), 0.0f) : std::move(scores);
  vocab.types_ =
      types.empty() ? std::vector<TokenType>(texts.size(), TokenType::normal) : std::move(types);
  vocab.ids_.reserve(texts.size());
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string_view text = vocab.text(id);
    if (text.empty()) continue;
    if (!vocab.ids_.insert(text, id)) {
      return make_error(Errc::corrupt, "token text '", text, "' appears twice, as ids ",
                        vocab.ids_.find(text), " and ", id);
    }
  }
  return vocab;
}

}  // namespace icam::llm
