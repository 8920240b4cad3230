// Sandboxed driver costs: a cold start (launch in the full sandbox + initialize handshake) and a
// no-op tools/call round trip to a warm driver, each against a baseline measured in the same run:
// the same driver started with plain fork/exec and spoken to over plain pipes.
//
//   build/bench/sandbox_bench [--starts N] [--calls N]
//
// The binary is its own driver: run with --driver it serves one tool, "noop".
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "drivers/sdk/driver.h"
#include "sandbox/driver_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Stats {
  double median, p99;
};

Stats stats(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return {samples[n / 2], samples[std::min(n - 1, (n * 99) / 100)]};
}

int serve_noop() {
  icam::driver::Driver driver("bench", "1");
  driver.tool("noop", "does nothing", icam::driver::object_schema(json::object()),
              [](const json&) -> icam::Result<icam::driver::ToolOutput> { return icam::driver::ToolOutput::text(""); });
  return driver.serve();
}

// The baseline driver: fork/exec with two pipes, no sandbox, blocking line I/O.
struct PlainDriver {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string buffer;

  explicit PlainDriver(const std::string& exe) {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) std::abort();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from[1], 1);
    char* argv[] = {const_cast<char*>(exe.c_str()), const_cast<char*>("--driver"), nullptr};
    if (posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, environ) != 0) std::abort();
    posix_spawn_file_actions_destroy(&actions);
    close(to[0]);
    close(from[1]);
    in = to[1];
    out = from[0];
  }
  ~PlainDriver() {
    close(in);
    close(out);
    waitpid(pid, nullptr, 0);
  }
  std::string exchange(const std::string& line) {
    if (write(in, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
    for (;;) {
      const size_t newline = buffer.find('\n');
      if (newline != std::string::npos) {
        std::string answer = buffer.substr(0, newline);
        buffer.erase(0, newline + 1);
        return answer;
      }
      char chunk[4096];
      const ssize_t n = read(out, chunk, sizeof chunk);
      if (n <= 0) std::abort();
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }
};

const std::string kInitialize = icam::driver::encode_request(
    1, "initialize", {{"protocolVersion", icam::driver::kProtocolVersion}, {"capabilities", json::object()}});
const std::string kNoop = icam::driver::encode_request(2, "tools/call", {{"name", "noop"}, {"arguments", json::object()}});

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--driver") return serve_noop();
  int starts = 100, calls = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--starts") starts = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--calls") calls = std::atoi(argv[i + 1]);
  }
  const std::string exe = std::filesystem::canonical("/proc/self/exe").string();
  char pattern[] = "/tmp/icam-bench-XXXXXX";
  if (mkdtemp(pattern) == nullptr) return 1;
  icam::sandbox::SandboxPolicy policy;
  policy.workspace = pattern;
#if defined(__SANITIZE_ADDRESS__)
  policy.limits.address_space_bytes = 0;
#endif

  auto first = icam::sandbox::DriverClient::start(policy, {exe, "--driver"});
  if (!first.ok()) {
    std::fprintf(stderr, "sandbox_bench: %s\n", first.error().message().c_str());
    return 1;
  }
  std::printf("sandbox layers on this host:\n%s\n", first->report().to_text().c_str());
  first->shutdown();

  std::vector<double> cold, cold_plain;
  for (int i = 0; i < starts; ++i) {
    auto start = Clock::now();
    {
      PlainDriver plain(exe);
      plain.exchange(kInitialize);
      cold_plain.push_back(ms_since(start));
    }
    start = Clock::now();
    auto client = icam::sandbox::DriverClient::start(policy, {exe, "--driver"});
    if (!client.ok()) return 1;
    cold.push_back(ms_since(start));
    client->shutdown();
  }

  auto client = icam::sandbox::DriverClient::start(policy, {exe, "--driver"});
  if (!client.ok()) return 1;
  PlainDriver plain(exe);
  plain.exchange(kInitialize);
  std::vector<double> warm, warm_plain;
  for (int i = 0; i < calls; ++i) {
    auto start = Clock::now();
    plain.exchange(kNoop);
    warm_plain.push_back(ms_since(start) * 1000);
    start = Clock::now();
    if (!client->call_tool("noop", json::object()).ok()) return 1;
    warm.push_back(ms_since(start) * 1000);
  }
  client->shutdown();
  std::filesystem::remove_all(pattern);

  const Stats c = stats(cold), cp = stats(cold_plain), w = stats(warm), wp = stats(warm_plain);
  std::printf("%-34s %10s %10s %8s\n", "", "median", "p99", "ratio");
  std::printf("%-34s %8.2f ms %7.2f ms %8s\n", "cold start, plain fork/exec", cp.median, cp.p99, "1.00");
  std::printf("%-34s %8.2f ms %7.2f ms %8.2f   (target < 20 ms)\n", "cold start, sandboxed", c.median, c.p99, c.median / cp.median);
  std::printf("%-34s %8.1f us %7.1f us %8s\n", "no-op tools/call, plain pipes", wp.median, wp.p99, "1.00");
  std::printf("%-34s %8.1f us %7.1f us %8.2f\n", "no-op tools/call, DriverClient", w.median, w.p99, w.median / wp.median);
  std::printf("(%d starts, %d calls)\n", starts, calls);
  return 0;
}
