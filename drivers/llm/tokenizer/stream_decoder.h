// Incremental detokenization for streaming generated text.
#pragma once

#include <cstdint>
#include <string>

#include "drivers/llm/tokenizer/tokenizer.h"

namespace icam::llm {

// Turns a stream of token ids into text as it becomes complete: each feed() returns only whole
// UTF-8 characters, holding back the bytes of a character split across tokens (byte-fallback
// pieces like <0xE2><0x82><0xAC>) until its last byte arrives. Bytes that can never form a valid
// character come out as U+FFFD, so the concatenated output is always valid UTF-8, and equals
// decode(ids, skip_special) whenever that is valid UTF-8.
// Not thread-safe; one decoder per stream. The tokenizer must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  // Adds one token; returns the text completed by it (often empty or one piece).
  std::string feed(int32_t id);
  // Ends the stream: returns held-back bytes (as U+FFFD each) and resets for a new stream.
  std::string finish();
  void reset();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string take_complete(bool at_end);

  const Tokenizer* tokenizer_;
  bool skip_special_;
  Tokenizer::DecodeState state_;
  std::string pending_;  // bytes not yet returned
};

}  // namespace icam::llm
