// The audit log benchmark: sustained appends of intent + completion pairs (two committed,
// synced records per syscall, as the kernel writes them) to a fresh log with synchronous=FULL.
// It prints the median and p99 time of one pair, the sustained records/s, and, as the baseline
// measured in the same run, the disk's own rate of small write + fdatasync in the same
// directory: a commit cannot be faster than one sync, so records/s divided by that rate says how
// much of the disk's ceiling the log reaches. The disk of a shared machine changes speed from one
// minute to the next, so the two are measured in interleaved rounds (a slice of syncs, a slice of
// pairs, ten times) and the ratio compares like with like.
//
// usage: audit_bench [--pairs 2000] [--warmup 50] [--dir DIR] [--args-bytes 200] [--json]
// DIR defaults to the system's temporary directory; the log is made in a fresh directory there
// and removed at the end. Point it at the disk the daemon will use.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernel/audit/audit_log.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace audit = icam::kernel::audit;

struct Options {
  int pairs = 2000;
  int warmup = 50;
  std::string dir;
  int args_bytes = 200;
  bool json = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--pairs" && (v = next())) {
      o.pairs = std::atoi(v);
    } else if (a == "--warmup" && (v = next())) {
      o.warmup = std::atoi(v);
    } else if (a == "--dir" && (v = next())) {
      o.dir = v;
    } else if (a == "--args-bytes" && (v = next())) {
      o.args_bytes = std::atoi(v);
    } else {
      std::fprintf(stderr, "audit_bench: bad argument '%s'\n", a.c_str());
      return false;
    }
  }
  return o.pairs >= 1 && o.warmup >= 0 && o.args_bytes >= 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

// The baseline: `count` 128-byte appends + fdatasync to an open file; returns the seconds taken,
// or a negative number when the file system refused.
double time_fdatasyncs(int fd, int count) {
  const std::string block(128, 'x');
  const auto t0 = Clock::now();
  for (int i = 0; i < count; ++i) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0)
      return -1;
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: audit_bench [--pairs N] [--warmup N] [--dir DIR] [--args-bytes N] "
                 "[--json]\n");
    return 2;
  }
  std::string base = o.dir.empty() ? std::filesystem::temp_directory_path().string() : o.dir;
  std::string pattern = base + "/icam-audit-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "audit_bench: cannot make a directory in '%s'\n", base.c_str());
    return 1;
  }
  const std::string dir = pattern;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{dir};

  const int probe = ::open((dir + "/fsync-probe").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                           0600);
  if (probe < 0) {
    std::fprintf(stderr, "audit_bench: cannot create a file in '%s'\n", dir.c_str());
    return 1;
  }
  constexpr int kRounds = 10;
  const int syncs_per_round = std::max(20, o.pairs / kRounds / 2);
  double sync_seconds = 0;
  int sync_rounds = 0;

  audit::AuditOptions options;
  options.path = dir + "/audit.db";
  auto log = audit::AuditLog::open(options);
  if (!log.ok()) {
    std::fprintf(stderr, "audit_bench: %s\n", log.error().message().c_str());
    return 1;
  }
  // Arguments of a typical size: a path and some payload.
  const std::string args =
      nlohmann::json{{"path", "/ws/out/report.txt"}, {"data", std::string(o.args_bytes, 'a')}}
          .dump();
  const std::string digest = audit::result_digest("the result");

  std::vector<double> pair_us;
  pair_us.reserve(static_cast<size_t>(o.pairs));
  double log_seconds = 0;
  for (int i = 0; i < o.warmup + o.pairs; ++i) {
    const int measured = i - o.warmup;  // the first pair of each round starts with a sync slice
    if (measured >= 0 && measured % std::max(1, o.pairs / kRounds) == 0) {
      const double s = time_fdatasyncs(probe, syncs_per_round);
      if (s < 0) {
        std::fprintf(stderr, "audit_bench: write or fdatasync failed in '%s'\n", dir.c_str());
        return 1;
      }
      sync_seconds += s;
      ++sync_rounds;
    }
    const auto t0 = Clock::now();
    auto intent = (*log)->append_intent(static_cast<uint64_t>(1 + i % 16), "fs.write", args,
                                        "fs.write:/ws/out/**", audit::Decision::allow,
                                        audit::SideEffect::reversible);
    if (!intent.ok()) {
      std::fprintf(stderr, "audit_bench: %s\n", intent.error().message().c_str());
      return 1;
    }
    auto done = (*log)->append_completion(*intent, audit::CompletionStatus::ok, digest);
    if (!done.ok()) {
      std::fprintf(stderr, "audit_bench: %s\n", done.error().message().c_str());
      return 1;
    }
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (measured >= 0) {
      pair_us.push_back(us);
      log_seconds += us / 1e6;
    }
  }
  ::close(probe);
  const double syncs_per_s = sync_rounds * syncs_per_round / sync_seconds;
  const double records_per_s = 2.0 * o.pairs / log_seconds;

  const auto verify_t0 = Clock::now();
  auto report = (*log)->verify();
  const double verify_s = std::chrono::duration<double>(Clock::now() - verify_t0).count();
  if (!report.ok()) {
    std::fprintf(stderr, "audit_bench: verify: %s\n", report.error().message().c_str());
    return 1;
  }

  const double p50 = percentile(pair_us, 50), p99 = percentile(pair_us, 99);
  const double ratio = syncs_per_s > 0 ? records_per_s / syncs_per_s : 0;
  if (o.json) {
    std::printf("%s\n", nlohmann::json{{"pairs", o.pairs},
                                       {"pair_us_p50", p50},
                                       {"pair_us_p99", p99},
                                       {"records_per_s", records_per_s},
                                       {"fdatasync_per_s", syncs_per_s},
                                       {"records_per_fdatasync", ratio},
                                       {"verify_records", report->records},
                                       {"verify_records_per_s", report->records / verify_s}}
                            .dump(2)
                            .c_str());
    return 0;
  }
  std::printf("audit log, synchronous=FULL, WAL, %d intent+completion pairs (%d-byte args) in %s\n",
              o.pairs, o.args_bytes, base.c_str());
  std::printf("  pair latency     p50 %.1f us   p99 %.1f us\n", p50, p99);
  std::printf("  sustained        %.0f records/s (%.0f syscalls/s)\n", records_per_s,
              records_per_s / 2);
  std::printf("  baseline         %.0f fdatasync/s on the same file system, interleaved\n",
              syncs_per_s);
  std::printf("  ratio            %.2f records per fdatasync of the baseline\n", ratio);
  std::printf("  verify           %lld records in %.3f s (%.0f records/s)\n",
              static_cast<long long>(report->records), verify_s, report->records / verify_s);
  return 0;
}
