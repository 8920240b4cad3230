#include "kernel/tool_call_filter.h"

#include <algorithm>

#include "kernel/tool_call.h"

namespace icam::kernel {

std::shared_ptr<const TokenBytes> TokenBytes::build(const llm::Tokenizer& tokenizer) {
  auto out = std::make_shared<TokenBytes>();
  const int32_t n = tokenizer.vocab_size();
  out->offsets_.reserve(static_cast<size_t>(n) + 1);
  out->is_text_.assign(static_cast<size_t>(n), 0);
  out->offsets_.push_back(0);
  std::vector<uint32_t> counts(256, 0);
  for (int32_t t = 0; t < n; ++t) {
    const llm::TokenType type = tokenizer.token_type(t);
    const bool text = !tokenizer.is_control(t) && type != llm::TokenType::unknown &&
                      type != llm::TokenType::unused && !tokenizer.is_end_of_generation(t);
    std::string piece = text ? tokenizer.token_piece(t) : std::string();
    if (!piece.empty()) {
      out->is_text_[t] = 1;
      ++counts[static_cast<uint8_t>(piece[0])];
    }
    out->bytes_ += piece;
    out->offsets_.push_back(static_cast<uint32_t>(out->bytes_.size()));
  }
  out->first_byte_starts_.assign(257, 0);
  for (int b = 0; b < 256; ++b)
    out->first_byte_starts_[b + 1] = out->first_byte_starts_[b] + counts[b];
  out->by_first_byte_.resize(out->first_byte_starts_[256]);
  std::vector<uint32_t> next(out->first_byte_starts_.begin(), out->first_byte_starts_.end() - 1);
  for (int32_t t = 0; t < n; ++t)
    if (out->is_text_[t]) out->by_first_byte_[next[static_cast<uint8_t>(out->bytes(t)[0])]++] = t;
  return out;
}

std::string_view TokenBytes::bytes(int32_t token) const {
  if (token < 0 || token >= vocab_size()) return {};
  return std::string_view(bytes_).substr(offsets_[token], offsets_[token + 1] - offsets_[token]);
}

std::span<const int32_t> TokenBytes::starting_with(uint8_t byte) const {
  return std::span<const int32_t>(by_first_byte_)
      .subspan(first_byte_starts_[byte], first_byte_starts_[byte + 1] - first_byte_starts_[byte]);
}

ToolCallFilter::ToolCallFilter(std::shared_ptr<const TokenBytes> vocab,
                               std::shared_ptr<const ToolCallGrammar> grammar)
    : vocab_(std::move(vocab)), grammar_(std::move(grammar)) {}

bool ToolCallFilter::allows(int32_t token) const {
  if (!inside_) return true;
  if (token < 0 || token >= vocab_->vocab_size() || !vocab_->is_text(token)) return false;
  ToolCallGrammar::State probe = state_;
  return grammar_->feed(probe, vocab_->bytes(token));
}

void ToolCallFilter::allowed_tokens(int32_t vocab_size, std::vector<uint8_t>& allowed) const {
  allowed.assign(static_cast<size_t>(vocab_size), inside_ ? 0 : 1);
  if (!inside_) return;
  for (int b = 0; b < 256; ++b) {
    ToolCallGrammar::State probe = state_;
    if (!grammar_->feed(probe, static_cast<uint8_t>(b))) continue;
    for (int32_t t : vocab_->starting_with(static_cast<uint8_t>(b))) {
      if (t >= vocab_size) continue;
      ToolCallGrammar::State s = probe;
      allowed[t] = grammar_->feed(s, vocab_->bytes(t).substr(1)) ? 1 : 0;
    }
  }
}

void ToolCallFilter::accept(int32_t token) {
  const std::string_view bytes = vocab_->bytes(token);
  if (inside_) {
    if (!grammar_->feed(state_, bytes)) {
      inside_ = false;  // only reachable when the filter was bypassed; stop constraining
    } else if (ToolCallGrammar::complete(state_)) {
      inside_ = false;
      ++completed_;
    }
    tail_.clear();
    return;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    tail_ += bytes[i];
    if (tail_.size() > kToolCallOpen.size()) tail_.erase(0, tail_.size() - kToolCallOpen.size());
    if (tail_ == kToolCallOpen) {
      open_call(bytes.substr(i + 1));
      return;
    }
  }
}

void ToolCallFilter::open_call(std::string_view rest) {
  tail_.clear();
  ++opened_;
  state_ = grammar_->initial();
  inside_ = grammar_->feed(state_, rest);
  if (inside_ && ToolCallGrammar::complete(state_)) {
    inside_ = false;
    ++completed_;
  }
}

}  // namespace icam::kernel
