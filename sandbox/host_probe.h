// What this host lets the sandbox enforce. Probed once per process (the first launch pays for it,
// about a millisecond) by trying each mechanism for real in a throwaway child.
#pragma once

#include <string>

namespace icam::sandbox {

struct HostSupport {
  // User, mount, pid, net, ipc and uts namespaces together, with an id map, a private tmpfs and
  // a fresh /proc: everything the mount layer needs. Container runtimes often refuse one of them.
  bool namespaces = false;
  std::string namespaces_detail;

  int landlock_abi = 0;  // 0: none
  std::string landlock_detail;

  bool seccomp = false;  // seccomp filters (SECCOMP_MODE_FILTER)
  std::string seccomp_detail;

  // Each pid namespace has its own kernel.pid_max (Linux 6.14+). The kernel exempts uid 0 from
  // RLIMIT_NPROC even inside a user namespace, so for a root host this is what bounds processes.
  bool pid_max_per_namespace = false;

  bool root = false;  // the host process runs with euid 0
};

const HostSupport& probe_host();

}  // namespace icam::sandbox
