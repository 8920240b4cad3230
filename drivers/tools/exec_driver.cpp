// icam-driver-exec: runs a command in the driver's workspace with a time and an output limit. The
// command inherits the driver's sandbox (and cannot leave it); these limits bound one call.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "drivers/sdk/driver.h"

using icam::Errc;
using icam::Result;
using icam::make_error;
using icam::driver::ToolOutput;
using nlohmann::json;

namespace {

struct Captured {
  std::string text;
  bool truncated = false;
};

Result<ToolOutput> run(const json& args) {
  std::vector<std::string> argv;
  for (const json& arg : args["argv"]) {
    if (!arg.is_string()) return make_error(Errc::invalid_argument, "argv must hold strings");
    argv.push_back(arg.get<std::string>());
  }
  if (argv.empty()) return make_error(Errc::invalid_argument, "argv is empty");
  const int64_t timeout_ms = ICAM_TRY(icam::driver::int_arg(args, "timeout_ms", 10'000));
  const int64_t max_output = ICAM_TRY(icam::driver::int_arg(args, "max_output_bytes", 64 * 1024));
  if (timeout_ms <= 0 || max_output <= 0) return make_error(Errc::invalid_argument, "limits must be positive");

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return make_error(Errc::io, "pipe failed");
  std::vector<char*> cargv;
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return make_error(Errc::resource_exhausted, "fork failed");
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so a timeout kills what it started too
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);

  Captured captured[2];
  int fds[2] = {out[0], err[0]};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd watch[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (poll(watch, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (watch[i].revents == 0) continue;
      char chunk[16 * 1024];
      const ssize_t n = read(fds[i], chunk, sizeof chunk);
      if (n <= 0) {
        close(fds[i]);
        fds[i] = -1;
        --open_fds;
        continue;
      }
      const size_t room = static_cast<size_t>(max_output) - std::min(captured[i].text.size(), static_cast<size_t>(max_output));
      captured[i].text.append(chunk, std::min(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room) captured[i].truncated = true;
    }
  }
  // Output closed is not exit: give the command the rest of its time to finish.
  int status = 0;
  bool reaped = false;
  while (!timed_out && !(reaped = waitpid(pid, &status, WNOHANG) == pid)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    usleep(1000);
  }
  kill(-pid, SIGKILL);  // the command's group: nothing it started outlives the call
  if (!reaped) waitpid(pid, &status, 0);
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  json result = {{"stdout", captured[0].text}, {"stderr", captured[1].text}, {"timed_out", timed_out},
                 {"truncated", captured[0].truncated || captured[1].truncated}};
  if (WIFEXITED(status)) result["exit_code"] = WEXITSTATUS(status);
  if (WIFSIGNALED(status) && !timed_out) result["signal"] = WTERMSIG(status);
  ToolOutput output = ToolOutput::json(result);
  output.is_error = timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  return output;
}

}  // namespace

int main() {
  icam::driver::Driver driver("icam-driver-exec", "0.1.0");
  driver.tool("run", "Run a command (argv, no shell) in the workspace; returns its exit code and output",
              icam::driver::object_schema({{"argv", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                                           {"timeout_ms", {{"type", "integer"}}},
                                           {"max_output_bytes", {{"type", "integer"}}}},
                                          {"argv"}),
              run);
  return driver.serve();
}
