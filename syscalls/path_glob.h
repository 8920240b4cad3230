// Path globs, the targets of fs.read and fs.write capabilities.
//
// A glob is an absolute path whose segments (the parts between '/') may hold wildcards:
//   *    any run of characters within one segment, possibly empty ("/ws/*.txt")
//   ?    exactly one character within one segment
//   **   as a whole segment only: zero or more whole segments ("/ws/**" is /ws and everything
//        below it; "/ws/**/x" is every x at any depth under /ws, /ws/x included)
// Every other character is literal; there are no character classes or braces, and no escapes (a
// file named "a*b" is matched by the wildcards themselves). "*" and "?" match a leading '.' like
// any other character: hidden files are not special. A glob is matched against a canonical path
// (canonical_path.h), segment by segment; it is never matched against the raw request string.
//
// Rules checked by validate_glob: absolute; no empty segment (no "//", no trailing '/' except the
// root "/" itself); no "." or ".." segment; "**" only as a whole segment; at most kMaxGlobBytes
// bytes and segments of at most 255 bytes; no NUL or control characters.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::syscalls {

inline constexpr size_t kMaxGlobBytes = 1024;

// What is wrong with a glob and where (0-based byte offset); nullopt when it is valid.
struct GlobProblem {
  size_t offset = 0;
  std::string why;
};
std::optional<GlobProblem> find_glob_problem(std::string_view glob);

// OK, or invalid_argument "at offset N: why".
Status validate_glob(std::string_view glob);

// Whether a validated glob matches a canonical absolute path.
bool glob_matches(std::string_view glob, std::string_view path);

// Whether every path `inner` can match is also matched by `outer` (both validated). Sound but not
// complete: "true" is always right; a few exotic pairs that are in fact covered ("*?" versus "?*")
// are answered "false", which refuses an attenuation rather than widening one.
bool glob_covers(std::string_view outer, std::string_view inner);

// The leading segments that hold no wildcard, as a path: "/ws/out" for "/ws/out/**/*.txt", the
// whole glob when it has no wildcard, "/" for "/**".
std::string glob_literal_prefix(std::string_view glob);

bool has_wildcard(std::string_view text);

}  // namespace icam::syscalls
