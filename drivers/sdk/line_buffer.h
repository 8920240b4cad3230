// Newline-delimited framing for the driver ABI: bytes arrive in arbitrary chunks from a pipe and
// leave as whole lines. A line longer than the bound is an error, never an unbounded allocation.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::driver {

// One JSON-RPC message per line; 1 MiB is far above any sane tool call and keeps a hostile peer
// from making the reader buffer gigabytes.
inline constexpr size_t kMaxLineBytes = size_t{1} << 20;

class LineBuffer {
 public:
  explicit LineBuffer(size_t max_line_bytes = kMaxLineBytes) : max_line_bytes_(max_line_bytes) {}

  // Adds bytes read from the stream.
  void append(std::string_view bytes) { pending_.append(bytes); }

  // The next complete line without its "\n" (and without a trailing "\r"), std::nullopt when no
  // complete line is buffered yet, or an error when a line exceeds the bound. After that error the
  // oversized line is skipped up to its newline, so a reader that wants to go on can.
  Result<std::optional<std::string>> next_line();

  // Bytes buffered that do not yet form a complete line.
  size_t pending_bytes() const { return pending_.size() - consumed_; }

 private:
  size_t max_line_bytes_;
  std::string pending_;
  size_t consumed_ = 0;     // prefix of pending_ already handed out
  size_t scanned_ = 0;      // prefix of pending_ known to hold no newline past consumed_
  bool skipping_ = false;   // inside an oversized line: drop bytes up to the next newline
};

}  // namespace icam::driver
