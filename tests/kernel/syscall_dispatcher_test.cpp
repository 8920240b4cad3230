// The kernel's syscall path end to end, without a model: a SyscallDispatcher serving calls for
// processes with real capabilities, a real audit log on disk and the real fs, exec and kv drivers
// in the sandbox, on a temporary tree with a file outside the workspace and links pointing at it.
#include "kernel/syscall_dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "icam-dispatch-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = fs::canonical(pattern);
    ws_ = root_ / "ws";
    fs::create_directories(ws_ / "notes");
    fs::create_directories(root_ / "outside");
    std::ofstream(ws_ / "notes" / "hello.txt") << "hello from the workspace\n";
    std::ofstream(root_ / "outside" / "secret.txt") << "secret\n";
    // A link planted inside the workspace that leads out of it.
    fs::create_symlink(root_ / "outside" / "secret.txt", ws_ / "notes" / "innocent.txt");
    fs::create_symlink(root_ / "outside", ws_ / "out-link");
    audit_path_ = (root_ / "state" / "audit.db").string();
    DispatcherOptions options;
    options.audit_path = audit_path_;
    options.driver_dir = ICAM_DRIVER_DIR;
    options.workspace_root = (root_ / "workspaces").string();
    auto d = SyscallDispatcher::create(options);
    ASSERT_TRUE(d.ok()) << d.error().message();
    dispatcher_ = std::move(*d);
  }
  void TearDown() override {
    for (auto& [pid, p] : processes_) dispatcher_->on_exit(p);
    dispatcher_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // A process for `job` as the agent loop would make it.
  Process& spawn(const JobSpec& job) {
    Process& p = processes_[next_pid_];
    p.pid = next_pid_++;
    p.name = job.name;
    p.tools = job.tools;
    Status st = dispatcher_->on_spawn(p, job);
    EXPECT_TRUE(st.ok()) << st.error().message();
    return p;
  }
  JobSpec job(std::vector<std::string> capabilities, std::string workspace = "") {
    JobSpec j;
    j.name = "test";
    j.task = "t";
    j.tools = {"fs.read",  "fs.write", "fs.list", "fs.stat",  "fs.remove",
               "exec.run", "kv.get",   "kv.put",  "clock.now"};
    j.capabilities = std::move(capabilities);
    j.workspace = workspace.empty() ? ws_.string() : workspace;
    return j;
  }
  Result<std::string> call(Process& p, const std::string& name, const json& args) {
    return dispatcher_->call(p, name, args);
  }
  std::string ok(Process& p, const std::string& name, const json& args) {
    auto r = call(p, name, args);
    EXPECT_TRUE(r.ok()) << name << " " << args.dump() << ": " << r.error().message();
    return r.ok() ? *r : "";
  }
  Error denied(Process& p, const std::string& name, const json& args) {
    auto r = call(p, name, args);
    EXPECT_FALSE(r.ok()) << name << " " << args.dump() << " was allowed: " << *r;
    if (r.ok()) return Error(Errc::internal, "allowed");
    EXPECT_EQ(r.error().code(), Errc::permission_denied) << r.error().message();
    return std::move(r).error();
  }
  std::vector<audit::AuditRecord> records(audit::AuditFilter filter = {}) {
    auto log = dispatcher_->audit_log();
    EXPECT_TRUE(log.ok() && *log);
    auto r = (*log)->query(filter);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::vector<audit::AuditRecord>{};
  }

  fs::path root_, ws_;
  std::string audit_path_;
  std::unique_ptr<SyscallDispatcher> dispatcher_;
  std::map<Pid, Process> processes_;
  Pid next_pid_ = 1;
};

TEST_F(DispatcherTest, AllowedReadsAndWritesGoThroughTheSandboxedDriver) {
  Process& p = spawn(job({"fs.read:${workspace}/**", "fs.write:${workspace}/out/**"}));
  // ${workspace} was expanded to the canonical workspace.
  EXPECT_EQ(p.capabilities, (std::vector<std::string>{"fs.read:" + ws_.string() + "/**",
                                                      "fs.write:" + ws_.string() + "/out/**"}));
  EXPECT_EQ(dispatcher_->workspace(p.pid), ws_);

  EXPECT_EQ(ok(p, "fs.read", {{"path", "notes/hello.txt"}}), "hello from the workspace\n");
  EXPECT_EQ(dispatcher_->running_drivers(p.pid), 1u);  // started on first use
  const json written = json::parse(ok(p, "fs.write", {{"path", "out/a.txt"}, {"content", "hi"}}));
  EXPECT_EQ(written, json({{"path", "out/a.txt"}, {"bytes", 2}}));
  EXPECT_EQ(slurp(ws_ / "out" / "a.txt"), "hi");
  EXPECT_EQ(ok(p, "fs.read", {{"path", "./out/../out/a.txt"}}), "hi");
  const json listed = json::parse(ok(p, "fs.list", json::object()));  // the workspace itself
  EXPECT_EQ(listed["path"], ".");
  EXPECT_EQ(listed["entries"].size(), 3u);
  const json stat = json::parse(ok(p, "fs.stat", {{"path", "out/a.txt"}}));
  EXPECT_EQ(stat["size"], 2);
  EXPECT_EQ(dispatcher_->running_drivers(p.pid), 1u);  // the same warm driver served them all
}

TEST_F(DispatcherTest, ReadsOutsideTheWorkspaceAreDenied) {
  Process& p = spawn(job({"fs.read:${workspace}/**"}));
  const std::string secret = (root_ / "outside" / "secret.txt").string();
  EXPECT_THAT(denied(p, "fs.read", {{"path", "../outside/secret.txt"}}).message(),
              HasSubstr(secret));  // the message names the path it resolved to
  denied(p, "fs.read", {{"path", secret}});
  denied(p, "fs.read", {{"path", "notes/innocent.txt"}});   // a link out
  denied(p, "fs.read", {{"path", "out-link/secret.txt"}});  // a directory link out
  denied(p, "fs.read", {{"path", "/etc/passwd"}});
  denied(p, "fs.list", {{"path", ".."}});
  // Reading is not writing.
  EXPECT_THAT(denied(p, "fs.write", {{"path", "notes/x.txt"}, {"content", "x"}}).message(),
              HasSubstr("fs.write"));
  EXPECT_FALSE(fs::exists(ws_ / "notes" / "x.txt"));
  // Nothing was started for denied calls.
  EXPECT_EQ(dispatcher_->running_drivers(p.pid), 0u);
}

TEST_F(DispatcherTest, WithoutCapabilitiesEverythingButPureCallsIsDenied) {
  Process& p = spawn(job({}));
  EXPECT_TRUE(p.capabilities.empty());
  denied(p, "fs.read", {{"path", "notes/hello.txt"}});
  denied(p, "kv.get", {{"namespace", "n"}, {"key", "k"}});
  denied(p, "exec.run", {{"argv", {"/bin/echo", "hi"}}});
  const json now = json::parse(ok(p, "clock.now", json::object()));
  EXPECT_GT(now["unix_ms"].get<int64_t>(), 1'700'000'000'000);
  EXPECT_EQ(now["utc"].get<std::string>().size(), 24u);  // 2026-12-05T10:40:53.123Z
}

TEST_F(DispatcherTest, EveryCallIsAuditedAndTheChainVerifies) {
  Process& p = spawn(job({"fs.read:${workspace}/notes/**"}));
  ok(p, "fs.read", {{"path", "notes/hello.txt"}});
  denied(p, "fs.read", {{"path", "notes/innocent.txt"}});
  auto failed = call(p, "fs.read", {{"path", "notes/missing.txt"}});  // allowed, then fails
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.error().message(), HasSubstr("missing.txt"));

  const auto all = records();
  ASSERT_EQ(all.size(), 6u);  // three intents, three completions
  // Allowed: the intent names the capability used, before its completion.
  EXPECT_EQ(all[0].kind, audit::RecordKind::intent);
  EXPECT_EQ(all[0].pid, p.pid);
  EXPECT_EQ(all[0].syscall, "fs.read");
  EXPECT_EQ(json::parse(all[0].args), json({{"path", "notes/hello.txt"}}));
  EXPECT_EQ(all[0].capability, "fs.read:" + ws_.string() + "/notes/**");
  EXPECT_EQ(all[0].decision, audit::Decision::allow);
  EXPECT_EQ(all[0].side_effect, audit::SideEffect::none);
  EXPECT_EQ(all[1].kind, audit::RecordKind::completion);
  EXPECT_EQ(all[1].intent_id, all[0].id);
  EXPECT_EQ(all[1].status, audit::CompletionStatus::ok);
  EXPECT_EQ(all[1].result_digest, audit::result_digest("hello from the workspace\n"));
  // Denied: still written, intent then completion, with no capability.
  EXPECT_EQ(all[2].decision, audit::Decision::deny);
  EXPECT_EQ(all[2].capability, "");
  EXPECT_EQ(all[3].status, audit::CompletionStatus::denied);
  EXPECT_EQ(all[3].intent_id, all[2].id);
  // The driver's failure is an error completion.
  EXPECT_EQ(all[4].decision, audit::Decision::allow);
  EXPECT_EQ(all[5].status, audit::CompletionStatus::error);

  audit::AuditFilter only_denied;
  only_denied.decision = audit::Decision::deny;
  EXPECT_EQ(records(only_denied).size(), 2u);
  auto log = dispatcher_->audit_log();
  auto verified = (*log)->verify();
  ASSERT_TRUE(verified.ok()) << verified.error().message();
  EXPECT_EQ(verified->records, 6);
}

TEST_F(DispatcherTest, MalformedArgumentsAreRefusedBeforeTheSyscall) {
  Process& p = spawn(job({"fs.read:${workspace}/**"}));
  auto r = call(p, "fs.read", {{"path", 7}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "fs.read: /arguments/path: expected a string");
  r = call(p, "fs.read", {{"path", "a"}, {"mode", "r"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "fs.read: /arguments: unknown argument 'mode' (allowed: path)");
  r = call(p, "fs.chmod", {{"path", "a"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "unknown tool 'fs.chmod'");
  EXPECT_TRUE(records().empty());  // no syscall was attempted
}

TEST_F(DispatcherTest, ExecRunsOnlyTheGrantedProgram) {
  Process& p = spawn(job({"exec:/bin/echo"}));
  const json out = json::parse(ok(p, "exec.run", {{"argv", {"/bin/echo", "hi"}}}));
  EXPECT_EQ(out["stdout"], "hi\n");
  EXPECT_EQ(out["exit_code"], 0);
  denied(p, "exec.run", {{"argv", {"/bin/cat", "/etc/hostname"}}});
  EXPECT_THAT(denied(p, "exec.run", {{"argv", {"echo", "hi"}}}).message(),
              HasSubstr("absolute path"));
  const auto all = records();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].side_effect, audit::SideEffect::irreversible);
}

TEST_F(DispatcherTest, KeyValueNamespacesAreCapabilities) {
  Process& p = spawn(job({"kv:notes"}));
  EXPECT_EQ(json::parse(ok(p, "kv.put", {{"namespace", "notes"}, {"key", "k"}, {"value", "v1"}})),
            json({{"namespace", "notes"}, {"key", "k"}, {"stored", true}}));
  EXPECT_EQ(json::parse(ok(p, "kv.get", {{"namespace", "notes"}, {"key", "k"}})),
            json({{"namespace", "notes"}, {"key", "k"}, {"value", "v1"}}));
  denied(p, "kv.get", {{"namespace", "other"}, {"key", "k"}});
  denied(p, "kv.get", {{"namespace", "notes:k"}, {"key", "x"}});  // not a name
  auto missing = call(p, "kv.get", {{"namespace", "notes"}, {"key", "nope"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message(), HasSubstr("nope"));
}

TEST_F(DispatcherTest, ExitStopsDriversAndRevokesCapabilities) {
  Process& p = spawn(job({"fs.read:${workspace}/**"}));
  ok(p, "fs.read", {{"path", "notes/hello.txt"}});
  EXPECT_EQ(dispatcher_->running_drivers(p.pid), 1u);
  dispatcher_->on_exit(p);
  EXPECT_EQ(dispatcher_->running_drivers(p.pid), 0u);
  for (const auto& t : dispatcher_->capabilities().tokens_of(p.pid)) EXPECT_TRUE(t.revoked);
  auto after = call(p, "fs.read", {{"path", "notes/hello.txt"}});
  ASSERT_FALSE(after.ok());
  processes_.erase(p.pid);
}

TEST_F(DispatcherTest, DefaultWorkspaceIsFreshPerProcess) {
  JobSpec a = job({"fs.write:${workspace}/**", "fs.read:${workspace}/**"}, "");
  a.workspace.clear();
  Process& p1 = spawn(a);
  Process& p2 = spawn(a);
  const fs::path w1 = dispatcher_->workspace(p1.pid), w2 = dispatcher_->workspace(p2.pid);
  EXPECT_TRUE(fs::is_directory(w1));
  EXPECT_NE(w1, w2);
  EXPECT_EQ(w1.parent_path(), fs::canonical(root_ / "workspaces"));
  ok(p1, "fs.write", {{"path", "mine.txt"}, {"content", "1"}});
  EXPECT_EQ(slurp(w1 / "mine.txt"), "1");
  // One process's workspace is outside the other's capabilities.
  denied(p2, "fs.read", {{"path", (w1 / "mine.txt").string()}});
}

TEST(DriverDir, DefaultIsTheBuildsDriversBesideTheExecutable) {
  // This test runs from build/tests/kernel/; the drivers are in build/drivers/tools/.
  EXPECT_EQ(fs::canonical(default_driver_dir()), fs::canonical(ICAM_DRIVER_DIR));
}

TEST_F(DispatcherTest, BadCapabilitiesRefuseTheSpawn) {
  JobSpec j = job({"fs.read:${workspace}/**", "fs.read:relative/**"});
  Process p;
  p.pid = 99;
  Status st = dispatcher_->on_spawn(p, j);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message(), HasSubstr("capabilities/1"));
  EXPECT_EQ(dispatcher_->workspace(99), fs::path());
  for (const auto& t : dispatcher_->capabilities().tokens_of(99)) EXPECT_TRUE(t.revoked);
  // A default workspace made for the refused process is removed again.
  j.workspace.clear();
  st = dispatcher_->on_spawn(p, j);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(fs::is_empty(root_ / "workspaces"));
}


// The kernel-served calls that may block, through start() as the agent loop calls them, with the
// loop's real completion queue (no process table: they need none).
TEST_F(DispatcherTest, MessagesGoThroughBoundedMailboxes) {
  auto queue = std::make_shared<CompletionQueue>();
  dispatcher_->attach(queue, nullptr);
  JobSpec sender_job = job({"msg:pid/2"});
  sender_job.tools = {"msg.send", "msg.recv"};
  Process& sender = spawn(sender_job);
  JobSpec receiver_job = job({});
  receiver_job.tools = {"msg.send", "msg.recv"};
  Process& receiver = spawn(receiver_job);
  ASSERT_EQ(receiver.pid, 2u);
  auto result = [](CallStart started) {
    EXPECT_TRUE(std::holds_alternative<Result<std::string>>(started));
    return std::holds_alternative<Result<std::string>>(started)
               ? std::get<Result<std::string>>(std::move(started))
               : Result<std::string>(make_error(Errc::internal, "pending"));
  };

  // The receiver has no msg capability: it may receive, not send.
  auto refused = result(dispatcher_->start(receiver, "msg.send", {{"to", 1}, {"body", "x"}}));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Errc::permission_denied);
  EXPECT_THAT(refused.error().message(), HasSubstr("msg pid/1"));

  // A round trip through the mailbox: queued, then taken at once.
  auto sent = result(dispatcher_->start(sender, "msg.send", {{"to", 2}, {"body", "first"}}));
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  EXPECT_EQ(json::parse(*sent), (json{{"to", 2}, {"queued", 1}}));
  auto got = result(dispatcher_->start(receiver, "msg.recv", json::object()));
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(json::parse(*got), (json{{"from", 1}, {"body", "first"}, {"id", 1}}));

  // An empty mailbox blocks the receiver; the next message completes its call.
  CallStart waiting = dispatcher_->start(receiver, "msg.recv", {{"timeout_ms", 60000}});
  ASSERT_TRUE(std::holds_alternative<PendingCall>(waiting));
  EXPECT_EQ(std::get<PendingCall>(waiting).waiting_on, "msg.recv");
  EXPECT_TRUE(queue->empty());
  ASSERT_TRUE(result(dispatcher_->start(sender, "msg.send", {{"to", 2}, {"body", "second"}})).ok());
  std::vector<Completion> done = queue->drain();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].pid, 2u);
  EXPECT_EQ(done[0].ticket, std::get<PendingCall>(waiting).ticket);
  ASSERT_TRUE(done[0].result.ok());
  EXPECT_EQ(json::parse(*done[0].result), (json{{"from", 1}, {"body", "second"}, {"id", 2}}));

  // Full: at most kMailboxMessages waiting messages, then a clear error.
  for (size_t i = 0; i < kMailboxMessages; ++i)
    ASSERT_TRUE(result(dispatcher_->start(sender, "msg.send", {{"to", 2}, {"body", "m"}})).ok());
  auto full = result(dispatcher_->start(sender, "msg.send", {{"to", 2}, {"body", "m"}}));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), Errc::resource_exhausted);
  EXPECT_THAT(full.error().message(), HasSubstr("mailbox of process 2 is full"));
  // A process that is not there (or another user's) cannot be sent to.
  JobSpec any = job({"msg:*"});
  any.tools = {"msg.send"};
  Process& broadcaster = spawn(any);
  auto nobody = result(dispatcher_->start(broadcaster, "msg.send", {{"to", 99}, {"body", "x"}}));
  EXPECT_EQ(nobody.error().code(), Errc::not_found);
  // Every call was audited, the blocked one with its completion when it completed.
  EXPECT_EQ(records({.syscall = "msg.recv"}).size(), 4u);
}

TEST_F(DispatcherTest, HumanAskFailsAtOnceWhenNobodyCanAnswer) {
  dispatcher_->attach(std::make_shared<CompletionQueue>(), nullptr);
  JobSpec j = job({"tool:human.ask"});
  j.tools = {"human.ask"};
  Process& p = spawn(j);
  CallStart started = dispatcher_->start(p, "human.ask", {{"question", "ok?"}});
  ASSERT_TRUE(std::holds_alternative<Result<std::string>>(started));
  const auto& r = std::get<Result<std::string>>(started);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::unavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("icamctl approve"));
  // Without tool:human.ask it is denied, as any call without its capability.
  Process& q = spawn(job({}));
  CallStart denied_call = dispatcher_->start(q, "human.ask", {{"question", "ok?"}});
  EXPECT_EQ(std::get<Result<std::string>>(denied_call).error().code(), Errc::permission_denied);
  // call() never blocks: the waiting syscalls are refused there.
  EXPECT_EQ(call(p, "proc.wait", {{"pid", 1}}).error().code(), Errc::unsupported);
}


TEST_F(DispatcherTest, WaitingCallsTimeOutOnTheKernelsTick) {
  auto queue = std::make_shared<CompletionQueue>();
  dispatcher_->attach(queue, nullptr);
  JobSpec j = job({});
  j.tools = {"msg.recv", "proc.wait"};
  Process& p = spawn(j);
  const auto now = std::chrono::steady_clock::now();
  CallStart waiting = dispatcher_->start(p, "msg.recv", {{"timeout_ms", 600000}});
  ASSERT_TRUE(std::holds_alternative<PendingCall>(waiting));
  dispatcher_->tick(now);  // not due yet
  EXPECT_TRUE(queue->empty());
  dispatcher_->tick(now + std::chrono::seconds(601));
  std::vector<Completion> done = queue->drain();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].ticket, std::get<PendingCall>(waiting).ticket);
  ASSERT_FALSE(done[0].result.ok());
  EXPECT_EQ(done[0].result.error().code(), Errc::timed_out);
  EXPECT_EQ(done[0].result.error().message(), "msg.recv: no message before the timeout");
  // Only one's own children can be waited for.
  CallStart stranger = dispatcher_->start(p, "proc.wait", {{"pid", 7}});
  ASSERT_TRUE(std::holds_alternative<Result<std::string>>(stranger));
  EXPECT_EQ(std::get<Result<std::string>>(stranger).error().code(), Errc::not_found);
  // The timed-out call's completion is on record.
  const auto recs = records({.syscall = "msg.recv"});
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].status, audit::CompletionStatus::error);
}

}  // namespace
}  // namespace icam::kernel
