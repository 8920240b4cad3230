// The seccomp layer: a default-deny allowlist compiled with libseccomp in the host process and
// loaded by the child right before execve (loading needs no allocation, so it is safe after fork).
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace icam::sandbox {

struct SeccompProgram {
  std::vector<sock_filter> instructions;
  std::string summary;  // for the report: what the filter allows and refuses
};

// The compiled filter for a driver with (allow_net) or without the `net` capability. Compiled once
// per variant and cached; the reference stays valid for the life of the process.
//
// Native architecture only: an x32 or i386 entry kills the process. Unlisted syscalls fail with
// EPERM; a handful that only an attacker needs (ptrace, bpf, io_uring, keyrings, mount and
// namespace calls, module loading, ...) kill it. clone() is allowed without namespace flags and
// clone3() answers ENOSYS so the C library falls back to clone(). Without `net`, socket() is
// refused; the channel to the host is inherited pipes.
Result<const SeccompProgram*> seccomp_program(bool allow_net);

}  // namespace icam::sandbox
