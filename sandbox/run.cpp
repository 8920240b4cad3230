#include "sandbox/run.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "sandbox/launch.h"

namespace icam::sandbox {

Result<SandboxRun> run_sandboxed(const SandboxPolicy& policy, const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env, const std::string& input,
                                 std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  DriverProcess process = ICAM_TRY(launch_sandboxed(policy, argv, env));
  SandboxRun run;
  run.report = process.report();
  const auto deadline = Clock::now() + timeout;
  const uint64_t max_output = policy.limits.output_bytes;

  // Feed stdin while reading, so neither side can block the other on a full pipe.
  size_t fed = 0;
  if (input.empty()) process.close_stdin();
  bool stdout_open = true;
  char chunk[64 * 1024];
  while (stdout_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd watch[3] = {{process.stdout_fd(), POLLIN, 0},
                       {process.stderr_fd(), POLLIN, 0},
                       {process.stdin_fd(), POLLOUT, 0}};
    // A grandchild holding stdout open must not keep us waiting after the program itself is
    // gone: check for its exit now and then.
    const int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 50));
    const int ready = poll(watch, 3, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    if (watch[2].revents != 0) {
      sigset_t pipe_only, old;
      sigemptyset(&pipe_only);
      sigaddset(&pipe_only, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
      const ssize_t n = write(process.stdin_fd(), input.data() + fed, input.size() - fed);
      if (n < 0 && errno == EPIPE) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_only, nullptr, &zero);
      }
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (n > 0) fed += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) fed = input.size();
      if (fed >= input.size()) process.close_stdin();
    }
    if (watch[1].revents != 0) process.drain_stderr();
    if (watch[0].revents != 0) {
      const ssize_t n = read(process.stdout_fd(), chunk, sizeof chunk);
      if (n == 0) stdout_open = false;
      if (n > 0) {
        run.stdout_text.append(chunk, static_cast<size_t>(n));
        if (max_output > 0 && run.stdout_text.size() > max_output) {
          run.stdout_text.resize(max_output);
          run.output_truncated = true;
          break;
        }
      }
    }
    if (ready == 0 && process.poll_exit()) break;
  }
  run.exit = run.timed_out || run.output_truncated ? process.kill()
                                                   : process.wait(std::chrono::milliseconds(2000));
  // Whatever is left in the pipes after the exit.
  for (;;) {
    const ssize_t n = read(process.stdout_fd(), chunk, sizeof chunk);
    if (n <= 0 || (max_output > 0 && run.stdout_text.size() >= max_output)) break;
    run.stdout_text.append(chunk, static_cast<size_t>(n));
  }
  process.drain_stderr();
  run.stderr_tail = process.stderr_tail();
  return run;
}

}  // namespace icam::sandbox
