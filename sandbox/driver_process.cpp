#include "sandbox/driver_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "common/result.h"

namespace icam::sandbox {
namespace {

ExitStatus decode(int status) {
  ExitStatus exit;
  if (WIFSIGNALED(status)) {
    exit.signaled = true;
    exit.signal = WTERMSIG(status);
  } else {
    exit.code = WEXITSTATUS(status);
  }
  return exit;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (!signaled) return str_cat("exit code ", code);
  const char* name = sigabbrev_np(signal);
  std::string text = str_cat("killed by SIG", name != nullptr ? name : "?", " (",
                             strsignal(signal), ")");
  if (signal == SIGSYS) text += ": the seccomp filter refused a system call";
  if (signal == SIGXCPU) text += ": CPU time limit";
  if (memory_limit) text += ": its cgroup's memory limit (out of memory)";
  return text;
}

DriverProcess::DriverProcess(pid_t pid, int stdin_fd, int stdout_fd, int stderr_fd,
                             SandboxReport report, SandboxLimits limits, bool own_pid_namespace,
                             std::unique_ptr<DriverCgroup> cgroup)
    : pid_(pid),
      stdin_fd_(stdin_fd),
      stdout_fd_(stdout_fd),
      stderr_fd_(stderr_fd),
      report_(std::move(report)),
      limits_(limits),
      own_pid_namespace_(own_pid_namespace),
      cgroup_(std::move(cgroup)) {}

DriverProcess::DriverProcess(DriverProcess&& other) noexcept { *this = std::move(other); }

DriverProcess& DriverProcess::operator=(DriverProcess&& other) noexcept {
  if (this == &other) return *this;
  if (valid()) kill();
  close_fds();
  pid_ = std::exchange(other.pid_, -1);
  stdin_fd_ = std::exchange(other.stdin_fd_, -1);
  stdout_fd_ = std::exchange(other.stdout_fd_, -1);
  stderr_fd_ = std::exchange(other.stderr_fd_, -1);
  report_ = std::move(other.report_);
  limits_ = other.limits_;
  own_pid_namespace_ = other.own_pid_namespace_;
  started_ = other.started_;
  stderr_tail_ = std::move(other.stderr_tail_);
  exit_ = std::exchange(other.exit_, std::nullopt);
  cgroup_ = std::move(other.cgroup_);
  return *this;
}

DriverProcess::~DriverProcess() {
  if (valid()) kill();
  close_fds();
  cgroup_.reset();  // removes the driver's cgroup, now empty
}

void DriverProcess::settle_cgroup() {
  if (!cgroup_ || !exit_) return;
  if (exit_->signaled && exit_->signal == SIGKILL && cgroup_->oom_kills() > 0)
    exit_->memory_limit = true;
  cgroup_->kill();
}

void DriverProcess::close_fds() {
  for (int* fd : {&stdin_fd_, &stdout_fd_, &stderr_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void DriverProcess::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void DriverProcess::drain_stderr() {
  if (stderr_fd_ < 0) return;
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(stderr_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {  // the driver closed stderr: nothing more will come
      ::close(stderr_fd_);
      stderr_fd_ = -1;
      return;
    }
    if (n < 0) return;  // EAGAIN: nothing more for now
    stderr_tail_.append(chunk, static_cast<size_t>(n));
    const size_t keep = limits_.stderr_bytes == 0 ? 64 * 1024 : limits_.stderr_bytes;
    if (stderr_tail_.size() > keep) stderr_tail_.erase(0, stderr_tail_.size() - keep);
  }
}

std::optional<ExitStatus> DriverProcess::poll_exit() {
  if (exit_ || pid_ <= 0) return exit_;
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(pid_, &status, WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == pid_) {
    exit_ = decode(status);
    // Whatever the driver started dies with it: its pid namespace is gone with pid 1, and a
    // process group left behind is killed here.
    if (!own_pid_namespace_) ::kill(-pid_, SIGKILL);
  } else if (reaped < 0) {
    exit_ = ExitStatus{true, 0, SIGKILL};  // not our child any more (SIGCHLD ignored?)
  }
  settle_cgroup();
  return exit_;
}

ExitStatus DriverProcess::wait(std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!poll_exit()) {
    if (std::chrono::steady_clock::now() >= deadline) return kill();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return *exit_;
}

ExitStatus DriverProcess::kill() {
  if (exit_ || pid_ <= 0) return exit_.value_or(ExitStatus{});
  // The driver runs as pid 1 of its own pid namespace when it has one: killing it kills every
  // process in the namespace. Its process group covers the rest (setsid made it the leader).
  if (cgroup_) cgroup_->kill();  // everything it started, wherever it went
  ::kill(pid_, SIGKILL);
  ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  exit_ = reaped == pid_ ? decode(status) : ExitStatus{true, 0, SIGKILL};
  settle_cgroup();
  return *exit_;
}

}  // namespace icam::sandbox
