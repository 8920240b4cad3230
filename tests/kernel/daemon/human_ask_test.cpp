// human.ask through the daemon: a process asks, `icamctl ps` shows it blocked on the question,
// and a person answers with `icamctl approve` / `icamctl deny` (or the proc.approve / proc.deny
// methods). The daemon (Server, engine thread, kernel, dispatcher, audit log) and icamctl are the
// real ones; the daemon runs in this test process so that what the tiny model writes can be
// scripted (KernelOptions::events_tap, tests/kernel/scripted_events.h).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "kernel/client/daemon_client.h"
#include "kernel/daemon/server.h"
#include "kernel/kernel.h"
#include "tests/drivers/llm/engine/tiny_model.h"
#include "tests/kernel/scripted_events.h"

namespace icam {
namespace {

namespace fs = std::filesystem;
using client::DaemonClient;
using kernel::testing::tool_call;
using nlohmann::json;

class InProcessDaemon {
 public:
  explicit InProcessDaemon(kernel::testing::Scripts scripts) {
    std::string pattern = (fs::temp_directory_path() / "icamd-ask-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return;
    dir_ = pattern;
    socket_ = (dir_ / "run" / "icamd.sock").string();
    llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
    spec.context_length = 4096;
    kernel::KernelOptions o;
    o.model_path = llm::testing::tiny_model_file(spec);
    o.threads = 1;
    o.kv_pool_bytes = 16u << 20;
    o.audit_path = (dir_ / "audit.db").string();
    o.workspace_root = (dir_ / "workspaces").string();
    o.human_answers = true;  // as icamd sets it
    o.events_tap = kernel::testing::ScriptedEvents::tap(std::move(scripts));
    auto k = kernel::Kernel::create(o);
    if (!k.ok()) {
      ADD_FAILURE() << k.error().message();
      return;
    }
    daemon::ServerOptions so;
    so.socket_path = socket_;
    so.drain_seconds = 1;
    auto server = daemon::Server::create(so, std::move(*k));
    if (!server.ok()) {
      ADD_FAILURE() << server.error().message();
      return;
    }
    server_ = std::move(*server);
    thread_ = std::thread([this] { (void)server_->run(); });
  }
  ~InProcessDaemon() {
    if (server_) server_->request_shutdown();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }
  bool ok() const { return server_ != nullptr; }
  const std::string& socket() const { return socket_; }
  DaemonClient connect() const {
    auto c = DaemonClient::connect(socket_);
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(*c);
  }

 private:
  fs::path dir_;
  std::string socket_;
  std::unique_ptr<daemon::Server> server_;
  std::thread thread_;
};

struct Cmd {
  int status = -1;
  std::string out;
  std::string err;
};

Cmd icamctl(const InProcessDaemon& d, const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("icamctl-ask-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string cmd = "ICAM_SOCKET=" + d.socket() + " " + ICAMCTL_PATH + " " + args + " >" +
                          (dir / "out").string() + " 2>" + (dir / "err").string() + " </dev/null";
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

json asker_job(const std::string& name) {
  return {{"name", name},
          {"task", "ask first"},
          {"sampling", {{"max_tokens", 2}}},
          {"tools", {"human.ask"}},
          {"capabilities", {"tool:human.ask"}}};
}

// Polls the process's record until it is blocked on a question (the engine publishes records a
// few times a second); the record, or null.
json wait_blocked(DaemonClient& c, uint64_t pid) {
  for (int i = 0; i < 1500; ++i) {
    auto r = c.call("proc.get", {{"pid", pid}});
    if (!r.ok()) return nullptr;
    const json& p = (*r)["process"];
    if (p["state"] == "blocked" && p.contains("blocked_on")) return p;
    if (p["state"] == "exited") return nullptr;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return nullptr;
}

TEST(DaemonHumanAsk, ApproveAndDenyAnswerTheQuestionAndTheProcessGoesOn) {
  InProcessDaemon d({{"yes", {tool_call("human.ask", {{"question", "May I deploy?"}}),
                              tool_call("proc.exit", {{"answer", "deployed"}})}},
                     {"no", {tool_call("human.ask", {{"question", "May I delete it all?"}}),
                             tool_call("proc.exit", {{"answer", "kept"}})}}});
  ASSERT_TRUE(d.ok());
  DaemonClient c = d.connect();
  auto yes = c.call("proc.run", {{"job", asker_job("yes")}});
  auto no = c.call("proc.run", {{"job", asker_job("no")}});
  ASSERT_TRUE(yes.ok() && no.ok());
  const uint64_t yes_pid = (*yes)["pid"], no_pid = (*no)["pid"];

  const json blocked = wait_blocked(c, yes_pid);
  ASSERT_FALSE(blocked.is_null());
  EXPECT_EQ(blocked["blocked_on"], "human.ask: May I deploy?");
  ASSERT_FALSE(wait_blocked(c, no_pid).is_null());

  // icamctl ps shows both questions.
  Cmd ps = icamctl(d, "ps");
  ASSERT_EQ(ps.status, 0) << ps.err;
  EXPECT_NE(ps.out.find("blocked"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("on human.ask: May I deploy?"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("on human.ask: May I delete it all?"), std::string::npos) << ps.out;

  Cmd approve = icamctl(d, "approve " + std::to_string(yes_pid) + " --answer 'go ahead'");
  EXPECT_EQ(approve.status, 0) << approve.err;
  EXPECT_EQ(approve.out, "approved " + std::to_string(yes_pid) + "\n");
  auto waited = c.call("proc.wait", {{"pid", yes_pid}, {"timeout_s", 60}});
  ASSERT_TRUE(waited.ok()) << waited.error().message();
  EXPECT_EQ((*waited)["process"]["exit"]["answer"], "deployed");
  EXPECT_EQ((*waited)["process"]["accounting"]["turns"], 2);
  // Answering again: it is not waiting any more (it has exited).
  Cmd again = icamctl(d, "approve " + std::to_string(yes_pid));
  EXPECT_NE(again.status, 0);

  // Through the API: deny with a reason.
  auto denied = c.call("proc.deny", {{"pid", no_pid}, {"reason", "too risky"}});
  ASSERT_TRUE(denied.ok()) << denied.error().message();
  EXPECT_EQ(*denied, (json{{"pid", no_pid}, {"approved", false}}));
  waited = c.call("proc.wait", {{"pid", no_pid}, {"timeout_s", 60}});
  ASSERT_TRUE(waited.ok()) << waited.error().message();
  EXPECT_EQ((*waited)["process"]["exit"]["answer"], "kept");

  // Errors: a process that asks nothing, an unknown one, a bad parameter.
  auto idle = c.call("proc.run", {{"job", {{"name", "idle"},
                                           {"task", "go on for a long time"},
                                           {"sampling", {{"max_tokens", 100000}}},
                                           {"budgets", {{"tokens", 100000}}}}}});
  ASSERT_TRUE(idle.ok());
  auto not_asking = c.call("proc.approve", {{"pid", (*idle)["pid"]}});
  ASSERT_FALSE(not_asking.ok());
  EXPECT_EQ(not_asking.error().code(), Errc::not_found);
  EXPECT_NE(not_asking.error().message().find("not waiting for an answer"), std::string::npos);
  EXPECT_EQ(icamctl(d, "deny 999").status, 4);  // no such process
  auto bad = c.call("proc.approve", {{"pid", yes_pid}, {"answer", 3}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
  (void)c.call("proc.kill", {{"pid", (*idle)["pid"]}});  // it may have finished already
}

TEST(DaemonHumanAsk, KillingAProcessThatWaitsForAnAnswer) {
  InProcessDaemon d({{"asker", {tool_call("human.ask", {{"question", "Still there?"}})}}});
  ASSERT_TRUE(d.ok());
  DaemonClient c = d.connect();
  auto run = c.call("proc.run", {{"job", asker_job("asker")}});
  ASSERT_TRUE(run.ok());
  const uint64_t pid = (*run)["pid"];
  ASSERT_FALSE(wait_blocked(c, pid).is_null());
  Cmd killed = icamctl(d, "kill " + std::to_string(pid));
  EXPECT_EQ(killed.status, 0) << killed.err;
  auto waited = c.call("proc.wait", {{"pid", pid}, {"timeout_s", 60}});
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ((*waited)["process"]["exit"]["reason"], "cancelled");
  EXPECT_FALSE((*waited)["process"].contains("blocked_on"));
  // The question went with it.
  auto late = c.call("proc.approve", {{"pid", pid}});
  ASSERT_FALSE(late.ok());
}


TEST(DaemonHumanAsk, ADrainCancelsAProcessStillWaitingForAnAnswer) {
  InProcessDaemon d({{"asker", {tool_call("human.ask", {{"question", "Anyone?"}})}}});
  ASSERT_TRUE(d.ok());
  DaemonClient c = d.connect();
  auto run = c.call("proc.run", {{"job", asker_job("asker")}});
  ASSERT_TRUE(run.ok());
  const uint64_t pid = (*run)["pid"];
  ASSERT_FALSE(wait_blocked(c, pid).is_null());
  // As SIGTERM: the process gets the drain period (1 s here) to finish, then is cancelled.
  ASSERT_TRUE(c.call("daemon.shutdown").ok());
  auto waited = c.call("proc.wait", {{"pid", pid}});
  ASSERT_TRUE(waited.ok()) << waited.error().message();
  EXPECT_EQ((*waited)["process"]["exit"]["reason"], "cancelled");
}

}  // namespace
}  // namespace icam
