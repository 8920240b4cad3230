// The whole syscall path for a no-op call, as an agent's tool call takes it: the table lookup and
// the argument schema, the capability check on the canonical path, the call to the warm sandboxed
// fs driver, the audit intent and completion (fs.stat has no side effect, so both are committed
// in one synchronous=FULL transaction after the call; a write would commit its intent first).
// Against a baseline measured in the same run: the same dispatcher with no audit log (so the cost
// of the audit log's synchronous commit shows).
//
//   build/bench/syscall_bench [--calls N] [--dir DIR]
//
// DIR (default: the system's temporary directory) holds the workspace and the audit log: put it
// on the disk the daemon will use, since the audit log's cost is that disk's sync latency.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernel/syscall_dispatcher.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Stats {
  double median_ms, p99_ms;
};

Stats stats(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return {samples[n / 2], samples[std::min(n - 1, (n * 99) / 100)]};
}

// Times `calls` fs.stat calls of one process through a dispatcher; exits on any failure.
Stats run(const fs::path& root, const std::string& audit_path, int calls) {
  icam::kernel::DispatcherOptions options;
  options.audit_path = audit_path;
  options.workspace_root = (root / "workspaces").string();
  auto dispatcher = icam::kernel::SyscallDispatcher::create(options);
  if (!dispatcher.ok()) {
    std::fprintf(stderr, "syscall_bench: %s\n", dispatcher.error().message().c_str());
    std::exit(1);
  }
  const fs::path ws = root / "ws";
  icam::kernel::JobSpec job;
  job.name = "bench";
  job.task = "t";
  job.tools = {"fs.stat"};
  job.capabilities = {"fs.read:${workspace}/**"};
  job.workspace = ws.string();
  icam::kernel::Process p;
  p.pid = 1;
  p.name = job.name;
  p.tools = job.tools;
  if (auto st = (*dispatcher)->on_spawn(p, job); !st.ok()) {
    std::fprintf(stderr, "syscall_bench: %s\n", st.error().message().c_str());
    std::exit(1);
  }
  const json args = {{"path", "file.txt"}};
  std::vector<double> samples;
  for (int i = 0; i < calls + 20; ++i) {  // the first 20 warm the driver and the caches
    const auto start = Clock::now();
    auto r = (*dispatcher)->call(p, "fs.stat", args);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!r.ok()) {
      std::fprintf(stderr, "syscall_bench: fs.stat: %s\n", r.error().message().c_str());
      std::exit(1);
    }
    if (i >= 20) samples.push_back(ms);
  }
  (*dispatcher)->on_exit(p);
  return stats(std::move(samples));
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 1000;
  fs::path dir = fs::temp_directory_path();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--calls" && i + 1 < argc) {
      calls = std::atoi(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: syscall_bench [--calls N] [--dir DIR]\n");
      return 2;
    }
  }
  if (calls < 10) calls = 10;
  std::string pattern = (dir / "icam-syscall-bench-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) {
    std::perror("syscall_bench: mkdtemp");
    return 1;
  }
  const fs::path root = fs::canonical(pattern);
  fs::create_directories(root / "ws");
  std::ofstream(root / "ws" / "file.txt") << "x\n";

  const Stats audited = run(root, (root / "audit.db").string(), calls);
  const Stats unaudited = run(root, "", calls);
  std::printf("no-op syscall (fs.stat on a warm sandboxed driver), %d calls, in %s\n", calls,
              root.c_str());
  std::printf("  full path, audited (1 synchronous commit)   median %.3f ms  p99 %.3f ms\n",
              audited.median_ms, audited.p99_ms);
  std::printf("  same path without an audit log             median %.3f ms  p99 %.3f ms\n",
              unaudited.median_ms, unaudited.p99_ms);
  std::printf("  audited / unaudited: median %.1f x, p99 %.1f x\n",
              audited.median_ms / unaudited.median_ms, audited.p99_ms / unaudited.p99_ms);
  std::error_code ignored;
  fs::remove_all(root, ignored);
  return 0;
}
