// What a sandboxed driver may touch and how much it may use. launch_sandboxed() enforces a policy
// with every layer the host offers and refuses one whose guarantees it cannot keep.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam::sandbox {

// Zero means "no limit" for every field.
struct SandboxLimits {
  uint64_t cpu_seconds = 60;                         // RLIMIT_CPU: SIGXCPU, then SIGKILL
  uint64_t address_space_bytes = uint64_t{1} << 30;  // RLIMIT_AS (0 for AddressSanitizer builds)
  uint64_t max_processes = 64;                       // RLIMIT_NPROC, counted in the user namespace;
                                                     // and pids.max in a driver cgroup
  // memory.max of the driver's cgroup (cgroup.h), where a cgroup tree is configured: the memory it
  // really uses, page cache and its private /tmp included, which RLIMIT_AS does not see.
  uint64_t memory_bytes = uint64_t{1} << 30;
  uint64_t open_files = 256;                         // RLIMIT_NOFILE
  uint64_t file_size_bytes = uint64_t{1} << 30;      // RLIMIT_FSIZE
  uint64_t tmp_bytes = uint64_t{64} << 20;           // size of the private /tmp (mount namespace)
  uint64_t output_bytes = uint64_t{64} << 20;        // stdout the host reads over the driver's life
  uint64_t stderr_bytes = uint64_t{64} << 10;        // tail of stderr kept for error messages
  std::chrono::milliseconds wall_timeout{0};         // the driver's whole life, enforced by the host
};

// Layers a caller may switch off to see how the sandbox behaves on a host without them (tests,
// diagnosis). Switching one off never weakens a guarantee silently: when what is left cannot
// enforce the policy, launch fails exactly as on such a host.
struct SkipLayers {
  bool namespaces = false;
  bool landlock = false;
  bool cgroup = false;
};

class CgroupTree;

struct SandboxPolicy {
  // The driver's working directory and the only tree it may write (besides writable_paths and a
  // private /tmp). Required.
  std::filesystem::path workspace;
  // Extra trees or files the driver may read and execute (a script, a model, the driver itself
  // when it lives outside the system paths; the driver executable is added automatically).
  std::vector<std::filesystem::path> read_only_paths;
  // Extra trees the driver may write.
  std::vector<std::filesystem::path> writable_paths;
  // The system the driver runs on, read-only: shared libraries, interpreters, a few /etc files.
  // /etc as a whole is not here, so /etc/shadow and friends stay out of reach.
  std::vector<std::filesystem::path> system_paths = default_system_paths();
  // The `net` capability: sockets and the host's network. Without it the driver has no network
  // namespace access and socket() is refused.
  bool allow_net = false;
  SandboxLimits limits;
  SkipLayers skip;
  // The cgroup tree the driver starts in (cgroup.h); null = the process-wide one
  // (driver_cgroups(), set by icamd), if any. Must outlive the driver.
  CgroupTree* cgroups = nullptr;

  static std::vector<std::filesystem::path> default_system_paths();
};

// Checks the policy is well-formed (workspace set and a directory, paths absolute, ...) and
// returns it with every path made absolute and canonical (symlinks resolved).
Result<SandboxPolicy> normalize_policy(const SandboxPolicy& policy);

}  // namespace icam::sandbox
