#include "drivers/llm/tokenizer/stream_decoder.h"

#include "drivers/llm/tokenizer/unicode.h"

namespace icam::llm {

std::string StreamDecoder::feed(int32_t id) {
  tokenizer_->decode_append(id, skip_special_, state_, pending_);
  return take_complete(/*at_end=*/false);
}

std::string StreamDecoder::finish() {
  std::string out = take_complete(/*at_end=*/true);
  reset();
  return out;
}

void StreamDecoder::reset() {
  pending_.clear();
  state_ = Tokenizer::DecodeState{};
}

std::string StreamDecoder::take_complete(bool at_end) {
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const size_t length = utf8_valid_sequence_at(pending_, pos);
    if (length > 0) {
      out.append(pending_, pos, length);
      pos += length;
      continue;
    }
    // The start of a character whose remaining bytes are still to come: hold it back.
    if (!at_end && utf8_is_incomplete_prefix(pending_, pos)) break;
    append_utf8(out, kReplacementChar);
    ++pos;
  }
  pending_.erase(0, pos);
  return out;
}

}  // namespace icam::llm
