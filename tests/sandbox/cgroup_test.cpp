// Per-driver cgroups (sandbox/cgroup.h) on a real cgroup v2 hierarchy: /sys/fs/cgroup when the
// host is unified, else a cgroup2 mount of the test's own (a hybrid host still has a v2
// hierarchy, often without controllers). Each test works in a cgroup of its own under the
// hierarchy's root and removes it. Without root (no cgroup to make) the tests skip; the limit
// tests skip where the hierarchy does not offer the memory or pids controller.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "sandbox/cgroup.h"
#include "sandbox/host_probe.h"
#include "sandbox/launch.h"
#include "sandbox/run.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace icam::sandbox {
namespace {

namespace fs = std::filesystem;
using testing::ScratchTree;

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

// A fresh, empty cgroup BASE under the root of a cgroup v2 hierarchy.
class CgroupBase {
 public:
  CgroupBase() {
    if (geteuid() != 0) {
      why_not_ = "needs root to make cgroups";
      return;
    }
    struct statfs st;
    if (statfs("/sys/fs/cgroup", &st) == 0 && static_cast<long>(st.f_type) == CGROUP2_SUPER_MAGIC) {
      root_ = "/sys/fs/cgroup";
    } else {
      std::string pattern = (fs::temp_directory_path() / "icam-cg2-XXXXXX").string();
      if (!mkdtemp(pattern.data())) {
        why_not_ = "mkdtemp failed";
        return;
      }
      if (mount("none", pattern.c_str(), "cgroup2", 0, nullptr) != 0) {
        why_not_ = std::string("cannot mount a cgroup2 hierarchy: ") + std::strerror(errno);
        rmdir(pattern.c_str());
        return;
      }
      mounted_ = pattern;
      root_ = pattern;
    }
    static int counter = 0;
    base_ = root_ / ("icam-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    if (mkdir(base_.c_str(), 0755) != 0) {
      why_not_ = "cannot make " + base_.string() + ": " + std::strerror(errno);
      base_.clear();
    }
  }
  ~CgroupBase() {
    if (!base_.empty()) {
      // Whatever a failed test left, then the base itself.
      std::error_code error;
      const fs::path tree = base_ / "icam-drivers";
      if (fs::exists(tree, error)) {
        for (const auto& entry : fs::directory_iterator(tree, error))
          if (entry.is_directory()) rmdir(entry.path().c_str());
        rmdir(tree.c_str());
      }
      rmdir(base_.c_str());
    }
    if (!mounted_.empty()) {
      umount2(mounted_.c_str(), MNT_DETACH);
      rmdir(mounted_.c_str());
    }
  }

  bool ok() const { return !base_.empty(); }
  const std::string& why_not() const { return why_not_; }
  const fs::path& base() const { return base_; }
  // The base's path as /proc/PID/cgroup shows it (relative to the hierarchy's root).
  std::string relative(const fs::path& dir) const {
    return "/" + fs::relative(dir, root_).string();
  }
  bool offers(const std::string& controller) const {
    return has_word(slurp(base_ / "cgroup.controllers"), controller);
  }

 private:
  fs::path root_;
  fs::path mounted_;
  fs::path base_;
  std::string why_not_;
};

#define NEED_CGROUPS(b)                        \
  CgroupBase b;                                \
  if (!b.ok()) GTEST_SKIP() << b.why_not();

bool alive(pid_t pid) {
  // A killed process not yet reaped by its (new) parent is a zombie: dead for this purpose.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

std::string read_available(int fd, std::chrono::milliseconds wait, const std::string& until) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  char buffer[256];
  while (std::chrono::steady_clock::now() < deadline && out.find(until) == std::string::npos) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) out.append(buffer, static_cast<size_t>(n));
    else std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return out;
}

TEST(Cgroup, ADriverStartsInItsOwnCgroupWhichGoesWithIt) {
  NEED_CGROUPS(b);
  auto tree = CgroupTree::open(b.base());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  ScratchTree scratch;
  SandboxPolicy policy = testing::hostile_policy(scratch.workspace);
  policy.cgroups = tree->get();
  auto driver = launch_sandboxed(policy, {ICAM_HOSTILE_PATH, "sleep"});
  ASSERT_TRUE(driver.ok()) << driver.error().message();

  // The kernel puts it there at clone: /proc/PID/cgroup names its leaf.
  const std::string where = slurp("/proc/" + std::to_string(driver->pid()) + "/cgroup");
  const std::string tree_path = b.relative((*tree)->path());
  EXPECT_NE(where.find("0::" + tree_path + "/d"), std::string::npos) << where;
  const LayerStatus* layer = driver->report().find(Layer::cgroup);
  ASSERT_NE(layer, nullptr);
  EXPECT_NE(layer->detail.find((*tree)->path().string()), std::string::npos) << layer->detail;
  EXPECT_EQ(layer->enforced, (*tree)->has_memory() || (*tree)->has_pids()) << layer->detail;

  size_t leaves = 0;
  for (const auto& entry : fs::directory_iterator((*tree)->path()))
    if (entry.is_directory()) ++leaves;
  EXPECT_EQ(leaves, 1u);
  driver->kill();
  *driver = DriverProcess();  // destroyed: its cgroup is removed
  for (const auto& entry : fs::directory_iterator((*tree)->path()))
    EXPECT_FALSE(entry.is_directory()) << entry.path() << " left behind";
}

TEST(Cgroup, StoppingADriverKillsWhatEscapedItsProcessGroup) {
  NEED_CGROUPS(b);
  if (probe_host().landlock_abi == 0) GTEST_SKIP() << "needs Landlock to run without namespaces";
  auto tree = CgroupTree::open(b.base());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  ScratchTree scratch;
  SandboxPolicy policy = testing::hostile_policy(scratch.workspace);
  // Without a pid namespace, killing the driver's process group is all the old stop did; a child
  // that made a session of its own survived it.
  policy.skip.namespaces = true;
  policy.limits.max_processes = 0;  // root: no RLIMIT_NPROC and no pid namespace to bound it
  policy.cgroups = tree->get();
  auto driver = launch_sandboxed(policy, {ICAM_HOSTILE_PATH, "escape"});
  ASSERT_TRUE(driver.ok()) << driver.error().message();
  const std::string out = read_available(driver->stdout_fd(), std::chrono::seconds(5), "\n");
  ASSERT_EQ(out.rfind("ESCAPED ", 0), 0u) << out;
  const pid_t escaped = static_cast<pid_t>(std::stol(out.substr(8)));
  ASSERT_TRUE(alive(escaped));
  driver->kill();
  bool gone = false;
  for (int i = 0; i < 2000 && !gone; ++i) {
    gone = !alive(escaped);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(gone) << "process " << escaped << " outlived its driver";
  if (!gone) ::kill(escaped, SIGKILL);
}

TEST(Cgroup, MemoryMaxEndsADriverThatTakesMore) {
  NEED_CGROUPS(b);
  if (!b.offers("memory")) GTEST_SKIP() << "this cgroup v2 hierarchy offers no memory controller";
  auto tree = CgroupTree::open(b.base());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  ASSERT_TRUE((*tree)->has_memory());
  ScratchTree scratch;
  SandboxPolicy policy = testing::hostile_policy(scratch.workspace);
  policy.limits.address_space_bytes = 0;  // only the cgroup bounds it
  policy.limits.memory_bytes = 64u << 20;
  policy.cgroups = tree->get();
  auto run = run_sandboxed(policy, {ICAM_HOSTILE_PATH, "memhog"}, {}, {}, std::chrono::seconds(30));
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_TRUE(run->report.enforced(Layer::cgroup)) << run->report.to_text();
  EXPECT_EQ(run->stdout_text.find("OK "), std::string::npos) << run->stdout_text;
  EXPECT_TRUE(run->exit.signaled && run->exit.signal == SIGKILL) << run->exit.describe();
  EXPECT_TRUE(run->exit.memory_limit) << run->exit.describe();
  EXPECT_NE(run->exit.describe().find("memory limit"), std::string::npos) << run->exit.describe();
}

TEST(Cgroup, PidsMaxBoundsADriversProcesses) {
  NEED_CGROUPS(b);
  if (!b.offers("pids")) GTEST_SKIP() << "this cgroup v2 hierarchy offers no pids controller";
  auto tree = CgroupTree::open(b.base());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  ASSERT_TRUE((*tree)->has_pids());
  ScratchTree scratch;
  SandboxPolicy policy = testing::hostile_policy(scratch.workspace);
  policy.limits.max_processes = 8;
  policy.cgroups = tree->get();
  auto run = run_sandboxed(policy, {ICAM_HOSTILE_PATH, "forkbomb"});
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_NE(run->report.find(Layer::rlimits)->detail.find("pids.max"), std::string::npos)
      << run->report.to_text();
  // The driver itself and 7 children.
  EXPECT_NE(run->stdout_text.find("BLOCKED fork after 7: EAGAIN"), std::string::npos)
      << run->stdout_text;
}

TEST(Cgroup, ATreeLeftByAKilledDaemonIsCleanedWhenOpenedAgain) {
  NEED_CGROUPS(b);
  {
    auto tree = CgroupTree::open(b.base());
    ASSERT_TRUE(tree.ok()) << tree.error().message();
  }
  // As a daemon killed with SIGKILL leaves it: a driver's leaf with its process in it, named
  // after a daemon that is gone; and a leaf of a daemon still running (pid 1), left alone.
  const pid_t gone = fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) _exit(0);
  ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
  const fs::path stale = b.base() / "icam-drivers" / ("d" + std::to_string(gone) + "-0");
  const fs::path running = b.base() / "icam-drivers" / "d1-0";
  ASSERT_EQ(mkdir((b.base() / "icam-drivers").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(stale.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(running.c_str(), 0755), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::ofstream(stale / "cgroup.procs") << getpid() << std::flush;
    for (;;) pause();
  }
  for (int i = 0; i < 2000 && slurp(stale / "cgroup.procs").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_FALSE(slurp(stale / "cgroup.procs").empty());

  auto tree = CgroupTree::open(b.base());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(running));
  rmdir(running.c_str());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(Cgroup, ABaseThatIsNotACgroupOrHoldsProcessesIsRefused) {
  ScratchTree scratch;
  auto not_cgroup = CgroupTree::open(scratch.root);
  ASSERT_FALSE(not_cgroup.ok());
  EXPECT_EQ(not_cgroup.error().code(), Errc::invalid_argument);
  EXPECT_NE(not_cgroup.error().message().find("cgroup v2"), std::string::npos);

  NEED_CGROUPS(b);
  if (!b.offers("memory") && !b.offers("pids"))
    GTEST_SKIP() << "without controllers to hand down, a base with processes is usable";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::ofstream(b.base() / "cgroup.procs") << getpid() << std::flush;
    for (;;) pause();
  }
  for (int i = 0; i < 2000 && slurp(b.base() / "cgroup.procs").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto busy = CgroupTree::open(b.base());
  ::kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code(), Errc::unavailable);
  EXPECT_NE(busy.error().message().find("holds processes"), std::string::npos)
      << busy.error().message();
}

TEST(Cgroup, TheProcessWideTreeIsConfiguredOnceAndReported) {
  NEED_CGROUPS(b);
  ASSERT_TRUE(configure_driver_cgroups(b.base().string()).ok());
  ASSERT_NE(driver_cgroups(), nullptr);
  EXPECT_EQ(driver_cgroups_detail(), "");
  {
    ScratchTree scratch;
    auto run = run_sandboxed(testing::hostile_policy(scratch.workspace), {ICAM_HOSTILE_PATH, "ok"});
    ASSERT_TRUE(run.ok()) << run.error().message();
    EXPECT_NE(run->report.find(Layer::cgroup)->detail.find(driver_cgroups()->path().string()),
              std::string::npos)
        << run->report.to_text();
  }
  ASSERT_TRUE(configure_driver_cgroups("off").ok());
  EXPECT_EQ(driver_cgroups(), nullptr);
  EXPECT_NE(driver_cgroups_detail().find("off"), std::string::npos);
  auto bad = configure_driver_cgroups("/proc");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--cgroup /proc"), std::string::npos) << bad.error().message();
  EXPECT_EQ(driver_cgroups(), nullptr);
}

}  // namespace
}  // namespace icam::sandbox
