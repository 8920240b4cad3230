// The sandbox against real hostile processes: each test starts the hostile helper (hostile.c) in
// the sandbox, lets it try one escape, and checks that the kernel refused it and that this test
// process (the parent) is unharmed. Layer-specific checks skip, with the reason, on hosts that
// lack the layer; the seccomp, rlimit and Landlock checks run wherever those exist.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "sandbox/launch.h"
#include "sandbox/run.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace icam::sandbox {
namespace {

namespace fs = std::filesystem;
using testing::ScratchTree;

const char* const kHostile = ICAM_HOSTILE_PATH;

SandboxRun run_hostile(const SandboxPolicy& policy, std::vector<std::string> args,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  args.insert(args.begin(), kHostile);
  auto run = run_sandboxed(policy, args, {}, {}, timeout);
  EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message());
  if (!run.ok()) return {};
  return std::move(run).value();
}

// The attempt was made and refused: either the kernel said no ("BLOCKED") or the seccomp filter
// killed the process mid-attempt. Never "OK".
void expect_blocked(const SandboxRun& run) {
  EXPECT_EQ(run.stdout_text.find("OK"), std::string::npos) << run.stdout_text << run.stderr_tail;
  const bool refused = run.stdout_text.find("BLOCKED") != std::string::npos;
  const bool killed = run.exit.signaled && run.exit.signal == SIGSYS;
  EXPECT_TRUE(refused || killed) << "stdout: " << run.stdout_text << "\nexit: " << run.exit.describe()
                                 << "\nstderr: " << run.stderr_tail;
}

void expect_killed_by_seccomp(const SandboxRun& run) {
  EXPECT_TRUE(run.exit.signaled && run.exit.signal == SIGSYS)
      << run.exit.describe() << "\nstdout: " << run.stdout_text;
  EXPECT_EQ(run.stdout_text.find("OK"), std::string::npos);
}

// The parent is healthy: it can still start a process and is traced by nobody.
void expect_parent_healthy() {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(0);
  int status = -1;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream self("/proc/self/status");
  std::string line;
  while (std::getline(self, line)) {
    if (line.rfind("TracerPid:", 0) == 0) {
      EXPECT_EQ(line, "TracerPid:\t0");
    }
  }
}

TEST(Sandbox, ReportNamesEveryLayer) {
  ScratchTree tree;
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"ok"});
  EXPECT_NE(run.stdout_text.find("OK alive"), std::string::npos) << run.stderr_tail;
  EXPECT_EQ(run.exit.describe(), "exit code 0");
  for (Layer layer : {Layer::user_ns, Layer::mount_ns, Layer::pid_ns, Layer::net_ns, Layer::ipc_ns,
                      Layer::uts_ns, Layer::landlock, Layer::seccomp, Layer::no_new_privs,
                      Layer::rlimits, Layer::cgroup}) {
    const LayerStatus* status = run.report.find(layer);
    ASSERT_NE(status, nullptr) << layer_name(layer);
    EXPECT_FALSE(status->detail.empty()) << layer_name(layer);
  }
  EXPECT_TRUE(run.report.enforced(Layer::seccomp));
  EXPECT_TRUE(run.report.enforced(Layer::no_new_privs));
  EXPECT_TRUE(run.report.enforced(Layer::rlimits));
  // The report of this host, for the test log.
  std::cout << run.report.to_text();
  EXPECT_EQ(run.report.to_json().size(), 11u);
}

TEST(Sandbox, WorkspaceIsReadable) {
  ScratchTree tree;
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"read", "hello.txt"});
  EXPECT_NE(run.stdout_text.find("OK hello from the workspace"), std::string::npos)
      << run.stdout_text << run.stderr_tail;
}

TEST(Sandbox, ReadingOutsideTheWorkspaceIsBlocked) {
  ScratchTree tree;
  fs::create_symlink(tree.secret, tree.workspace / "link_to_secret");
  fs::create_symlink("../outside", tree.workspace / "link_to_outside_dir");
  const SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  for (const std::string& path :
       {std::string("/etc/shadow"), tree.secret.string(), std::string("../outside/secret.txt"),
        std::string("link_to_secret"), std::string("link_to_outside_dir/secret.txt"),
        (tree.workspace / ".." / "outside" / "secret.txt").string(), std::string("/root/.bashrc"),
        std::string("/proc/1/root/etc/shadow")}) {
    SCOPED_TRACE(path);
    SandboxRun run = run_hostile(policy, {"read", path});
    expect_blocked(run);
    EXPECT_EQ(run.stdout_text.find("top secret"), std::string::npos);
  }
  expect_parent_healthy();
}

TEST(Sandbox, WritingOutsideTheWorkspaceIsBlocked) {
  ScratchTree tree;
  const SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  for (const fs::path& path : {tree.outside / "planted.txt", fs::path("/etc/icam-planted"),
                               fs::path("/usr/icam-planted")}) {
    SCOPED_TRACE(path.string());
    expect_blocked(run_hostile(policy, {"write", path.string()}));
    EXPECT_FALSE(fs::exists(path));
  }
  // With a mount namespace the workspace's parent is a directory of the private /tmp, so this
  // write may succeed there; either way nothing reaches the host.
  run_hostile(policy, {"write", (tree.workspace / ".." / "planted.txt").string()});
  EXPECT_FALSE(fs::exists(tree.root / "planted.txt"));
  // Inside it works, and a private /tmp leaves the host's alone.
  SandboxRun inside = run_hostile(policy, {"write", "made.txt"});
  EXPECT_NE(inside.stdout_text.find("OK"), std::string::npos) << inside.stdout_text << inside.stderr_tail;
  EXPECT_TRUE(fs::exists(tree.workspace / "made.txt"));
}

// A listening socket on 127.0.0.1 in the test process, for the driver to try to reach.
struct Listener {
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd, 4);
    socklen_t length = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd); }
  bool accepted_someone() const {
    const int peer = accept(fd, nullptr, nullptr);
    if (peer >= 0) close(peer);
    return peer >= 0;
  }
  int fd = -1;
  int port = 0;
};

TEST(Sandbox, SocketToLoopbackIsBlockedWithoutNet) {
  ScratchTree tree;
  Listener listener;
  expect_blocked(run_hostile(testing::hostile_policy(tree.workspace), {"socket", std::to_string(listener.port)}));
  EXPECT_FALSE(listener.accepted_someone());
  expect_parent_healthy();
}

TEST(Sandbox, NetCapabilityAllowsSockets) {
  ScratchTree tree;
  Listener listener;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.allow_net = true;
  SandboxRun run = run_hostile(policy, {"socket", std::to_string(listener.port)});
  EXPECT_NE(run.stdout_text.find("OK connected"), std::string::npos) << run.stdout_text << run.stderr_tail;
  EXPECT_FALSE(run.report.enforced(Layer::net_ns));
}

// Processes whose command line holds `marker`, anywhere on the host.
int count_processes_with(const std::string& marker) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), {});
    if (text.find(marker) != std::string::npos) ++count;
  }
  return count;
}

TEST(Sandbox, ForkBombIsBoundedAndCleanedUp) {
  ScratchTree tree;
  const std::string marker = "icam-forkbomb-" + std::to_string(getpid());
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"forkbomb", marker});
  expect_blocked(run);
  // Everything it forked died with it (its pid namespace, or its process group).
  int left = 0;
  for (int i = 0; i < 100 && (left = count_processes_with(marker)) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(left, 0);
  expect_parent_healthy();
}

TEST(Sandbox, MemoryHogIsBounded) {
  ScratchTree tree;
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"memhog"});
  EXPECT_NE(run.stdout_text.find("BLOCKED malloc"), std::string::npos) << run.stdout_text << run.exit.describe();
  expect_parent_healthy();
}

TEST(Sandbox, PtraceOfTheParentIsKilled) {
  ScratchTree tree;
  expect_killed_by_seccomp(run_hostile(testing::hostile_policy(tree.workspace), {"ptrace", std::to_string(getpid())}));
  expect_parent_healthy();
}

TEST(Sandbox, SignallingTheParentIsBlocked) {
  ScratchTree tree;
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"signal", std::to_string(getpid())});
  if (!run.report.enforced(Layer::pid_ns) && run.report.find(Layer::landlock)->detail.find("signals") == std::string::npos) {
    GTEST_SKIP() << "neither a pid namespace nor Landlock signal scoping on this host";
  }
  expect_blocked(run);
}

TEST(Sandbox, MountUnshareAndNamespaceClonesAreRefused) {
  ScratchTree tree;
  const SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  expect_killed_by_seccomp(run_hostile(policy, {"mount"}));
  expect_killed_by_seccomp(run_hostile(policy, {"unshare"}));
  SandboxRun clone_ns = run_hostile(policy, {"clone_ns"});
  expect_blocked(clone_ns);
  EXPECT_NE(clone_ns.stdout_text.find("EPERM"), std::string::npos) << clone_ns.stdout_text;
  expect_parent_healthy();
}

TEST(Sandbox, IoUringIsKilled) {
  ScratchTree tree;
  expect_killed_by_seccomp(run_hostile(testing::hostile_policy(tree.workspace), {"io_uring"}));
}

TEST(Sandbox, ForeignArchitectureEntriesAreKilled) {
  ScratchTree tree;
  expect_killed_by_seccomp(run_hostile(testing::hostile_policy(tree.workspace), {"x32"}));
  expect_killed_by_seccomp(run_hostile(testing::hostile_policy(tree.workspace), {"i386"}));
}

TEST(Sandbox, Clone3LooksAbsentAndForkWorks) {
  ScratchTree tree;
  const SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  SandboxRun clone3 = run_hostile(policy, {"clone3"});
  EXPECT_NE(clone3.stdout_text.find("BLOCKED clone3: ENOSYS"), std::string::npos) << clone3.stdout_text;
  SandboxRun fork = run_hostile(policy, {"fork"});
  EXPECT_NE(fork.stdout_text.find("OK child exit 7"), std::string::npos) << fork.stdout_text << fork.stderr_tail;
}

TEST(Sandbox, SetuidBinaryGainsNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "making a setuid binary owned by another user needs root";
  ScratchTree tree;
  const fs::path copy = tree.workspace / "suid-helper";
  fs::copy_file(kHostile, copy);
  ASSERT_EQ(chown(copy.c_str(), 4242, 4242), 0);
  ASSERT_EQ(chmod(copy.c_str(), 04755), 0);
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"exec_euid", copy.string()});
  const size_t before = run.stdout_text.find("EUID_BEFORE ");
  const size_t after = run.stdout_text.find("\nEUID ");
  ASSERT_NE(before, std::string::npos) << run.stdout_text << run.stderr_tail;
  if (after == std::string::npos) {  // refused to execute at all (nosuid mount): also fine
    EXPECT_NE(run.stdout_text.find("BLOCKED"), std::string::npos) << run.stdout_text;
    return;
  }
  const int euid_before = std::stoi(run.stdout_text.substr(before + 12));
  const int euid_after = std::stoi(run.stdout_text.substr(after + 6));
  EXPECT_EQ(euid_before, euid_after) << run.stdout_text;
  EXPECT_NE(euid_after, 4242);
}

TEST(Sandbox, TiocstiCannotInjectInput) {
  ScratchTree tree;
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"tiocsti"});
  expect_blocked(run);
}

TEST(Sandbox, NoControllingTerminalAndOnlyThreeDescriptors) {
  ScratchTree tree;
  // A descriptor the parent leaks without close-on-exec must not reach the driver.
  const int leaked = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  const SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  SandboxRun fds = run_hostile(policy, {"fds"});
  close(leaked);
  EXPECT_NE(fds.stdout_text.find("FDS 0 1 2\n"), std::string::npos) << fds.stdout_text << fds.stderr_tail;
  SandboxRun session = run_hostile(policy, {"session"});
  EXPECT_NE(session.stdout_text.find("SID leader"), std::string::npos) << session.stdout_text;
  EXPECT_NE(session.stdout_text.find("BLOCKED open /dev/tty"), std::string::npos) << session.stdout_text;
}

TEST(Sandbox, PythonRunsInTheSandbox) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  ScratchTree tree;
  SandboxPolicy policy = testing::driver_policy(tree.workspace);
  auto run = run_sandboxed(policy, {"python3", "-c", "import json,os; print(json.dumps(sorted(os.listdir('.'))))"});
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->stdout_text, "[\"hello.txt\"]\n") << run->stderr_tail << run->exit.describe();
}

TEST(Sandbox, LandlockAloneConfinesTheWorkspace) {
  if (probe_host().landlock_abi == 0) GTEST_SKIP() << probe_host().landlock_detail;
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.skip.namespaces = true;
  if (geteuid() == 0) policy.limits.max_processes = 0;  // not enforceable for root without userns
  SandboxRun inside = run_hostile(policy, {"read", "hello.txt"});
  EXPECT_NE(inside.stdout_text.find("OK hello"), std::string::npos) << inside.stdout_text << inside.stderr_tail;
  EXPECT_FALSE(inside.report.enforced(Layer::mount_ns));
  EXPECT_TRUE(inside.report.enforced(Layer::landlock));
  for (const std::string& path : {tree.secret.string(), std::string("link_to_nowhere"), std::string("/etc/shadow")}) {
    SCOPED_TRACE(path);
    expect_blocked(run_hostile(policy, {"read", path}));
  }
  fs::create_symlink(tree.secret, tree.workspace / "link");
  expect_blocked(run_hostile(policy, {"read", "link"}));
  expect_blocked(run_hostile(policy, {"write", (tree.outside / "planted").string()}));
  EXPECT_FALSE(fs::exists(tree.outside / "planted"));
  expect_blocked(run_hostile(policy, {"socket", "9"}));
}

TEST(Sandbox, NamespacesAloneConfineTheWorkspace) {
  if (!probe_host().namespaces) GTEST_SKIP() << probe_host().namespaces_detail;
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.skip.landlock = true;
  fs::create_symlink(tree.secret, tree.workspace / "link");
  SandboxRun run = run_hostile(policy, {"read", "link"});
  expect_blocked(run);
  EXPECT_FALSE(run.report.enforced(Layer::landlock));
  expect_blocked(run_hostile(policy, {"read", tree.secret.string()}));
  expect_blocked(run_hostile(policy, {"write", (tree.outside / "planted").string()}));
}

TEST(Sandbox, RefusesWhenNothingCanConfineTheWorkspace) {
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.skip.namespaces = true;
  policy.skip.landlock = true;
  auto launched = launch_sandboxed(policy, {kHostile, "ok"});
  ASSERT_FALSE(launched.ok());
  EXPECT_EQ(launched.error().code(), Errc::unsupported);
  EXPECT_NE(launched.error().message().find("mount namespace"), std::string::npos) << launched.error().message();
  EXPECT_NE(launched.error().message().find("landlock"), std::string::npos) << launched.error().message();
}

TEST(Sandbox, RefusesAProcessLimitRootCannotBeHeldTo) {
  if (geteuid() != 0) GTEST_SKIP() << "only root escapes RLIMIT_NPROC";
  if (probe_host().landlock_abi == 0) GTEST_SKIP() << "needs Landlock to get past the workspace check";
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  policy.skip.namespaces = true;
  auto launched = launch_sandboxed(policy, {kHostile, "ok"});
  ASSERT_FALSE(launched.ok());
  EXPECT_NE(launched.error().message().find("max_processes"), std::string::npos) << launched.error().message();
}

TEST(Sandbox, BadPoliciesAndProgramsAreErrors) {
  ScratchTree tree;
  SandboxPolicy policy = testing::hostile_policy(tree.workspace);
  EXPECT_EQ(launch_sandboxed(policy, {}).error().code(), Errc::invalid_argument);
  EXPECT_EQ(launch_sandboxed(policy, {"/no/such/driver"}).error().code(), Errc::not_found);
  EXPECT_EQ(launch_sandboxed(policy, {"no-such-driver-anywhere"}).error().code(), Errc::not_found);
  policy.workspace = tree.root / "missing";
  EXPECT_EQ(launch_sandboxed(policy, {kHostile, "ok"}).error().code(), Errc::not_found);
  policy.workspace = "relative/ws";
  EXPECT_EQ(launch_sandboxed(policy, {kHostile, "ok"}).error().code(), Errc::invalid_argument);
}

TEST(Sandbox, DroppingTheHandleKillsAndReapsTheDriver) {
  ScratchTree tree;
  pid_t pid = -1;
  {
    auto process = launch_sandboxed(testing::hostile_policy(tree.workspace), {kHostile, "sleep"});
    ASSERT_TRUE(process.ok()) << process.error().message();
    pid = process->pid();
    EXPECT_EQ(kill(pid, 0), 0);
  }
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);  // reaped already: not our child any more
  EXPECT_EQ(errno, ECHILD);
}

TEST(Sandbox, RunTimesOutAndKills) {
  ScratchTree tree;
  const auto start = std::chrono::steady_clock::now();
  SandboxRun run = run_hostile(testing::hostile_policy(tree.workspace), {"sleep"}, std::chrono::milliseconds(300));
  EXPECT_TRUE(run.timed_out);
  EXPECT_TRUE(run.exit.signaled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace icam::sandbox
