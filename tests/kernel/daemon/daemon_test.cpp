// icamd end to end: the real daemon binary on a tiny generated model, driven through its socket
// with the real client library, raw sockets for malformed traffic, and the real icamctl.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kernel/client/daemon_client.h"
#include "kernel/daemon/api.h"
#include "kernel/daemon/protocol.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam {
namespace {

using client::DaemonClient;
using nlohmann::json;
namespace fs = std::filesystem;

// A model big enough that a long job runs for seconds (so it can be killed mid-run) while short
// jobs (a few tokens) finish at once.
const std::string& model_file() {
  static const std::string path = [] {
    llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
    spec.d_model = 256;
    spec.d_ffn = 1024;
    spec.n_layers = 4;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.head_dim = 64;
    spec.context_length = 8192;
    const std::string p = llm::testing::temp_model_path("daemon-test");
    const Status st = llm::testing::write_tiny_model(llm::testing::make_tiny_model(spec), p);
    if (!st.ok()) std::abort();
    return p;
  }();
  return path;
}

json short_job(const std::string& name = "short") {
  return {{"name", name}, {"task", "say something"}, {"budgets", {{"tokens", 12}}}};
}
json long_job(const std::string& name = "long") {
  return {{"name", name},
          {"task", "go on for a long time"},
          {"sampling", {{"max_tokens", 100000}}},
          {"budgets", {{"tokens", 100000}}}};
}

// The daemon as a child process, killed (if still running) when the test ends.
class Daemon {
 public:
  // `home`: the directory of a daemon started before (its journal, socket and log), for a restart;
  // the test that named it removes it. Otherwise a fresh one, removed at the end.
  explicit Daemon(std::vector<std::string> extra = {}, fs::path home = {}) {
    owns_dir_ = home.empty();
    dir_ = !home.empty() ? home
                         : fs::temp_directory_path() / ("icamd-test-" + std::to_string(getpid()) +
                                                        "-" + std::to_string(counter_++));
    if (owns_dir_) fs::remove_all(dir_);
    fs::create_directories(dir_);
    socket_ = (dir_ / "run" / "icamd.sock").string();
    // Workspaces and the audit log in the test's directory, not the user's home.
    std::vector<std::string> args = {ICAMD_PATH,     "--socket",
                                     socket_,        "--model",
                                     model_file(),   "--threads",
                                     "1",            "--audit-db",
                                     (dir_ / "audit.db").string(), "--workspace-root",
                                     (dir_ / "workspaces").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      // Its state (process journal, page store, archive) in the test's directory too.
      ::setenv("ICAM_HOME", dir_.c_str(), 1);
      ::setenv("ICAM_LOG_LEVEL", "info", 1);
      const int out = ::open((dir_ / "icamd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready when the socket answers.
    for (int i = 0; i < 600; ++i) {
      if (DaemonClient::connect(socket_).ok()) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (expect_start_) ADD_FAILURE() << "icamd did not start:\n" << log();
  }
  ~Daemon() {
    kill_now();
    if (owns_dir_) fs::remove_all(dir_);
  }
  // SIGKILL, as a crash would end it: nothing is drained or written.
  void kill_now() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  const fs::path& dir() const { return dir_; }
  bool running() const { return pid_ > 0; }
  // For a daemon expected not to start: no failure is reported when it does not.
  static inline bool expect_start_ = true;

  DaemonClient connect() const {
    auto c = DaemonClient::connect(socket_);
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(*c);
  }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  // Waits for the daemon to exit; its exit status, or -1 if it did not within `seconds`.
  int wait_exit(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string log() const {
    std::ifstream in(dir_ / "icamd.log");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  static inline int counter_ = 0;
  bool owns_dir_ = true;
  fs::path dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

// A raw connection for traffic the client library would never send.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ~RawConnection() { ::close(fd_); }
  bool send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // The next line, or "" at end of file.
  std::string line() {
    while (true) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return l;
      }
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  json message() {
    const std::string l = line();
    return l.empty() ? json(nullptr) : json::parse(l);
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

uint64_t run(DaemonClient& c, const json& job) {
  auto r = c.call("proc.run", {{"job", job}});
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? (*r)["pid"].get<uint64_t>() : 0;
}

TEST(Daemon, InfoRunFollowWait) {
  Daemon d;
  DaemonClient c = d.connect();
  auto info = c.call("daemon.info");
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ((*info)["api_version"], daemon::kApiVersion);
  EXPECT_EQ((*info)["model"]["path"], model_file());
  EXPECT_EQ((*info)["uid"], getuid());

  const uint64_t pid = run(c, short_job());
  ASSERT_GT(pid, 0u);
  std::string streamed;
  uint64_t next_offset = 0;
  auto followed = c.call_streaming("proc.logs", {{"pid", pid}, {"follow", true}},
                                   [&](const std::string& method, const json& params) {
                                     ASSERT_EQ(method, "proc.output");
                                     EXPECT_EQ(params["offset"], next_offset);
                                     streamed += params["text"].get<std::string>();
                                     next_offset = streamed.size();
                                   });
  ASSERT_TRUE(followed.ok()) << followed.error().message();
  const json record = (*followed)["process"];
  EXPECT_EQ(record["state"], "exited");
  EXPECT_EQ(record["owner_uid"], getuid());
  EXPECT_LE(record["accounting"]["generated_tokens"].get<int>(), 12);
  // The exit answer is the trimmed turn text, which is what was streamed.
  EXPECT_NE(streamed.find(record["exit"]["answer"].get<std::string>()), std::string::npos);

  // The same output without follow, and from an offset.
  auto logs = c.call("proc.logs", {{"pid", pid}});
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ((*logs)["text"], streamed);
  EXPECT_EQ((*logs)["exited"], true);
  if (streamed.size() > 2) {
    auto tail = c.call("proc.logs", {{"pid", pid}, {"offset", 2}});
    ASSERT_TRUE(tail.ok());
    EXPECT_EQ((*tail)["text"], streamed.substr(2));
  }
  auto waited = c.call("proc.wait", {{"pid", pid}});
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ((*waited)["process"]["exit"], record["exit"]);
  auto list = c.call("proc.list");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["processes"].size(), 1u);
  EXPECT_EQ((*list)["processes"][0]["pid"], pid);
  auto stats = c.call("kernel.stats");
  ASSERT_TRUE(stats.ok());
  EXPECT_GE((*stats)["scheduler"]["sampled_tokens"].get<int>(), 1);
  EXPECT_EQ((*stats)["processes"]["live"], 0);
}

TEST(Daemon, ManyProcessesRunTogether) {
  Daemon d;
  DaemonClient c = d.connect();
  std::vector<uint64_t> pids;
  for (const char* name : {"p0", "p1", "p2", "p3", "p4", "p5"}) pids.push_back(run(c, short_job(name)));
  for (uint64_t pid : pids) {
    auto w = c.call("proc.wait", {{"pid", pid}, {"timeout_s", 60}});
    ASSERT_TRUE(w.ok()) << w.error().message();
    EXPECT_EQ((*w)["process"]["state"], "exited");
  }
  auto stats = c.call("kernel.stats");
  ASSERT_TRUE(stats.ok());
  // Continuous batching: some step served more than one process.
  EXPECT_GT((*stats)["scheduler"]["max_batch"].get<int>(), 1);
}

TEST(Daemon, KillMidRunAndWaitTimeout) {
  Daemon d;
  DaemonClient c = d.connect();
  const uint64_t pid = run(c, long_job());
  auto early = c.call("proc.wait", {{"pid", pid}, {"timeout_s", 0.05}});
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), Errc::timed_out);
  // Let it generate a little, then kill it mid-run.
  for (int i = 0; i < 200; ++i) {
    auto g = c.call("proc.get", {{"pid", pid}});
    ASSERT_TRUE(g.ok());
    if ((*g)["process"]["accounting"]["generated_tokens"].get<int>() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto killed = c.call("proc.kill", {{"pid", pid}});
  ASSERT_TRUE(killed.ok()) << killed.error().message();
  EXPECT_EQ((*killed)["process"]["exit"]["reason"], "cancelled");
  auto waited = c.call("proc.wait", {{"pid", pid}});
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ((*waited)["process"]["exit"]["reason"], "cancelled");
  auto again = c.call("proc.kill", {{"pid", pid}});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already exited"), std::string::npos);
  // The KV pages went back to the pool.
  auto stats = c.call("kernel.stats");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)["kv"]["pages_used"], 0);
  // The daemon still serves.
  const uint64_t next = run(c, short_job());
  EXPECT_TRUE(c.call("proc.wait", {{"pid", next}}).ok());
}

TEST(Daemon, ClientDisconnectingMidStreamDoesNotHurtTheProcess) {
  Daemon d;
  uint64_t pid = 0;
  {
    DaemonClient a = d.connect();
    json job = long_job();
    job["budgets"]["tokens"] = 200;
    pid = run(a, job);
    std::atomic<bool> stop{false};
    a.set_interrupt(&stop);
    int notes = 0;
    auto r = a.call_streaming("proc.logs", {{"pid", pid}, {"follow", true}},
                              [&](const std::string&, const json&) {
                                if (++notes == 3) stop = true;  // hang up after a few chunks
                              });
    EXPECT_FALSE(r.ok());
  }
  DaemonClient b = d.connect();
  auto w = b.call("proc.wait", {{"pid", pid}, {"timeout_s", 120}});
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ((*w)["process"]["exit"]["reason"], "budget_tokens");
  EXPECT_EQ((*w)["process"]["accounting"]["generated_tokens"], 200);
}

TEST(Daemon, MalformedTrafficGetsErrorsAndOthersAreStillServed) {
  Daemon d;
  RawConnection raw(d.socket());
  auto expect_error = [&](const std::string& line, int code, const std::string& fragment) {
    ASSERT_TRUE(raw.send(line + "\n"));
    const json m = raw.message();
    ASSERT_TRUE(m.is_object()) << line;
    ASSERT_TRUE(m.contains("error")) << m.dump();
    EXPECT_EQ(m["error"]["code"], code) << m.dump();
    EXPECT_NE(m["error"]["message"].get<std::string>().find(fragment), std::string::npos)
        << m.dump();
  };
  using namespace daemon::rpc_code;
  expect_error("{not json", parse_error, "parse error");
  expect_error("[1,2]", invalid_request, "JSON object");
  expect_error(R"({"id":1,"method":"daemon.info"})", invalid_request, "jsonrpc");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"no.such"})", method_not_found, "no.such");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"proc.get","params":[1]})", invalid_params,
               "named");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"proc.get","params":{"pid":-3}})",
               invalid_params, "params.pid");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"proc.get","params":{"pid":1,"x":2}})",
               invalid_params, "params.x");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"proc.get","params":{"pid":77}})", not_found,
               "no process 77");
  expect_error(
      R"({"jsonrpc":"2.0","id":1,"method":"proc.run","params":{"job":{"task":"x","budgets":{"tokens":0}}}})",
      invalid_params, "params.job: /budgets/tokens");
  expect_error(
      R"({"jsonrpc":"2.0","id":1,"method":"proc.run","params":{"job":{"task":"x","model":"/other.gguf"}}})",
      failed, "/other.gguf");
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"proc.wait","params":{"pid":1,"timeout_s":-1}})",
               invalid_params, "timeout_s");
  // A notification (no id) gets no answer: the next answer is for the next request.
  ASSERT_TRUE(raw.send(R"({"jsonrpc":"2.0","method":"daemon.info"})"
                       "\n"
                       R"({"jsonrpc":"2.0","id":"after","method":"daemon.info"})"
                       "\n"));
  EXPECT_EQ(raw.message()["id"], "after");

  // An oversized message: an error, then the connection is closed.
  RawConnection big(d.socket());
  ASSERT_TRUE(big.send(std::string(daemon::kMaxMessageBytes + 100, 'x')));
  const json m = big.message();
  ASSERT_TRUE(m.is_object());
  EXPECT_NE(m["error"]["message"].get<std::string>().find("longer than"), std::string::npos);
  EXPECT_EQ(big.line(), "");  // closed

  // The daemon carries on for everyone else.
  DaemonClient c = d.connect();
  EXPECT_TRUE(c.call("daemon.info").ok());
}

TEST(Daemon, FloodOfRequestsAndLimits) {
  Daemon d({"--max-per-user", "2"});
  // Many connections, each pipelining many requests without reading the answers.
  std::vector<std::unique_ptr<RawConnection>> flood;
  std::string burst;
  for (int i = 0; i < 200; ++i)
    burst += R"({"jsonrpc":"2.0","id":)" + std::to_string(i) + R"(,"method":"proc.list"})" "\n";
  for (int k = 0; k < 20; ++k) {
    flood.push_back(std::make_unique<RawConnection>(d.socket()));
    ASSERT_TRUE(flood.back()->send(burst));
  }
  DaemonClient c = d.connect();
  const uint64_t a = run(c, long_job("a"));
  const uint64_t b = run(c, long_job("b"));
  auto third = c.call("proc.run", {{"job", short_job()}});
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code(), Errc::resource_exhausted);
  EXPECT_NE(third.error().message().find("per-user limit"), std::string::npos);
  // One flooding connection reads its answers: all 200, in order.
  for (int i = 0; i < 200; ++i) {
    const json m = flood[0]->message();
    ASSERT_EQ(m["id"], i);
    ASSERT_TRUE(m.contains("result"));
  }
  EXPECT_TRUE(c.call("proc.kill", {{"pid", a}}).ok());
  EXPECT_TRUE(c.call("proc.kill", {{"pid", b}}).ok());
  EXPECT_GT(run(c, short_job()), 0u);  // room again
}

TEST(Daemon, UsersSeeOnlyTheirOwnProcesses) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to act as a second user";
  Daemon d;
  // The socket is private to the daemon's user.
  struct stat st {};
  ASSERT_EQ(::stat(d.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(fs::path(d.socket()).parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  DaemonClient root = d.connect();
  const uint64_t mine = run(root, long_job("root-job"));

  auto as_nobody = [&](bool open_socket) -> int {
    // Exit codes of the child: 0 all as expected, others name the failed check.
    const pid_t child = fork();
    if (child == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(90);
      auto c = DaemonClient::connect(d.socket());
      if (!open_socket) ::_exit(!c.ok() && c.error().code() == Errc::permission_denied ? 0 : 91);
      if (!c.ok()) ::_exit(92);
      auto list = c->call("proc.list");
      if (!list.ok() || !(*list)["processes"].empty()) ::_exit(93);
      auto get = c->call("proc.get", {{"pid", mine}});
      if (get.ok() || get.error().code() != Errc::not_found) ::_exit(94);
      auto kill = c->call("proc.kill", {{"pid", mine}});
      if (kill.ok() || kill.error().code() != Errc::not_found) ::_exit(95);
      auto all = c->call("proc.list", {{"all", true}});
      if (all.ok() || all.error().code() != Errc::permission_denied) ::_exit(96);
      auto stop = c->call("daemon.shutdown");
      if (stop.ok() || stop.error().code() != Errc::permission_denied) ::_exit(97);
      auto own = c->call("proc.run", {{"job", short_job("nobody-job")}});
      if (!own.ok()) ::_exit(98);
      auto again = c->call("proc.list");
      if (!again.ok() || (*again)["processes"].size() != 1 ||
          (*again)["processes"][0]["owner_uid"] != 65534)
        ::_exit(99);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  // Mode 0600 keeps other users out altogether...
  EXPECT_EQ(as_nobody(false), 0);
  // ...and with the socket opened up, the peer-credential checks still hold.
  ASSERT_EQ(::chmod(fs::path(d.socket()).parent_path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(d.socket().c_str(), 0666), 0);
  EXPECT_EQ(as_nobody(true), 0);

  auto all = root.call("proc.list", {{"all", true}});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)["processes"].size(), 2u);  // root sees both users' processes
  auto own = root.call("proc.list");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ((*own)["processes"].size(), 1u);
  EXPECT_TRUE(root.call("proc.kill", {{"pid", mine}}).ok());
}

TEST(Daemon, SigtermDrainsThenCancelsWhatIsLeft) {
  // The drain window must outlast the quick job even on a slow, loaded sanitizer build, and the
  // slow job (100k tokens) must outlast the window everywhere.
  Daemon d({"--drain-seconds", "8"});
  DaemonClient c = d.connect();
  const uint64_t quick = run(c, short_job());
  const uint64_t slow = run(c, long_job());
  ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
  // New work is refused while draining (the signal arrives asynchronously: wait until the daemon
  // says it is draining); waits are still answered.
  DaemonClient c2 = d.connect();
  for (int i = 0; i < 500; ++i) {
    auto info = c2.call("daemon.info");
    ASSERT_TRUE(info.ok());
    if ((*info)["draining"] == true) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto refused = c2.call("proc.run", {{"job", short_job()}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Errc::unavailable);
  auto w1 = c.call("proc.wait", {{"pid", quick}});
  ASSERT_TRUE(w1.ok()) << w1.error().message();
  EXPECT_NE((*w1)["process"]["exit"]["reason"], "cancelled");
  auto w2 = c.call("proc.wait", {{"pid", slow}});
  ASSERT_TRUE(w2.ok()) << w2.error().message();
  EXPECT_EQ((*w2)["process"]["exit"]["reason"], "cancelled");
  EXPECT_EQ(d.wait_exit(30), 0) << d.log();
  EXPECT_FALSE(fs::exists(d.socket()));
}

TEST(Daemon, CapsShowsWhatAProcessHoldsAndWhereItCameFrom) {
  Daemon d;
  DaemonClient c = d.connect();
  json job = long_job("caps");
  job["tools"] = {"fs.read"};
  job["capabilities"] = {"fs.read:${workspace}/** uses=5", "net:none"};
  const uint64_t pid = run(c, job);
  auto caps = c.call("proc.caps", {{"pid", pid}});
  ASSERT_TRUE(caps.ok()) << caps.error().message();
  const json& list = (*caps)["capabilities"];
  ASSERT_EQ(list.size(), 2u) << caps->dump();
  EXPECT_EQ(list[0]["capability"].get<std::string>().rfind("fs.read:/", 0), 0u) << list[0];
  EXPECT_NE(list[0]["capability"].get<std::string>().find("/workspaces/"), std::string::npos);
  EXPECT_EQ(list[0]["uses_left"], 5);
  EXPECT_EQ(list[0]["state"], "active");
  EXPECT_NE(list[0]["origin"].get<std::string>().find("job 'caps'"), std::string::npos) << list[0];
  EXPECT_EQ(list[1]["capability"], "net:none");
  EXPECT_TRUE(list[1]["uses_left"].is_null());

  // icamctl caps prints the same as a table.
  const std::string cmd = "ICAM_SOCKET=" + d.socket() + " " + ICAMCTL_PATH + " caps " +
                          std::to_string(pid) + " 2>&1";
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    EXPECT_EQ(::pclose(f), 0) << out;
  }
  EXPECT_NE(out.find("CAPABILITY"), std::string::npos) << out;
  EXPECT_NE(out.find("net:none"), std::string::npos) << out;

  // After exit the tokens show as revoked; an unknown pid is an error.
  ASSERT_TRUE(c.call("proc.kill", {{"pid", pid}}).ok());
  ASSERT_TRUE(c.call("proc.wait", {{"pid", pid}}).ok());
  auto after = c.call("proc.caps", {{"pid", pid}});
  ASSERT_TRUE(after.ok()) << after.error().message();
  for (const json& e : (*after)["capabilities"]) EXPECT_EQ(e["state"], "revoked") << e;
  auto missing = c.call("proc.caps", {{"pid", 999999}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Errc::not_found);
}

TEST(Daemon, RefusesASecondDaemonOnTheSameSocketAndReplacesAStaleOne) {
  Daemon d;
  const std::string cmd = std::string(ICAMD_PATH) + " --socket " + d.socket() + " --model " +
                          model_file() + " >/dev/null 2>&1";
  const int raw = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(raw), 1);  // "another daemon is already listening"
  DaemonClient c = d.connect();
  EXPECT_TRUE(c.call("daemon.info").ok());
}

TEST(Daemon, ApiReferenceInDocsIsCurrent) {
  std::ifstream in(std::string(ICAM_SOURCE_DIR) + "/docs/daemon-api.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(doc.find(daemon::api_markdown()), std::string::npos)
      << "docs/daemon-api.md is out of date: paste the output of `icamd --api-markdown`";
}

// ---------------------------------------------------------------------------------------------
// icamctl against the daemon.

struct Cmd {
  int status = -1;
  std::string out;
  std::string err;
};

Cmd icamctl(const Daemon& d, const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("icamctl-d-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string cmd = "ICAM_SOCKET=" + d.socket() + " " + ICAMCTL_PATH + " " + args + " >" +
                          (dir / "out").string() + " 2>" + (dir / "err").string() +
                          " </dev/null";
  Cmd r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  fs::remove_all(dir);
  return r;
}

// A Ctrl-C (SIGINT) at any moment of an attached `icamctl run` never leaves its job running
// unseen: either icamctl had not yet asked for the job, or it stops the job and exits 130.
// (Before, a Ctrl-C while the spawn's reply was on its way killed icamctl and left the job
// running.) The signal goes at several delays after the start, to land in different phases.
TEST(Icamctl, AnInterruptedRunNeverLeavesItsJobRunning) {
  Daemon d;
  for (const int delay_ms : {0, 1, 2, 5, 10, 20, 50, 200}) {
    SCOPED_TRACE("SIGINT after " + std::to_string(delay_ms) + " ms");
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::setenv("ICAM_SOCKET", d.socket().c_str(), 1);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(ICAMCTL_PATH, "icamctl", "run", "--task", "a long one", "--max-tokens", "100000",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child, SIGINT);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 130);
    }
    Cmd ps = icamctl(d, "ps --json");
    ASSERT_EQ(ps.status, 0) << ps.err;
    for (const json& record : json::parse(ps.out))
      EXPECT_EQ(record.value("state", ""), "exited") << record.dump();
  }
}

TEST(Icamctl, CommandsAgainstTheDaemon) {
  Daemon d;
  // run goes to the daemon (the model path given is the daemon's).
  Cmd ran = icamctl(d, "run --task hello --max-tokens 8");
  // The token budget ran out (3), or the model ended its turn early (0).
  EXPECT_TRUE(ran.status == 3 || ran.status == 0) << ran.status << ran.err;
  EXPECT_NE(ran.err.find("pid 1 (run)"), std::string::npos) << ran.err;

  Cmd detached = icamctl(d, "run --detach --name bg --task 'a long one' --max-tokens 100000");
  ASSERT_EQ(detached.status, 0) << detached.err;
  const std::string bg = detached.out.substr(0, detached.out.find('\n'));
  EXPECT_EQ(bg, "2");

  Cmd ps = icamctl(d, "ps");
  EXPECT_EQ(ps.status, 0) << ps.err;
  EXPECT_NE(ps.out.find("PID"), std::string::npos);
  EXPECT_NE(ps.out.find("bg"), std::string::npos);
  Cmd psj = icamctl(d, "ps --json");
  ASSERT_EQ(psj.status, 0);
  EXPECT_EQ(json::parse(psj.out).size(), 2u);

  Cmd top = icamctl(d, "top -n 1");
  EXPECT_EQ(top.status, 0) << top.err;
  EXPECT_NE(top.out.find("tok/s"), std::string::npos);
  EXPECT_NE(top.out.find("kv "), std::string::npos);
  Cmd stats = icamctl(d, "stats --json");
  ASSERT_EQ(stats.status, 0) << stats.err;
  EXPECT_TRUE(json::parse(stats.out)["stats"].contains("scheduler"));

  Cmd killed = icamctl(d, "kill " + bg);
  EXPECT_EQ(killed.status, 0) << killed.err;
  Cmd waited = icamctl(d, "wait " + bg);
  EXPECT_EQ(waited.status, 130) << waited.err;  // it was cancelled
  EXPECT_NE(waited.err.find("exit cancelled"), std::string::npos);
  Cmd logs = icamctl(d, "logs 1");
  EXPECT_EQ(logs.status, 0);
  Cmd missing = icamctl(d, "wait 99");
  EXPECT_EQ(missing.status, 4);
  EXPECT_NE(missing.err.find("no process 99"), std::string::npos);
  Cmd bad = icamctl(d, "kill abc");
  EXPECT_EQ(bad.status, 2);

  Cmd stop = icamctl(d, "daemon stop");
  EXPECT_EQ(stop.status, 0);
  Daemon* daemon = const_cast<Daemon*>(&d);
  EXPECT_EQ(daemon->wait_exit(30), 0);
  Cmd gone = icamctl(d, "ps");
  EXPECT_EQ(gone.status, 5);
  EXPECT_NE(gone.err.find("no daemon is running"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The process journal: restart after SIGKILL, checkpoints, a damaged journal.

json story_job(const std::string& name) {
  return {{"name", name},
          {"task", "tell a story"},
          {"sampling", {{"max_tokens", 600}, {"stop_tokens", json::array()}}},
          {"budgets", {{"tokens", 1000}}}};
}

// Polls proc.get until `done(record)` holds; the last record.
template <typename Done>
json poll(DaemonClient& c, uint64_t pid, Done done, double seconds = 120) {
  json record;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    auto g = c.call("proc.get", {{"pid", pid}});
    if (g.ok()) {
      record = (*g)["process"];
      if (done(record)) return record;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "process " << pid << " never got there; last record " << record.dump();
  return record;
}

TEST(DaemonJournal, AProcessKilledWithItsDaemonResumesAfterARestart) {
  Daemon first;
  ASSERT_TRUE(first.running());
  const fs::path home = first.dir();
  DaemonClient c = first.connect();
  // A job that exits before the kill, to be found again after the restart.
  const uint64_t whole = run(c, story_job("story"));
  ASSERT_TRUE(c.call("proc.wait", {{"pid", whole}}).ok());

  const uint64_t pid = run(c, story_job("story"));
  const json seen = poll(
      c, pid, [](const json& r) { return r["accounting"]["generated_tokens"].get<int>() >= 20; });
  first.kill_now();  // mid-run: no drain, no exit written
  EXPECT_NE(seen["state"], "exited");
  // What the journal committed before the kill, read with the daemon down.
  const std::string journal = " --journal " + (home / "journal.db").string();
  Cmd before = icamctl(first, "mem journal " + std::to_string(pid) + " --json" + journal);
  ASSERT_EQ(before.status, 0) << before.err;
  const json committed = json::parse(before.out)["tokens"];
  ASSERT_FALSE(committed.empty());

  {
    Daemon second({}, home);
    ASSERT_TRUE(second.running()) << second.log();
    // icamctl wait gives the process that went on where it stopped.
    Cmd waited = icamctl(second, "wait " + std::to_string(pid) + " --json");
    ASSERT_EQ(waited.status, 0) << waited.err << second.log();
    const json record = json::parse(waited.out);
    EXPECT_EQ(record["pid"], pid);
    EXPECT_EQ(record["exit"]["reason"], "completed");
    // Every token committed before the kill is still there, in order, and more followed. (The
    // continuation need not equal an uninterrupted run's token for token: the resumed context is
    // prefilled where the original decoded it, and the two paths sum in different orders.)
    Cmd after = icamctl(second, "mem journal " + std::to_string(pid) + " --json" + journal);
    ASSERT_EQ(after.status, 0) << after.err;
    const json resumed = json::parse(after.out)["tokens"];
    ASSERT_GT(resumed.size(), committed.size());
    EXPECT_TRUE(std::equal(committed.begin(), committed.end(), resumed.begin()));
    // The one that had exited before the kill still answers too, and new pids come after.
    Cmd old = icamctl(second, "wait " + std::to_string(whole));
    EXPECT_EQ(old.status, 0) << old.err;
    DaemonClient c2 = second.connect();
    EXPECT_EQ(run(c2, short_job()), pid + 1);
    EXPECT_NE(second.log().find("process " + std::to_string(pid) + " resumed from the journal"),
              std::string::npos)
        << second.log();
  }
  fs::remove_all(home);
}

TEST(DaemonJournal, CheckpointThenRestoreStartsANewProcessFromIt) {
  Daemon d;
  DaemonClient c = d.connect();
  const uint64_t pid = run(c, story_job("story"));
  poll(c, pid, [](const json& r) { return r["accounting"]["generated_tokens"].get<int>() >= 10; });
  Cmd cp = icamctl(d, "checkpoint " + std::to_string(pid) + " --label early");
  ASSERT_EQ(cp.status, 0) << cp.err;
  const std::string id = cp.out.substr(0, cp.out.find('\n'));
  EXPECT_NE(cp.err.find("'early'"), std::string::npos) << cp.err;
  ASSERT_TRUE(c.call("proc.wait", {{"pid", pid}}).ok());

  Cmd restored = icamctl(d, "restore " + id);
  ASSERT_EQ(restored.status, 0) << restored.err;
  const uint64_t copy = std::stoull(restored.out);
  EXPECT_NE(copy, pid);
  auto copied = c.call("proc.wait", {{"pid", copy}});
  ASSERT_TRUE(copied.ok());
  const json& b = (*copied)["process"];
  EXPECT_EQ(b["name"], "story");
  EXPECT_EQ(b["exit"]["reason"], "completed");
  // The copy's context begins with exactly the checkpointed tokens. (What it generates after
  // them need not repeat the original token for token: the copy prefills the prefix where the
  // original decoded it one token at a time, and the two paths sum in different orders, so a
  // near tie in the tiny model's random logits can go the other way.)
  const std::string journal = " --journal " + (d.dir() / "journal.db").string();
  Cmd jo = icamctl(d, "mem journal " + std::to_string(pid) + " --json" + journal);
  Cmd jc = icamctl(d, "mem journal " + std::to_string(copy) + " --json" + journal);
  ASSERT_EQ(jo.status, 0) << jo.err;
  ASSERT_EQ(jc.status, 0) << jc.err;
  const json orig = json::parse(jo.out), dup = json::parse(jc.out);
  ASSERT_FALSE(orig["checkpoints"].empty());
  const size_t at = orig["checkpoints"][0]["tokens"].get<size_t>();
  ASSERT_GE(dup["tokens"].size(), at);
  ASSERT_GE(orig["tokens"].size(), at);
  EXPECT_TRUE(std::equal(orig["tokens"].begin(), orig["tokens"].begin() + at,
                         dup["tokens"].begin()));

  Cmd by_label = icamctl(d, "restore " + std::to_string(pid) + " --label early");
  EXPECT_EQ(by_label.status, 0) << by_label.err;
  Cmd none = icamctl(d, "restore " + std::to_string(pid) + " --label nope");
  EXPECT_EQ(none.status, 4) << none.err;
  Cmd missing = icamctl(d, "checkpoint 999");
  EXPECT_EQ(missing.status, 4);
}

TEST(DaemonJournal, ADamagedJournalStopsTheDaemonAtStartup) {
  const fs::path home = fs::temp_directory_path() / ("icamd-bad-journal-" + std::to_string(getpid()));
  fs::remove_all(home);
  fs::create_directories(home);
  {
    std::ofstream out(home / "journal.db", std::ios::binary);
    out << std::string(8192, 'x');
  }
  Daemon::expect_start_ = false;
  {
    Daemon d({}, home);
    EXPECT_FALSE(d.running());
    const std::string log = d.log();
    EXPECT_NE(log.find("journal"), std::string::npos) << log;
    EXPECT_NE(log.find(home.string()), std::string::npos) << log;
  }
  Daemon::expect_start_ = true;
  // The status: icamd exits 1.
  const std::string cmd = "ICAM_HOME=" + home.string() + " " + ICAMD_PATH + " --socket " +
                          (home / "s.sock").string() + " --model " + model_file() +
                          " >/dev/null 2>&1";
  const int raw = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(raw), 1);
  fs::remove_all(home);
}

}  // namespace
}  // namespace icam
