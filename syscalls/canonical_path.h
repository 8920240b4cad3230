// Canonical paths: what a path names once symbolic links, "." and ".." are resolved, so that
// capability checks compare the file a driver would actually open rather than the string an agent
// wrote. A path is never matched against a capability as a raw string.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::syscalls {

// Paths longer than this are refused (Linux's PATH_MAX).
inline constexpr size_t kMaxPathBytes = 4096;
// Symbolic links followed while resolving one path before it is declared a loop (Linux's limit).
inline constexpr int kMaxSymlinkHops = 40;

// Resolves an absolute path like realpath(3), with one difference: the path need not exist. The
// components that exist are resolved through the file system (every symbolic link followed,
// including the last component's, as open(2) would); from the first component that does not exist
// the rest is appended as written, since nothing below a missing directory can be a link.
//
//   "/ws/./a/../b"        -> "/ws/b"
//   "/ws/link/x" (link -> /etc)  -> "/etc/x"
//   "/ws/new/file.txt" (new missing) -> "/ws/new/file.txt"
//   "/.."                 -> "/"
//
// Errors: invalid_argument for a relative or empty path, a NUL byte, a path over kMaxPathBytes,
// more than kMaxSymlinkHops links (a loop), or ".." after a missing component (open(2) would fail
// there, and resolving it lexically could name an existing file the caller never reached); io when
// a component cannot be examined (e.g. a directory without search permission).
//
// The answer is true at the moment of the call; a driver that then opens the path must still guard
// against a link swapped in meanwhile (openat2 with RESOLVE_NO_SYMLINKS, or O_NOFOLLOW).
Result<std::string> canonicalize_path(std::string_view path);

}  // namespace icam::syscalls
