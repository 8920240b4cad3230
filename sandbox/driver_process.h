// A running sandboxed driver: its pid, the pipes to its stdin and stdout, a bounded tail of its
// stderr, and the report of the layers that confine it. Owning: destroying it kills the driver
// (with everything it started) and reaps it, so a driver never outlives its handle.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "sandbox/cgroup.h"
#include "sandbox/policy.h"
#include "sandbox/report.h"

namespace icam::sandbox {

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
  bool memory_limit = false;  // its cgroup's memory limit ended it (the OOM killer)
  std::string describe() const;  // "exit code 3", "killed by SIGSYS (bad system call)"
};

class DriverProcess {
 public:
  DriverProcess() = default;
  // `cgroup`: the driver's own cgroup, when it was started in one (killed and removed with it).
  DriverProcess(pid_t pid, int stdin_fd, int stdout_fd, int stderr_fd, SandboxReport report,
                SandboxLimits limits, bool own_pid_namespace,
                std::unique_ptr<DriverCgroup> cgroup = nullptr);
  DriverProcess(DriverProcess&& other) noexcept;
  DriverProcess& operator=(DriverProcess&& other) noexcept;
  DriverProcess(const DriverProcess&) = delete;
  DriverProcess& operator=(const DriverProcess&) = delete;
  ~DriverProcess();

  pid_t pid() const { return pid_; }
  int stdin_fd() const { return stdin_fd_; }    // non-blocking
  int stdout_fd() const { return stdout_fd_; }  // non-blocking
  int stderr_fd() const { return stderr_fd_; }  // non-blocking
  const SandboxReport& report() const { return report_; }
  const SandboxLimits& limits() const { return limits_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // Closes the driver's stdin: the polite way to ask a driver to exit.
  void close_stdin();

  // Reads whatever stderr holds now, without blocking, keeping the last limits().stderr_bytes.
  void drain_stderr();
  const std::string& stderr_tail() const { return stderr_tail_; }

  // Reaps the driver if it has exited; never blocks.
  std::optional<ExitStatus> poll_exit();
  // Waits up to `grace` for the driver to exit by itself, then kills it. Always reaps.
  ExitStatus wait(std::chrono::milliseconds grace);
  // Kills the driver and everything it started (its cgroup, its pid namespace, else its process
  // group) and reaps it. Safe to call again.
  ExitStatus kill();

  bool valid() const { return pid_ > 0; }
  bool exited() const { return exit_.has_value(); }
  const std::optional<ExitStatus>& exit_status() const { return exit_; }

 private:
  void close_fds();
  // After the driver is reaped: whether its cgroup's memory limit ended it, and whatever it left.
  void settle_cgroup();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  SandboxReport report_;
  SandboxLimits limits_;
  bool own_pid_namespace_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::string stderr_tail_;
  std::optional<ExitStatus> exit_;
  std::unique_ptr<DriverCgroup> cgroup_;
};

}  // namespace icam::sandbox
