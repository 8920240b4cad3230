// Starting a driver in the sandbox.
//
// Layers, in the order the child sets them up: setsid (no controlling terminal); user, mount,
// pid, net, ipc and uts namespaces with a new root that holds only the system paths (read-only),
// the workspace and the policy's paths, a private /tmp and a fresh /proc; descriptors other than
// stdin, stdout and stderr closed; rlimits; capabilities dropped; PR_SET_NO_NEW_PRIVS; Landlock
// rules; the seccomp allowlist; execve. The report says which were enforced on this host.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/driver_process.h"
#include "sandbox/policy.h"

namespace icam::sandbox {

// Starts argv[0] (a path, or a name looked up in the PATH of `env`) in a sandbox built from
// `policy`, with exactly `env` as its environment (default_driver_env() when empty: the host's
// environment is never passed on). Fails, naming the missing layer, when the policy asks for
// something this host cannot enforce: workspace confinement without mount namespaces or Landlock,
// no network without a net namespace or seccomp, a process limit for root without a user
// namespace.
Result<DriverProcess> launch_sandboxed(const SandboxPolicy& policy,
                                       const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env = {});

// PATH, HOME (the workspace), TMPDIR and LANG for a driver.
std::vector<std::string> default_driver_env(const SandboxPolicy& policy);

}  // namespace icam::sandbox
