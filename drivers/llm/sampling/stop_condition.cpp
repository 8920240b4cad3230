#include "drivers/llm/sampling/stop_condition.h"

#include <algorithm>

namespace icam::llm {
namespace {

// Length of a trailing UTF-8 sequence that is started but not finished, or 0. Only a lead byte
// followed by fewer continuation bytes than it announces counts; invalid bytes are not held.
std::size_t incomplete_utf8_tail(std::string_view text) {
  const std::size_t look = std::min<std::size_t>(3, text.size());
  for (std::size_t back = 1; back <= look; ++back) {
    const auto byte = static_cast<unsigned char>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    std::size_t length = 0;
    if ((byte & 0xE0) == 0xC0)
      length = 2;
    else if ((byte & 0xF0) == 0xE0)
      length = 3;
    else if ((byte & 0xF8) == 0xF0)
      length = 4;
    return length > back ? back : 0;  // ASCII or invalid lead: nothing to wait for
  }
  return 0;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stop_strings, std::vector<int32_t> stop_tokens)
    : stop_tokens_(std::move(stop_tokens)) {
  std::sort(stop_tokens_.begin(), stop_tokens_.end());
  for (std::string& text : stop_strings) {
    Pattern pattern;
    pattern.text = std::move(text);
    // Empty patterns are kept as inert entries so that indices match the caller's list.
    pattern.fail.assign(pattern.text.size(), 0);
    for (std::size_t i = 1, k = 0; i < pattern.text.size(); ++i) {
      while (k > 0 && pattern.text[i] != pattern.text[k]) k = pattern.fail[k - 1];
      if (pattern.text[i] == pattern.text[k]) ++k;
      pattern.fail[i] = k;
    }
    patterns_.push_back(std::move(pattern));
  }
}

StopMatcher::StopMatcher(const SamplingParams& params)
    : StopMatcher(params.stop_strings, params.stop_tokens) {}

int StopMatcher::advance(char byte) {
  int completed = -1;
  for (std::size_t i = 0; i < patterns_.size(); ++i) {
    Pattern& p = patterns_[i];
    if (p.text.empty()) continue;
    std::size_t k = p.matched;
    while (k > 0 && p.text[k] != byte) k = p.fail[k - 1];
    if (p.text[k] == byte) ++k;
    p.matched = k;
    if (k == p.text.size() && (completed < 0 || p.text.size() > patterns_[completed].text.size())) {
      completed = static_cast<int>(i);
    }
  }
  return completed;
}

StopResult StopMatcher::feed(int32_t token, std::string_view piece) {
  StopResult result;
  if (stopped()) {
    result.stopped = true;
    result.reason = reason_;
    result.stop_string = stop_string_;
    return result;
  }

  if (std::binary_search(stop_tokens_.begin(), stop_tokens_.end(), token)) {
    reason_ = StopReason::token;
    result.stopped = true;
    result.reason = reason_;
    result.text_to_emit = std::move(pending_);
    pending_.clear();
    return result;
  }

  for (char byte : piece) {
    pending_.push_back(byte);
    const int completed = advance(byte);
    if (completed >= 0) {
      // The stop string is the last bytes of pending_; everything before it is shown.
      reason_ = StopReason::string;
      stop_string_ = completed;
      pending_.resize(pending_.size() - patterns_[completed].text.size());
      result.stopped = true;
      result.reason = reason_;
      result.stop_string = completed;
      result.text_to_emit = std::move(pending_);
      pending_.clear();
      return result;
    }
  }

  // Hold back the longest suffix that still starts some stop string (it is at most as long as
  // pending_, since a partial match grows by at most one byte per byte fed), then any incomplete
  // UTF-8 character just before it.
  std::size_t held = 0;
  for (const Pattern& p : patterns_) held = std::max(held, p.matched);
  std::size_t emit = pending_.size() - held;
  emit -= incomplete_utf8_tail(std::string_view(pending_).substr(0, emit));
  result.text_to_emit = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return result;
}

std::string StopMatcher::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  for (Pattern& p : patterns_) p.matched = 0;
  return out;
}

}  // namespace icam::llm
