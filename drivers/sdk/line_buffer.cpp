#include "drivers/sdk/line_buffer.h"

#include <algorithm>

namespace icam::driver {

Result<std::optional<std::string>> LineBuffer::next_line() {
  for (;;) {
    scanned_ = std::max(scanned_, consumed_);
    const size_t newline = pending_.find('\n', scanned_);
    if (newline == std::string::npos) {
      scanned_ = pending_.size();
      const size_t partial = pending_.size() - consumed_;
      if (skipping_) {
        pending_.clear();  // still inside the oversized line: keep nothing of it
        consumed_ = scanned_ = 0;
        return std::optional<std::string>();
      }
      // Compact once the consumed prefix dominates, so a long-lived reader stays small.
      if (consumed_ > 0 && consumed_ >= partial) {
        pending_.erase(0, consumed_);
        scanned_ -= consumed_;
        consumed_ = 0;
      }
      if (partial > max_line_bytes_) {
        skipping_ = true;
        pending_.clear();
        consumed_ = scanned_ = 0;
        return make_error(Errc::corrupt, "line longer than ", max_line_bytes_, " bytes");
      }
      return std::optional<std::string>();
    }
    const size_t begin = consumed_;
    consumed_ = newline + 1;
    scanned_ = consumed_;
    if (skipping_) {  // the tail of an oversized line ends here; drop it and look again
      skipping_ = false;
      continue;
    }
    size_t length = newline - begin;
    if (length > max_line_bytes_) {
      return make_error(Errc::corrupt, "line longer than ", max_line_bytes_, " bytes");
    }
    if (length > 0 && pending_[begin + length - 1] == '\r') --length;
    return std::optional<std::string>(pending_.substr(begin, length));
  }
}

}  // namespace icam::driver
