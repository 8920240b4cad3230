// Per-driver cgroup v2 limits. Where the host delegates a cgroup v2 subtree to icam, every
// sandboxed driver starts in a leaf cgroup of its own (clone3 with CLONE_INTO_CGROUP, so it is
// never counted anywhere else, not even for an instant) whose memory.max bounds the memory it
// really uses (resident pages, page cache and its private /tmp included, which RLIMIT_AS cannot
// see) and whose pids.max bounds its processes; when the driver is stopped, cgroup.kill ends
// everything it started, whatever namespace or session it moved to.
//
// The tree. Cgroup v2 lets a cgroup hand controllers to its children only when it holds no
// processes itself (the root excepted), so icam's tree is a cgroup of its own:
//
//   BASE/                 delegated to icam (icamd's own cgroup under systemd's Delegate=yes,
//   |                     or a directory given with --cgroup); memory and pids enabled below it
//   +-- icamd/            where icamd moves itself, in "auto" mode, to empty BASE
//   +-- icam-drivers/     the tree (CgroupTree); memory and pids enabled below it
//       +-- d<pid>-<n>/   one driver (DriverCgroup)
//
// Controllers BASE does not offer are left to the rlimits (the report says which bound what).
// A tree left by a daemon that was killed is cleaned when the next one opens it (the leaves of
// daemons still running are left alone: several may share a tree).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

namespace icam::sandbox {

struct CgroupLimits {
  uint64_t memory_bytes = 0;   // memory.max, with memory.swap.max 0; 0 = no limit
  uint64_t max_processes = 0;  // pids.max; 0 = no limit
};

// One driver's leaf cgroup. Owning: destroying it kills whatever is left in it and removes it.
class DriverCgroup {
 public:
  ~DriverCgroup();
  DriverCgroup(const DriverCgroup&) = delete;
  DriverCgroup& operator=(const DriverCgroup&) = delete;

  // The directory, opened O_PATH: what clone3's CLONE_INTO_CGROUP takes.
  int dir_fd() const { return dir_fd_; }
  const std::filesystem::path& path() const { return path_; }
  // What its limits are, for the sandbox report: "memory.max 1 GiB, pids.max 64".
  const std::string& limits_text() const { return limits_text_; }
  bool memory_limited() const { return memory_limited_; }
  bool processes_limited() const { return processes_limited_; }

  // Kills every process in it (cgroup.kill, or SIGKILL to each member on kernels before 5.14).
  void kill() const;
  // How many processes in it the memory limit's OOM killer ended (memory.events oom_kill).
  uint64_t oom_kills() const;
  // Whether any process is still in it (cgroup.events populated).
  bool populated() const;

 private:
  friend class CgroupTree;
  DriverCgroup() = default;

  std::filesystem::path path_;
  int dir_fd_ = -1;
  std::string limits_text_;
  bool memory_limited_ = false;
  bool processes_limited_ = false;
};

class CgroupTree {
 public:
  // Makes (or takes over and cleans) BASE/icam-drivers and enables for it the controllers among
  // memory and pids that BASE offers. BASE must be a cgroup v2 directory this process may write
  // and, unless it is the hierarchy's root, hold no processes (Errc::unavailable says so).
  static Result<std::unique_ptr<CgroupTree>> open(const std::filesystem::path& base);
  // Removes the tree when no driver cgroup is left in it.
  ~CgroupTree();
  CgroupTree(const CgroupTree&) = delete;
  CgroupTree& operator=(const CgroupTree&) = delete;

  // A new leaf for one driver with `limits`, each set when its controller is enabled here.
  Result<std::unique_ptr<DriverCgroup>> create(const CgroupLimits& limits);

  const std::filesystem::path& path() const { return path_; }
  bool has_memory() const { return memory_; }
  bool has_pids() const { return pids_; }
  // "cgroup v2 tree /sys/fs/cgroup/.../icam-drivers (memory, pids)".
  std::string describe() const;

 private:
  CgroupTree() = default;

  std::filesystem::path path_;
  bool memory_ = false;
  bool pids_ = false;
  std::mutex mutex_;
  uint64_t next_ = 0;
};

// The tree drivers start in (process-wide, like the host probe). `mode`:
//   "off"   none: drivers are bounded by rlimits and their pid namespace only;
//   "auto"  this process's own cgroup v2 (from /proc/self/cgroup under /sys/fs/cgroup) when it
//           is writable, offers memory and pids and holds this process alone (a delegated
//           cgroup: systemd's Delegate=yes): the process moves itself to BASE/icamd and BASE
//           becomes the tree's base; otherwise none, and why is kept for the report;
//   a path  that directory as BASE (it must hold no processes).
// Errors only for an explicit path that cannot be used. Call once, before drivers start.
Status configure_driver_cgroups(const std::string& mode);
// The configured tree; null when none.
CgroupTree* driver_cgroups();
// Why there is no tree ("not configured", or what "auto" found); "" when there is one.
std::string driver_cgroups_detail();

// The cgroup v2 directory this process is in (its "0::" line under /sys/fs/cgroup); unavailable
// when /sys/fs/cgroup is not a cgroup v2 mount (a v1 or hybrid host).
Result<std::filesystem::path> own_cgroup();

}  // namespace icam::sandbox
