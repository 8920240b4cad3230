#include "sandbox/seccomp_filter.h"

#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include <linux/sched.h>

namespace icam::sandbox {
namespace {

// What a dynamically linked program, python3, a shell and the AddressSanitizer runtime need to
// run: files, memory, signals, time, threads, processes without namespaces.
constexpr const char* kAllowed[] = {
    // files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "open", "openat", "openat2", "creat", "close", "close_range", "stat",
    "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "unlink",
    "unlinkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "truncate", "ftruncate",
    "fallocate", "fsync", "fdatasync", "syncfs", "sync_file_range", "flock", "utime", "utimes",
    "utimensat", "futimesat", "umask", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
    "llistxattr", "flistxattr", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "poll", "ppoll",
    "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "sendfile", "copy_file_range",
    "splice", "tee", "fadvise64", "readahead", "memfd_create",
    // local socket pairs and I/O on sockets the process already has
    "sendmsg", "recvmsg", "sendto", "recvfrom", "shutdown", "getsockname", "getpeername",
    "getsockopt", "setsockopt",
    // memory
    "mmap", "munmap", "mprotect", "mremap", "msync", "mincore", "madvise", "brk", "membarrier",
    "mlock", "munlock",
    // signals and time
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "pause", "alarm",
    "setitimer", "getitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "nanosleep", "clock_nanosleep", "clock_gettime",
    "clock_getres", "gettimeofday", "time",
    // identity and process state (reading it; changing ids needs capabilities the driver lacks)
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getpgrp", "getpgid", "getsid", "setpgid", "setsid", "uname",
    "sysinfo", "times", "getrusage", "getrlimit", "setrlimit", "getcpu", "getpriority",
    "setpriority", "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    // threads and the C runtime
    "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
    "futex_waitv", "prctl", "personality", "getrandom", "seccomp",
    // processes
    "execve", "execveat", "fork", "vfork", "wait4", "waitid", "kill", "tgkill", "tkill", "exit",
    "exit_group",
};

// Calls no driver has a use for and every escape has: kill the process rather than let it probe.
constexpr const char* kKilled[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "unshare", "setns", "mount",
    "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "perf_event_open",
    "userfaultfd", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "quotactl",
    "vhangup",
};

// ioctls a program makes on its own descriptors: terminal queries (isatty), FIONREAD,
// close-on-exec and non-blocking flags. TIOCSTI (typing into a terminal) is not among them.
constexpr unsigned long kAllowedIoctls[] = {TCGETS,  TIOCGWINSZ, TIOCGPGRP, FIONREAD,
                                            FIONBIO, FIOCLEX,    FIONCLEX,  FIOASYNC};

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

Status check(int rc, const char* what) {
  if (rc == 0) return ok_status();
  return make_error(Errc::internal, "seccomp: ", what, ": ", std::strerror(-rc));
}

Result<SeccompProgram> compile(bool allow_net) {
  std::unique_ptr<void, ContextDeleter> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return make_error(Errc::internal, "seccomp: seccomp_init failed");
  // Only the native architecture is in the filter; libseccomp sends x32 numbers to the same
  // bad-architecture action as an i386 int 0x80 entry.
  ICAM_TRY(check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
                 "bad-arch action"));

  int rules = 0;
  for (const char* name : kAllowed) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not a syscall on this architecture
    ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0), name));
    ++rules;
  }
  for (const char* name : kKilled) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_KILL_PROCESS, nr, 0), name));
  }
  // ioctl's command is an unsigned int: compare only its low 32 bits, as the kernel reads it.
  for (unsigned long request : kAllowedIoctls) {
    ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, request)),
                   "ioctl"));
  }
  // clone() without namespace flags is an ordinary fork or thread; with them it is refused.
  ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)),
                 "clone"));
  // clone3 passes its flags in memory a filter cannot read: make it look absent so the C
  // library falls back to clone().
  ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0),
                 "clone3"));
  // Resource limits may be read and lowered for the process itself only.
  ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
                                  SCMP_A0(SCMP_CMP_EQ, 0)),
                 "prlimit64"));
  ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, AF_UNIX)),
                 "socketpair"));
  if (allow_net) {
    for (int family : {AF_UNIX, AF_INET, AF_INET6}) {
      ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu,
                                              static_cast<uint64_t>(family))),
                     "socket"));
    }
    for (const char* name : {"connect", "bind", "listen", "accept", "accept4", "sendmmsg",
                             "recvmmsg"}) {
      ICAM_TRY(check(seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(name),
                                      0),
                     name));
    }
  }

  // Export the BPF through a memory file: libseccomp 2.5 writes it only to a descriptor.
  const int fd = memfd_create("icam-seccomp", MFD_CLOEXEC);
  if (fd < 0) return make_error(Errc::io, "seccomp: memfd_create: ", std::strerror(errno));
  const int rc = seccomp_export_bpf(ctx.get(), fd);
  std::string bytes;
  if (rc == 0) {
    const off_t size = lseek(fd, 0, SEEK_END);
    bytes.resize(size > 0 ? static_cast<size_t>(size) : 0);
    if (size <= 0 || pread(fd, bytes.data(), bytes.size(), 0) != size) bytes.clear();
  }
  close(fd);
  ICAM_TRY(check(rc, "export"));
  if (bytes.empty() || bytes.size() % sizeof(sock_filter) != 0) {
    return make_error(Errc::internal, "seccomp: exported filter has a bad size");
  }
  SeccompProgram program;
  program.instructions.resize(bytes.size() / sizeof(sock_filter));
  std::memcpy(program.instructions.data(), bytes.data(), bytes.size());
  program.summary = str_cat("default-deny allowlist of ", rules, " syscalls (EPERM), ",
                            "dangerous calls kill, x32/i386 entry kills, clone without namespace "
                            "flags, clone3 ENOSYS, ",
                            allow_net ? "sockets allowed (net capability)" : "socket() refused");
  return program;
}

}  // namespace

Result<const SeccompProgram*> seccomp_program(bool allow_net) {
  static std::mutex mutex;
  static std::unique_ptr<SeccompProgram> cached[2];
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<SeccompProgram>& slot = cached[allow_net ? 1 : 0];
  if (!slot) slot = std::make_unique<SeccompProgram>(ICAM_TRY(compile(allow_net)));
  return slot.get();
}

}  // namespace icam::sandbox
