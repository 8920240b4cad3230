#include "sandbox/launch.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <linux/sched.h>
#include <linux/securebits.h>

#include "sandbox/cgroup.h"
#include "sandbox/child_ops.h"
#include "sandbox/host_probe.h"
#include "sandbox/landlock.h"
#include "sandbox/seccomp_filter.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace icam::sandbox {
namespace fs = std::filesystem;
namespace {

// The new root is assembled on a tmpfs mounted here, inside the child's private mount namespace
// (the host's /tmp is untouched), then made the root with pivot_root. The child opens every bind
// source before mounting the stage, so paths the stage hides stay reachable through their
// descriptors (opened after the clone: a bind must come from the child's own mount namespace).
constexpr const char* kStage = "/tmp";

constexpr const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                    "/dev/urandom"};

// Steps the child reports when one fails; the parent names it in the error.
enum Step : int32_t {
  kSetsid, kIdMaps, kPrivateMounts, kStageRoot, kMountpoint, kBind, kRemount, kTmpfs, kSymlink,
  kProc, kPivotRoot, kHostname, kChdir, kStdio, kCloseFds, kRlimit, kNoNewPrivs, kLandlock,
  kSeccomp, kExecve,
};
constexpr const char* kStepNames[] = {
    "setsid", "uid/gid map", "private mounts", "staging root", "mountpoint", "bind mount",
    "read-only remount", "private /tmp", "symlink", "/proc", "pivot_root", "hostname",
    "chdir to the workspace", "stdio", "closing descriptors", "setrlimit", "no_new_privs",
    "landlock", "seccomp", "execve",
};

struct ChildFailure {
  int32_t step;
  int32_t error;
  int32_t index;  // which mount or rule, -1 when not applicable
};

struct MountStep {
  enum class Kind { tmpfs, bind, symlink, proc } kind;
  std::string target;  // absolute, under kStage
  std::string parent;  // target's parent directory
  std::string source;  // bind: the host path; symlink: its text; tmpfs: mount options
  bool is_dir = true;
  unsigned long remount_flags = 0;
  std::string what;  // the path as the policy names it, for errors
};

struct Limit {
  int resource;
  rlimit value;
};

// Everything the child needs, prepared by the parent so the child only makes syscalls.
struct ChildPlan {
  bool namespaces = false;
  char uid_map[48] = {};
  char gid_map[48] = {};
  char pid_max[24] = {};  // written to the namespace's kernel.pid_max when not empty
  std::vector<MountStep> mounts;
  std::vector<int> mount_fds;  // one per mount, filled in by the child (-1: not a bind)
  std::string workspace;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1, report_fd = -1;
  std::vector<Limit> limits;
  bool landlock = false;
  std::vector<std::string> rule_paths;
  std::vector<LandlockRule> rules;
  LandlockPlan landlock_plan;
  sock_fprog seccomp{};
  std::string exe;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

[[noreturn]] void fail(const ChildPlan& plan, Step step, int error, int index = -1) {
  ChildFailure failure{step, error, index};
  (void)!write(plan.report_fd, &failure, sizeof failure);
  _exit(127);
}

// "/proc/self/fd/<fd>" without the C library's formatting.
void fd_path(int fd, char* out) {
  static const char kPrefix[] = "/proc/self/fd/";
  memcpy(out, kPrefix, sizeof kPrefix - 1);
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd != 0);
  char* p = out + sizeof kPrefix - 1;
  while (n > 0) *p++ = digits[--n];
  *p = '\0';
}

void set_up_mounts(ChildPlan& plan) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    fail(plan, kPrivateMounts, errno);
  }
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    if (plan.mounts[i].kind != MountStep::Kind::bind) continue;
    plan.mount_fds[i] = open(plan.mounts[i].source.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (plan.mount_fds[i] < 0) fail(plan, kBind, errno, static_cast<int>(i));
  }
  if (mount("icam-root", kStage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
    fail(plan, kStageRoot, errno);
  }
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountStep& step = plan.mounts[i];
    const int index = static_cast<int>(i);
    const char* target = step.target.c_str();
    int error = step.is_dir ? child::make_dirs(target, 0755) : child::make_dirs(step.parent.c_str(), 0755);
    if (error == 0 && !step.is_dir && step.kind == MountStep::Kind::bind) error = child::make_file(target);
    if (error != 0 && step.kind != MountStep::Kind::symlink) fail(plan, kMountpoint, error, index);
    switch (step.kind) {
      case MountStep::Kind::tmpfs:
        if (mount("icam-tmp", target, "tmpfs", MS_NOSUID | MS_NODEV, step.source.c_str()) != 0) {
          fail(plan, kTmpfs, errno, index);
        }
        break;
      case MountStep::Kind::bind: {
        char source[32];
        fd_path(plan.mount_fds[i], source);
        if (mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
          fail(plan, kBind, errno, index);
        }
        if (mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | step.remount_flags, nullptr) != 0) {
          fail(plan, kRemount, errno, index);
        }
        break;
      }
      case MountStep::Kind::symlink:
        if (symlink(step.source.c_str(), target) != 0 && errno != EEXIST) {
          fail(plan, kSymlink, errno, index);
        }
        break;
      case MountStep::Kind::proc:
        if (mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
          fail(plan, kProc, errno, index);
        }
        break;
    }
  }
  for (int fd : plan.mount_fds) {
    if (fd >= 0) close(fd);  // host paths: never let the driver hold one
  }

  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
  if (chdir(kStage) != 0) fail(plan, kPivotRoot, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail(plan, kPivotRoot, errno);
  if (umount2(".", MNT_DETACH) != 0) fail(plan, kPivotRoot, errno);
  if (chdir("/") != 0) fail(plan, kPivotRoot, errno);
  if (mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
            nullptr) != 0) {
    fail(plan, kRemount, errno);
  }
  if (sethostname("icam-driver", 11) != 0) fail(plan, kHostname, errno);
  if (plan.pid_max[0] != '\0') {
    if (int error = child::write_file("/proc/sys/kernel/pid_max", plan.pid_max); error != 0) {
      fail(plan, kRlimit, error, RLIMIT_NPROC);
    }
  }
}

// Moves the three pipe ends onto 0, 1 and 2 even if one of them already sits on a low number.
void set_up_stdio(const ChildPlan& plan) {
  int fds[3] = {plan.stdin_fd, plan.stdout_fd, plan.stderr_fd};
  for (int& fd : fds) {
    if (fd < 3 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) fail(plan, kStdio, errno);
  }
  for (int target = 0; target < 3; ++target) {
    if (dup2(fds[target], target) < 0) fail(plan, kStdio, errno);
  }
}

// Every descriptor above stderr is marked close-on-exec (the report pipe must live until execve
// to say whether it succeeded), so the driver starts with exactly three.
void close_other_fds(const ChildPlan& plan) {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) fail(plan, kCloseFds, errno);
  const rlim_t top = files.rlim_cur == RLIM_INFINITY ? 65536 : std::min<rlim_t>(files.rlim_cur, 1 << 20);
  for (rlim_t fd = 3; fd < top; ++fd) fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
}

// Root in the driver's user namespace (or real root without one) keeps no capability across
// execve: SECBIT_NOROOT stops execve from granting them, the bounding set is emptied so no file
// capability can bring one back. Refused (and harmless) for an unprivileged caller.
void drop_capabilities() {
  prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED,
        0, 0, 0);
  for (int cap = 0; cap < 64; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

[[noreturn]] void run_child(ChildPlan& plan) {
  if (setsid() < 0) fail(plan, kSetsid, errno);
  if (plan.namespaces) {
    if (int error = child::write_id_maps(plan.uid_map, plan.gid_map); error != 0) {
      fail(plan, kIdMaps, error);
    }
    set_up_mounts(plan);
  }
  if (chdir(plan.workspace.c_str()) != 0) fail(plan, kChdir, errno);
  set_up_stdio(plan);
  close_other_fds(plan);
  for (const Limit& limit : plan.limits) {
    if (setrlimit(static_cast<__rlimit_resource>(limit.resource), &limit.value) != 0) {
      fail(plan, kRlimit, errno, limit.resource);
    }
  }
  drop_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(plan, kNoNewPrivs, errno);
  if (plan.landlock) {
    int failed_rule = -1;
    if (int error = apply_landlock(plan.landlock_plan, &failed_rule); error != 0) {
      fail(plan, kLandlock, error, failed_rule);
    }
  }
  // Last: from here on every syscall, execve included, goes through the allowlist.
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &plan.seccomp, 0, 0) != 0) {
    fail(plan, kSeccomp, errno);
  }
  execve(plan.exe.c_str(), plan.argv.data(), plan.envp.data());
  fail(plan, kExecve, errno);
}

bool under(const fs::path& path, const fs::path& root) {
  auto [root_end, path_end] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

// The remount flags a bind must keep: in a user namespace the kernel refuses to clear nosuid,
// nodev, noexec, read-only or the atime mode that the original mount locked.
unsigned long locked_flags(const fs::path& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return MS_NOSUID | MS_NODEV;
  unsigned long flags = MS_NOSUID;
  if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (!(st.f_flag & (ST_NOATIME | ST_RELATIME))) flags |= MS_STRICTATIME;
  return flags;
}

Result<std::string> find_executable(const std::string& name, const std::vector<std::string>& env) {
  std::error_code error;
  if (name.find('/') != std::string::npos) {
    fs::path path = fs::canonical(name, error);
    if (error) return make_error(Errc::not_found, "driver ", name, ": ", error.message());
    if (access(path.c_str(), X_OK) != 0 || !fs::is_regular_file(path, error)) {
      return make_error(Errc::permission_denied, "driver ", path.string(), " is not an executable file");
    }
    return path.string();
  }
  std::string search = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) search = entry.substr(5);
  }
  size_t begin = 0;
  while (begin <= search.size()) {
    size_t end = search.find(':', begin);
    if (end == std::string::npos) end = search.size();
    const fs::path candidate = fs::path(search.substr(begin, end - begin)) / name;
    if (candidate.is_absolute() && access(candidate.c_str(), X_OK) == 0 &&
        fs::is_regular_file(candidate, error)) {
      return fs::canonical(candidate, error).string();
    }
    begin = end + 1;
  }
  return make_error(Errc::not_found, "driver ", name, " not found in PATH ", search);
}

std::string human_bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) return str_cat(bytes >> 30, " GiB");
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) return str_cat(bytes >> 20, " MiB");
  return str_cat(bytes, " B");
}

// Pipes and descriptors the parent owns until launch succeeds.
struct Fds {
  std::vector<int> fds;
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void release(int fd) { fds.erase(std::remove(fds.begin(), fds.end(), fd), fds.end()); }
  void close_one(int fd) {
    release(fd);
    close(fd);
  }
  ~Fds() {
    for (int fd : fds) close(fd);
  }
};

Status make_pipe(Fds& fds, int out[2]) {
  if (pipe2(out, O_CLOEXEC) != 0) return make_error(Errc::io, "sandbox: pipe: ", std::strerror(errno));
  fds.add(out[0]);
  fds.add(out[1]);
  return ok_status();
}

}  // namespace

std::vector<std::string> default_driver_env(const SandboxPolicy& policy) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + policy.workspace.string(), "TMPDIR=/tmp",
          "LANG=C.UTF-8"};
}

Result<DriverProcess> launch_sandboxed(const SandboxPolicy& requested,
                                       const std::vector<std::string>& argv_in,
                                       const std::vector<std::string>& env_in) {
  if (argv_in.empty()) return make_error(Errc::invalid_argument, "sandbox: empty argv");
  const SandboxPolicy policy = ICAM_TRY(normalize_policy(requested));
  std::vector<std::string> env = env_in.empty() ? default_driver_env(policy) : env_in;
#if defined(__SANITIZE_ADDRESS__)
  // In a sanitizer build the drivers carry AddressSanitizer too; LeakSanitizer's exit-time scan
  // uses ptrace, which the seccomp filter (rightly) kills.
  if (std::none_of(env.begin(), env.end(), [](const std::string& e) { return e.rfind("ASAN_OPTIONS=", 0) == 0; })) {
    env.push_back("ASAN_OPTIONS=detect_leaks=0");
  }
#endif
  const std::string exe = ICAM_TRY(find_executable(argv_in[0], env));

  // Decide the layers and refuse what cannot be enforced.
  const HostSupport& host = probe_host();
  const bool namespaces = host.namespaces && !policy.skip.namespaces;
  const bool landlock = host.landlock_abi > 0 && !policy.skip.landlock;
  const std::string ns_reason = policy.skip.namespaces ? "switched off by the policy" : host.namespaces_detail;
  const std::string landlock_reason = policy.skip.landlock ? "switched off by the policy" : host.landlock_detail;
  if (!namespaces && !landlock) {
    return make_error(Errc::unsupported,
                      "sandbox: cannot confine the driver to its workspace: mount namespace "
                      "missing (",
                      ns_reason, ") and landlock missing (", landlock_reason, ")");
  }
  if (!host.seccomp) {
    return make_error(Errc::unsupported, "sandbox: seccomp missing (", host.seccomp_detail,
                      "): the syscall allowlist",
                      policy.allow_net ? "" : " and net:none (no net namespace either)",
                      " cannot be enforced");
  }
  CgroupTree* const cgroups =
      policy.skip.cgroup ? nullptr : policy.cgroups ? policy.cgroups : driver_cgroups();
  const std::string cgroup_reason = policy.skip.cgroup ? "switched off by the policy"
                                    : cgroups          ? cgroups->describe()
                                                       : driver_cgroups_detail();
  // The kernel exempts uid 0 from RLIMIT_NPROC, in a user namespace too. For a root host the
  // driver cgroup's pids.max bounds the driver's processes instead, else the pid namespace's own
  // pid_max (the kernel's minimum is 301, so that bound is max(max_processes, 300)).
  const bool nproc_by_pids_max =
      policy.limits.max_processes > 0 && geteuid() == 0 && cgroups && cgroups->has_pids();
  const bool nproc_by_pid_max = policy.limits.max_processes > 0 && geteuid() == 0 && !nproc_by_pids_max;
  if (nproc_by_pid_max && !(namespaces && host.pid_max_per_namespace)) {
    return make_error(Errc::unsupported,
                      "sandbox: max_processes cannot be enforced: RLIMIT_NPROC does not bind root, "
                      "and a pid namespace with its own pid_max is missing (",
                      namespaces ? "kernel before 6.14" : ns_reason, "); cgroup pids controller missing (",
                      cgroup_reason, ")");
  }
  const SeccompProgram* seccomp = ICAM_TRY(seccomp_program(policy.allow_net));

  SandboxReport report;
  ChildPlan plan;
  Fds fds;
  plan.namespaces = namespaces;
  plan.workspace = policy.workspace.string();
  plan.exe = exe;

  // What the driver sees, and with which rights.
  struct Grant {
    fs::path path;
    uint64_t rights;
    bool writable;
  };
  std::vector<Grant> grants;
  for (const fs::path& path : policy.system_paths) grants.push_back({path, landlock::kReadExec, false});
  for (const fs::path& path : policy.read_only_paths) grants.push_back({path, landlock::kReadExec, false});
  bool exe_visible = false;
  for (const Grant& grant : grants) {
    std::error_code error;
    const fs::path canonical = fs::canonical(grant.path, error);
    if (!error && under(fs::path(exe), canonical)) exe_visible = true;
  }
  if (!exe_visible) grants.push_back({exe, landlock::kReadExec, false});
  grants.push_back({policy.workspace, landlock::kReadWrite, true});
  for (const fs::path& path : policy.writable_paths) grants.push_back({path, landlock::kReadWrite, true});
  for (const char* device : kDevices) grants.push_back({device, landlock::kDevice, true});

  if (namespaces) {
    child::format_id_map(geteuid(), plan.uid_map);
    child::format_id_map(getegid(), plan.gid_map);
    auto stage = [](const fs::path& path) { return std::string(kStage) + path.string(); };
    for (const Grant& grant : grants) {
      struct stat st;
      if (lstat(grant.path.c_str(), &st) != 0) continue;  // an optional system path
      MountStep step;
      step.target = stage(grant.path);
      step.parent = stage(grant.path.parent_path());
      step.what = grant.path.string();
      if (S_ISLNK(st.st_mode)) {  // /bin -> usr/bin: recreate the link, bind its target if listed
        step.kind = MountStep::Kind::symlink;
        std::error_code error;
        step.source = fs::read_symlink(grant.path, error).string();
        if (error) continue;
        step.is_dir = false;
      } else {
        step.kind = MountStep::Kind::bind;
        step.source = grant.path.string();
        step.is_dir = S_ISDIR(st.st_mode);
        step.remount_flags = locked_flags(grant.path) | (grant.writable ? 0 : MS_RDONLY);
      }
      plan.mounts.push_back(std::move(step));
    }
    MountStep tmp{MountStep::Kind::tmpfs, stage("/tmp"), kStage, "mode=1777", true, 0, "/tmp"};
    if (policy.limits.tmp_bytes > 0) tmp.source += str_cat(",size=", policy.limits.tmp_bytes);
    plan.mounts.push_back(tmp);
    plan.mounts.push_back({MountStep::Kind::proc, stage("/proc"), kStage, "", true, 0, "/proc"});
    // Parents before children: the private /tmp before a workspace under /tmp.
    std::stable_sort(plan.mounts.begin(), plan.mounts.end(),
                     [](const MountStep& a, const MountStep& b) { return a.target < b.target; });
    plan.mount_fds.assign(plan.mounts.size(), -1);
    const char* uid_note = geteuid() == 0 ? "uid 0 mapped to 0 with every capability dropped"
                                          : "the caller's uid and gid mapped to themselves";
    report.set(Layer::user_ns, true, uid_note);
    report.set(Layer::mount_ns, true,
               str_cat("new root with ", plan.mounts.size(), " mounts: system paths read-only and "
                       "nosuid, workspace ", policy.workspace.string(), " writable, private /tmp, "
                       "fresh /proc"));
    report.set(Layer::pid_ns, true, "the driver is pid 1 of its own pid namespace");
    report.set(Layer::net_ns, !policy.allow_net,
               policy.allow_net ? "shares the host network (net capability)"
                                : "empty network namespace (no interfaces up)");
    report.set(Layer::ipc_ns, true, "private System V IPC and POSIX message queues");
    report.set(Layer::uts_ns, true, "hostname icam-driver");
  } else {
    for (Layer layer : {Layer::user_ns, Layer::mount_ns, Layer::pid_ns, Layer::net_ns, Layer::ipc_ns, Layer::uts_ns}) {
      report.set(layer, false, ns_reason);
    }
  }

  if (landlock) {
    const int abi = host.landlock_abi;
    plan.landlock = true;
    plan.landlock_plan.abi = abi;
    plan.landlock_plan.handled_fs = landlock::handled_fs(abi);
    if (abi >= 4 && !policy.allow_net) {
      plan.landlock_plan.handled_net = landlock::kNetBindTcp | landlock::kNetConnectTcp;
    }
    if (abi >= 6) plan.landlock_plan.scoped = landlock::kScopeAbstractUnix | landlock::kScopeSignal;
    for (const Grant& grant : grants) plan.rule_paths.push_back(grant.path.string());
    std::vector<uint64_t> rights;
    for (const Grant& grant : grants) rights.push_back(grant.rights);
    if (namespaces) {
      plan.rule_paths.push_back("/tmp");
      rights.push_back(landlock::kReadWrite);
      plan.rule_paths.push_back("/proc");
      rights.push_back(landlock::kReadFile | landlock::kReadDir);
    } else {
      plan.rule_paths.push_back("/proc/self");  // the child's own: ASan and glibc read it
      rights.push_back(landlock::kReadFile | landlock::kReadDir);
    }
    for (size_t i = 0; i < plan.rule_paths.size(); ++i) {
      plan.rules.push_back({plan.rule_paths[i].c_str(), rights[i]});
    }
    plan.landlock_plan.rules = plan.rules.data();
    plan.landlock_plan.n_rules = static_cast<int>(plan.rules.size());
    report.set(Layer::landlock, true,
               str_cat("ABI ", abi, ": ", plan.rules.size(), " path rules (workspace read-write, "
                       "system paths read and execute)",
                       plan.landlock_plan.handled_net ? ", TCP bind and connect refused" : "",
                       plan.landlock_plan.scoped ? ", signals and abstract unix sockets scoped" : ""));
  } else {
    report.set(Layer::landlock, false, landlock_reason);
  }

  plan.seccomp.len = static_cast<unsigned short>(seccomp->instructions.size());
  plan.seccomp.filter = const_cast<sock_filter*>(seccomp->instructions.data());
  report.set(Layer::seccomp, true, seccomp->summary);
  report.set(Layer::no_new_privs, true, "PR_SET_NO_NEW_PRIVS: setuid and file capabilities inert");

  const SandboxLimits& limits = policy.limits;
  std::string limit_text = "core 0";
  plan.limits.push_back({RLIMIT_CORE, {0, 0}});
  auto add_limit = [&](int resource, uint64_t soft, uint64_t hard, std::string text) {
    if (soft == 0) return;
    plan.limits.push_back({resource, {soft, hard}});
    limit_text += ", " + text;
  };
  add_limit(RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1, str_cat("cpu ", limits.cpu_seconds, " s"));
  add_limit(RLIMIT_AS, limits.address_space_bytes, limits.address_space_bytes,
            "address space " + human_bytes(limits.address_space_bytes));
  if (nproc_by_pids_max) {
    limit_text += str_cat(", processes ", limits.max_processes, " (cgroup pids.max; RLIMIT_NPROC "
                          "does not bind root)");
  } else if (nproc_by_pid_max) {
    const uint64_t pid_max = std::max<uint64_t>(limits.max_processes + 1, 301);
    snprintf(plan.pid_max, sizeof plan.pid_max, "%llu", static_cast<unsigned long long>(pid_max));
    limit_text += str_cat(", processes ", pid_max - 1, " (pid namespace pid_max; RLIMIT_NPROC does "
                          "not bind root)");
  } else {
    add_limit(RLIMIT_NPROC, limits.max_processes, limits.max_processes,
              str_cat("processes ", limits.max_processes));
  }
  add_limit(RLIMIT_NOFILE, limits.open_files, limits.open_files, str_cat("open files ", limits.open_files));
  add_limit(RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes,
            "file size " + human_bytes(limits.file_size_bytes));
  report.set(Layer::rlimits, true, limit_text);

  // Its own cgroup, made before the clone so the driver starts in it.
  std::unique_ptr<DriverCgroup> cgroup;
  if (cgroups) {
    cgroup = ICAM_TRY_CTX(cgroups->create({limits.memory_bytes, limits.max_processes}), "sandbox");
    const bool limited = cgroup->memory_limited() || cgroup->processes_limited();
    report.set(Layer::cgroup, limited,
               str_cat(cgroup->path().string(), ": ",
                       limited ? cgroup->limits_text() : "no memory or pids controller (limits are rlimits)",
                       "; killed as a whole when stopped"));
  } else {
    report.set(Layer::cgroup, false, cgroup_reason);
  }

  for (const std::string& arg : argv_in) plan.argv.push_back(const_cast<char*>(arg.c_str()));
  plan.argv.push_back(nullptr);
  for (const std::string& entry : env) plan.envp.push_back(const_cast<char*>(entry.c_str()));
  plan.envp.push_back(nullptr);

  int in_pipe[2], out_pipe[2], err_pipe[2], report_pipe[2];
  ICAM_TRY(make_pipe(fds, in_pipe));
  ICAM_TRY(make_pipe(fds, out_pipe));
  ICAM_TRY(make_pipe(fds, err_pipe));
  ICAM_TRY(make_pipe(fds, report_pipe));
  plan.stdin_fd = in_pipe[0];
  plan.stdout_fd = out_pipe[1];
  plan.stderr_fd = err_pipe[1];
  plan.report_fd = report_pipe[1];

  const uint64_t ns_flags = namespaces ? CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
                                             (policy.allow_net ? 0 : CLONE_NEWNET) | CLONE_NEWIPC |
                                             CLONE_NEWUTS
                                       : 0;
  // A raw clone behaves like fork() here (same stack, copy-on-write) and can create the pid
  // namespace with the driver as its pid 1; clone3 can also start it in its cgroup.
  long pid;
  if (cgroup) {
    clone_args args{};
    args.flags = ns_flags | CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroup->dir_fd());
    pid = syscall(SYS_clone3, &args, sizeof args);
  } else {
    pid = syscall(SYS_clone, static_cast<long>(ns_flags) | SIGCHLD, nullptr, nullptr, nullptr,
                  nullptr);
  }
  if (pid < 0)
    return make_error(Errc::resource_exhausted, "sandbox: ", cgroup ? "clone3" : "clone", ": ",
                      std::strerror(errno));
  if (pid == 0) run_child(plan);

  for (int fd : {in_pipe[0], out_pipe[1], err_pipe[1], report_pipe[1]}) fds.close_one(fd);
  DriverProcess process(static_cast<pid_t>(pid), in_pipe[1], out_pipe[0], err_pipe[0], report,
                        limits, namespaces, std::move(cgroup));
  for (int fd : {in_pipe[1], out_pipe[0], err_pipe[0]}) {
    fds.release(fd);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  // The report pipe closes on a successful execve; a failure arrives as one record. Setup makes
  // no blocking calls, so the bound is generous.
  pollfd wait_for{report_pipe[0], POLLIN, 0};
  int ready;
  do {
    ready = poll(&wait_for, 1, 10'000);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    process.kill();
    return make_error(Errc::unavailable, "sandbox: driver setup did not finish within 10 s");
  }
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report_pipe[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    process.kill();
    std::string where;
    if ((failure.step >= kMountpoint && failure.step <= kProc) && failure.index >= 0 &&
        static_cast<size_t>(failure.index) < plan.mounts.size()) {
      where = " (" + plan.mounts[static_cast<size_t>(failure.index)].what + ")";
    } else if (failure.step == kLandlock && failure.index >= 0 &&
               static_cast<size_t>(failure.index) < plan.rule_paths.size()) {
      where = " (" + plan.rule_paths[static_cast<size_t>(failure.index)] + ")";
    }
    const Errc code = failure.step == kExecve && failure.error == ENOENT ? Errc::not_found : Errc::unavailable;
    return make_error(code, "sandbox: starting ", exe, ": ", kStepNames[failure.step], where,
                      " failed: ", std::strerror(failure.error));
  }
  if (n != 0) {
    process.kill();
    return make_error(Errc::internal, "sandbox: unreadable report from the driver's setup");
  }
  return process;
}

}  // namespace icam::sandbox
