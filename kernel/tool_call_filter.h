// Tool calls well formed by construction: the token filter (drivers/llm/sampling/token_filter.h)
// the agent loop gives each process's sequence.
//
// It watches the model's output for "<tool_call>". From there until the call is complete it is
// active: the sampler may only choose tokens whose bytes keep the call inside the grammar of
// tool_grammar.h (a tool the process may use, then that tool's argument schema -- for tool.call,
// one of the process's external tools and that tool's schema -- then "</tool_call>"). When the
// call completes, or if the bytes after the opening tag already left the grammar (a token
// spanning the tag), it goes back to watching. Tokens that write no text
// (control tokens, end of generation, unknown) are refused while active, so the model cannot end
// its turn in the middle of a call.
//
// Cost: allows() copies the automaton's state (a few hundred bytes) and feeds it the token's
// bytes; the full allowed set (asked only when the model's own choice is refused) first feeds
// each of the 256 possible first bytes once and then checks only the tokens starting with a byte
// that passed.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/sampling/token_filter.h"
#include "drivers/llm/tokenizer/tokenizer.h"
#include "kernel/tool_grammar.h"

namespace icam::kernel {

// The bytes every token of a vocabulary writes, for byte-level grammars. Built once per
// tokenizer and shared by every process's filter.
class TokenBytes {
 public:
  static std::shared_ptr<const TokenBytes> build(const llm::Tokenizer& tokenizer);

  int32_t vocab_size() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  std::string_view bytes(int32_t token) const;
  // False for tokens that write no text of their own: control, unknown and unused tokens, end of
  // generation, empty pieces.
  bool is_text(int32_t token) const { return is_text_[token] != 0; }
  // The text tokens whose first byte is `byte`.
  std::span<const int32_t> starting_with(uint8_t byte) const;

 private:
  std::string bytes_;
  std::vector<uint32_t> offsets_;  // token t: [offsets_[t], offsets_[t + 1])
  std::vector<uint8_t> is_text_;
  std::vector<int32_t> by_first_byte_;       // token ids grouped by first byte
  std::vector<uint32_t> first_byte_starts_;  // 257 group boundaries into by_first_byte_
};

class ToolCallFilter final : public llm::TokenFilter {
 public:
  ToolCallFilter(std::shared_ptr<const TokenBytes> vocab,
                 std::shared_ptr<const ToolCallGrammar> grammar);

  bool active() const override { return inside_; }
  bool allows(int32_t token) const override;
  void allowed_tokens(int32_t vocab_size, std::vector<uint8_t>& allowed) const override;
  void accept(int32_t token) override;

  // The grammar it holds calls to (shared: a fresh filter for the same process reuses it).
  const std::shared_ptr<const ToolCallGrammar>& grammar() const { return grammar_; }

  // How many calls it has seen opened, and how many of those it constrained to completion.
  int64_t calls_opened() const { return opened_; }
  int64_t calls_completed() const { return completed_; }

 private:
  void open_call(std::string_view rest);

  std::shared_ptr<const TokenBytes> vocab_;
  std::shared_ptr<const ToolCallGrammar> grammar_;
  bool inside_ = false;
  ToolCallGrammar::State state_;
  std::string tail_;  // the last bytes written while watching, to find the opening tag
  int64_t opened_ = 0;
  int64_t completed_ = 0;
};

}  // namespace icam::kernel
