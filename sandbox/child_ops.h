// Small operations the sandbox runs in a freshly cloned child, before execve. A multithreaded
// parent may have held any lock at clone time, so these make raw syscalls only: no allocation, no
// stdio, no locale.
#pragma once

#include <sys/types.h>

namespace icam::sandbox::child {

// Writes `text` (NUL-terminated) to an existing file; returns 0 or an errno value.
int write_file(const char* path, const char* text);

// Maps the caller's outer uid and gid to the same ids inside its new user namespace (denying
// setgroups first, as the kernel requires for an unprivileged gid map). `uid_map` and `gid_map`
// are prepared by the parent ("1000 1000 1"). Returns 0 or an errno value.
int write_id_maps(const char* uid_map, const char* gid_map);

// mkdir -p; `path` is copied into a fixed buffer. Returns 0 or an errno value.
int make_dirs(const char* path, unsigned mode);

// Creates an empty regular file to bind a file over; an existing one is fine.
int make_file(const char* path);

// Formats "<outer> <outer> 1" into `out` (at least 48 bytes).
void format_id_map(unsigned id, char* out);

}  // namespace icam::sandbox::child
