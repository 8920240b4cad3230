#include "sandbox/host_probe.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/result.h"
#include "sandbox/child_ops.h"
#include "sandbox/landlock.h"

namespace icam::sandbox {
namespace {

constexpr int kNamespaceFlags =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// Steps of the namespace trial, named in the report when one fails.
constexpr const char* kSteps[] = {"clone", "id maps", "private mounts", "tmpfs", "mkdir", "proc"};
constexpr int kPidMaxMissing = 100;  // exit code: namespaces work, pid_max is not per namespace

struct Failure {
  int step;
  int error;
};

[[noreturn]] void trial_child(int report_fd, const char* uid_map, const char* gid_map) {
  auto fail = [report_fd](int step, int error) {
    Failure failure{step, error};
    (void)!write(report_fd, &failure, sizeof failure);
    _exit(1);
  };
  if (int error = child::write_id_maps(uid_map, gid_map); error != 0) fail(1, error);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(2, errno);
  if (mount("icam-probe", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0) fail(3, errno);
  if (mkdir("/tmp/proc", 0755) != 0) fail(4, errno);
  if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    fail(5, errno);
  }
  _exit(child::write_file("/tmp/proc/sys/kernel/pid_max", "4096") == 0 ? 0 : kPidMaxMissing);
}

void probe_namespaces(HostSupport& host) {
  char uid_map[48];
  char gid_map[48];
  child::format_id_map(geteuid(), uid_map);
  child::format_id_map(getegid(), gid_map);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    host.namespaces_detail = str_cat("probe pipe: ", std::strerror(errno));
    return;
  }
  const long pid = syscall(SYS_clone, kNamespaceFlags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) trial_child(pipe_fds[1], uid_map, gid_map);
  const int clone_error = errno;
  close(pipe_fds[1]);
  Failure failure{0, clone_error};
  bool failed = pid < 0;
  if (pid > 0) {
    failed = read(pipe_fds[0], &failure, sizeof failure) == static_cast<ssize_t>(sizeof failure);
    int status = 0;
    while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    host.pid_max_per_namespace = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!failed && !(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == kPidMaxMissing))) {
      failed = true;
      failure = {0, ECHILD};
    }
  }
  close(pipe_fds[0]);
  if (failed) {
    host.namespaces_detail = str_cat("unavailable: ", kSteps[failure.step], " failed: ",
                                     std::strerror(failure.error),
                                     failure.step == 0 ? " (user namespaces disabled or a container "
                                                         "without them)"
                                                       : "");
    return;
  }
  host.namespaces = true;
  host.namespaces_detail = "user, mount, pid, net, ipc and uts namespaces available";
}

void probe_seccomp(HostSupport& host) {
  // PR_GET_SECCOMP answers EINVAL on a kernel built without seccomp.
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
    host.seccomp_detail = "kernel built without seccomp";
    return;
  }
  std::ifstream status("/proc/self/status");
  std::string line;
  std::string mode = "0";
  while (std::getline(status, line)) {
    if (line.rfind("Seccomp:", 0) == 0) {
      std::istringstream(line.substr(8)) >> mode;
    }
  }
  host.seccomp = true;
  host.seccomp_detail = mode == "0" ? "seccomp filters available"
                                    : "seccomp filters available (icam itself already runs under "
                                      "a filter, which stays in force)";
}

void probe_landlock(HostSupport& host) {
  host.landlock_abi = landlock_abi();
  if (host.landlock_abi > 0) {
    host.landlock_detail = str_cat("Landlock ABI ", host.landlock_abi);
    return;
  }
  host.landlock_detail = errno == EOPNOTSUPP ? "Landlock is built in but disabled at boot"
                                             : "kernel without Landlock";
}

}  // namespace

const HostSupport& probe_host() {
  static HostSupport host;
  static std::once_flag once;
  std::call_once(once, [] {
    host.root = geteuid() == 0;
    probe_namespaces(host);
    probe_seccomp(host);
    probe_landlock(host);
  });
  return host;
}

}  // namespace icam::sandbox
