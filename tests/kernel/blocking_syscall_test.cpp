// Blocking syscalls on the real kernel (tiny generated model, the kernel's own dispatcher, real
// sandboxed drivers and audit log): a process blocked on a driver call or a kernel event does not
// stall the others, is resumed with the result, and can be killed while blocked; processes spawn,
// wait for and kill their children, send each other messages and ask a person. What the model
// writes is scripted (scripted_events.h); everything else is the real path.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "kernel/kernel.h"
#include "tests/drivers/llm/engine/tiny_model.h"
#include "tests/kernel/scripted_events.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Scripts;
using testing::ScriptedEvents;
using testing::tool_call;

// A kernel whose scripted processes say what their script says, in a temporary directory that
// holds its workspaces and audit log. `transcript(name)` is the last context of that process seen
// at a scripted turn (prompt, its calls and the tool messages it was given), as text.
class Rig {
 public:
  explicit Rig(Scripts scripts) {
    std::string pattern = (fs::temp_directory_path() / "icam-block-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return;
    root_ = fs::canonical(pattern);
    llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
    spec.context_length = 4096;  // tool instructions and messages are long in byte tokens
    KernelOptions o;
    o.model_path = llm::testing::tiny_model_file(spec);
    o.threads = 1;
    o.kv_pool_bytes = 16u << 20;
    o.audit_path = (root_ / "audit.db").string();
    o.driver_dir = ICAM_DRIVER_DIR;
    o.workspace_root = (root_ / "workspaces").string();
    o.human_answers = true;
    o.events_tap = [this, scripts = std::move(scripts)](AgentLoop& loop) {
      auto events = std::make_unique<Recording>(loop, scripts, *this);
      return std::unique_ptr<sched::SchedulerEvents>(std::move(events));
    };
    auto k = Kernel::create(o);
    if (k.ok()) kernel_ = std::move(*k);
    else ADD_FAILURE() << k.error().message();
  }
  ~Rig() {
    kernel_.reset();  // stops drivers and closes the log before their directory goes
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
  }

  Kernel& k() { return *kernel_; }
  bool ok() const { return kernel_ != nullptr; }
  const fs::path& root() const { return root_; }

  Pid spawn(JobSpec job) {
    auto pid = kernel_->spawn(job);
    EXPECT_TRUE(pid.ok()) << pid.error().message();
    return pid.ok() ? *pid : 0;
  }
  const Process& p(Pid pid) { return *kernel_->process(pid); }

  // Steps (waiting for completions when every live process is blocked) until `done` holds;
  // false if it never did within `max_steps` steps.
  template <typename Done>
  bool run_until(Done done, int max_steps = 20000) {
    for (int i = 0; i < max_steps; ++i) {
      if (done()) return true;
      Status st = kernel_->step();
      EXPECT_TRUE(st.ok()) << st.error().message();
      if (!kernel_->has_work() && kernel_->blocked_processes() > 0)
        kernel_->wait_for_completion(std::chrono::milliseconds(100));
    }
    return done();
  }
  bool run_until_exit(Pid pid) {
    return run_until([&] { return p(pid).exit.has_value(); });
  }

  std::string transcript(const std::string& name) { return transcripts_[name]; }

  std::vector<audit::AuditRecord> audit(const std::string& syscall) {
    auto log = kernel_->dispatcher()->audit_log();
    EXPECT_TRUE(log.ok() && *log);
    audit::AuditFilter filter;
    filter.syscall = syscall;
    auto r = (*log)->query(filter);
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE((*log)->verify().ok());
    return r.ok() ? *r : std::vector<audit::AuditRecord>{};
  }

 private:
  // The scripted events, also keeping each scripted process's context as text.
  class Recording : public ScriptedEvents {
   public:
    Recording(AgentLoop& loop, Scripts scripts, Rig& rig)
        : ScriptedEvents(loop, std::move(scripts)), loop_(loop), rig_(rig) {}
    void on_pause(sched::SequenceId id, sched::FinishReason reason) override {
      if (const Process* p = loop_.process(loop_.pid_of(id)); p && rig_.kernel_) {
        auto tokens = rig_.kernel_->scheduler().context(id);
        if (tokens.ok()) rig_.transcripts_[p->name] = rig_.kernel_->model().tokenizer().decode(*tokens);
      }
      ScriptedEvents::on_pause(id, reason);
    }

   private:
    AgentLoop& loop_;
    Rig& rig_;
  };

  fs::path root_;
  std::unique_ptr<Kernel> kernel_;
  std::map<std::string, std::string> transcripts_;
};

JobSpec scripted_job(std::string name, std::vector<std::string> tools,
                     std::vector<std::string> capabilities) {
  JobSpec job;
  job.name = std::move(name);
  job.task = "do it";
  job.sampling.max_tokens = 2;  // each scripted line follows two sampled tokens
  job.budgets.tokens = 2000;
  job.tools = std::move(tools);
  job.capabilities = std::move(capabilities);
  return job;
}

// A process with no script that keeps generating: the one whose progress shows the engine steps
// on while another is blocked.
JobSpec talker_job() {
  JobSpec job;
  job.name = "talker";
  job.task = "go on for a long time";
  job.sampling.max_tokens = 100000;
  job.sampling.stop_tokens = {};
  job.budgets.tokens = 100000;
  return job;
}

// Runs until a file named "go" appears in the workspace, so the test decides when the call ends.
json wait_for_go_call() {
  return {{"argv", {"/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.01; done; echo released"}},
          {"timeout_ms", 20000}};
}

TEST(BlockingSyscallTest, ADriverCallBlocksOnlyItsProcess) {
  Rig rig({{"waiter",
            {tool_call("exec.run", wait_for_go_call()),
             tool_call("proc.exit", {{"answer", "released"}})}}});
  ASSERT_TRUE(rig.ok());
  const Pid waiter = rig.spawn(scripted_job("waiter", {"exec.run"}, {"exec:/bin/sh"}));
  const Pid talker = rig.spawn(talker_job());
  ASSERT_TRUE(waiter && talker);

  // Block the waiter on its driver call, then let the talker generate while it stays blocked.
  ASSERT_TRUE(rig.run_until([&] { return rig.p(waiter).blocked_on == "exec.run"; }));
  EXPECT_EQ(rig.p(waiter).state, ProcessState::blocked);
  EXPECT_EQ(to_json(rig.p(waiter))["blocked_on"], "exec.run");
  const int64_t before = rig.p(talker).accounting.generated_tokens;
  ASSERT_TRUE(rig.run_until([&] { return rig.p(talker).accounting.generated_tokens >= before + 16; }))
      << "the talker did not advance while the waiter was blocked";
  // The waiter has not moved meanwhile: the call has not returned (its program waits for "go").
  EXPECT_EQ(rig.p(waiter).state, ProcessState::blocked);
  EXPECT_FALSE(rig.p(talker).exit.has_value());

  const fs::path ws = rig.k().dispatcher()->workspace(waiter);
  std::ofstream(ws / "go") << "";
  ASSERT_TRUE(rig.run_until_exit(waiter));
  EXPECT_EQ(rig.p(waiter).exit->reason, ExitReason::completed);
  EXPECT_EQ(rig.p(waiter).exit->answer, "released");
  EXPECT_NE(rig.transcript("waiter").find("released"), std::string::npos);
  EXPECT_EQ(rig.p(waiter).accounting.turns, 2);
  ASSERT_TRUE(rig.k().cancel(talker).ok());

  // One intent, one completion (ok), as for a synchronous call.
  const auto records = rig.audit("exec.run");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].decision, audit::Decision::allow);
  EXPECT_EQ(records[1].status, audit::CompletionStatus::ok);
  EXPECT_EQ(rig.k().dispatcher()->running_drivers(waiter), 0u);
}

TEST(BlockingSyscallTest, KillingABlockedProcessStopsItsCallAndDropsTheLateCompletion) {
  Rig rig({{"waiter", {tool_call("exec.run", wait_for_go_call())}}});
  ASSERT_TRUE(rig.ok());
  const Pid waiter = rig.spawn(scripted_job("waiter", {"exec.run"}, {"exec:/bin/sh"}));
  ASSERT_TRUE(rig.run_until([&] { return rig.p(waiter).blocked_on == "exec.run"; }));

  // Nobody creates "go": only the kill ends the call. The driver is killed and its worker
  // joined before cancel() returns; the worker's completion arrives for a process that is gone.
  ASSERT_TRUE(rig.k().cancel(waiter).ok());
  EXPECT_EQ(rig.p(waiter).exit->reason, ExitReason::cancelled);
  EXPECT_TRUE(rig.p(waiter).blocked_on.empty());
  EXPECT_EQ(rig.k().dispatcher()->running_drivers(waiter), 0u);
  ASSERT_TRUE(rig.k().step().ok());
  EXPECT_EQ(rig.k().dropped_completions(), 1u);
  EXPECT_EQ(rig.k().blocked_processes(), 0u);
  // The call's outcome is on record: an error completion, no dangling intent.
  const auto records = rig.audit("exec.run");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].status, audit::CompletionStatus::error);
}

TEST(BlockingSyscallTest, HumanAskWaitsForAPersonToApproveOrDeny) {
  Rig rig({{"asker",
            {tool_call("human.ask", {{"question", "May I delete build/?"}}),
             tool_call("human.ask", {{"question", "And the logs?"}}),
             tool_call("proc.exit", {{"answer", "done"}})}}});
  ASSERT_TRUE(rig.ok());
  const Pid asker = rig.spawn(scripted_job("asker", {"human.ask"}, {"tool:human.ask"}));
  const Pid talker = rig.spawn(talker_job());
  // Not waiting for anything yet.
  EXPECT_EQ(rig.k().answer_human(asker, true, "early").error().code(), Errc::not_found);

  ASSERT_TRUE(rig.run_until([&] { return !rig.k().pending_question(asker).empty(); }));
  EXPECT_EQ(rig.k().pending_question(asker), "May I delete build/?");
  EXPECT_EQ(rig.p(asker).blocked_on, "human.ask: May I delete build/?");
  // It stays blocked however long the others run, until someone answers.
  const int64_t before = rig.p(talker).accounting.generated_tokens;
  ASSERT_TRUE(rig.run_until([&] { return rig.p(talker).accounting.generated_tokens >= before + 8; }));
  EXPECT_EQ(rig.p(asker).state, ProcessState::blocked);
  ASSERT_TRUE(rig.k().answer_human(asker, true, "go ahead").ok());
  EXPECT_FALSE(rig.k().answer_human(asker, true, "twice").ok());  // answered already

  ASSERT_TRUE(rig.run_until([&] { return rig.k().pending_question(asker) == "And the logs?"; }));
  ASSERT_TRUE(rig.k().answer_human(asker, false, "keep them").ok());
  ASSERT_TRUE(rig.run_until_exit(asker));
  EXPECT_EQ(rig.p(asker).exit->answer, "done");
  const std::string t = rig.transcript("asker");
  EXPECT_NE(t.find(R"({"answer":"go ahead","approved":true})"), std::string::npos) << t;
  EXPECT_NE(t.find(R"({"answer":"keep them","approved":false})"), std::string::npos) << t;
  ASSERT_TRUE(rig.k().cancel(talker).ok());

  const auto records = rig.audit("human.ask");
  ASSERT_EQ(records.size(), 4u);  // two intents, two completions written when answered
  EXPECT_EQ(records[1].status, audit::CompletionStatus::ok);
  EXPECT_EQ(records[3].status, audit::CompletionStatus::ok);
}

TEST(BlockingSyscallTest, ChildrenAreAttenuatedLimitedWaitedForAndMessaged) {
  const std::vector<std::string> parent_tools = {"proc.spawn", "proc.wait", "proc.kill",
                                                 "msg.send", "msg.recv", "fs.read"};
  Rig rig({
      {"parent",
       {
           // More than the parent holds: refused, and no process is created.
           tool_call("proc.spawn",
                     {{"name", "greedy"}, {"task", "t"}, {"capabilities", {"fs.write:/**"}}}),
           tool_call("proc.spawn", {{"name", "child"},
                                    {"task", "t"},
                                    {"tools", {"msg.recv"}},
                                    {"capabilities", {"fs.read:${workspace}/sub/**"}}}),
           // spawn:1 and the child is alive (waiting for a message).
           tool_call("proc.spawn", {{"name", "second"}, {"task", "t"}}),
           tool_call("msg.send", {{"to", 3}, {"body", "hello child"}}),
           tool_call("proc.wait", {{"pid", 3}}),
           tool_call("proc.kill", {{"pid", 2}}),  // not a descendant
           tool_call("proc.exit", {{"answer", "parent done"}}),
       }},
      {"child",
       {tool_call("msg.recv", {{"timeout_ms", 60000}}),
        tool_call("proc.exit", {{"answer", "child got it"}})}},
  });
  ASSERT_TRUE(rig.ok());
  const Pid parent = rig.spawn(scripted_job("parent", parent_tools,
                                            {"spawn:1", "msg:children", "fs.read:${workspace}/**"}));
  const Pid bystander = rig.spawn(talker_job());
  ASSERT_EQ(parent, 1u);
  ASSERT_EQ(bystander, 2u);
  ASSERT_TRUE(rig.run_until_exit(parent));
  EXPECT_EQ(rig.p(parent).exit->answer, "parent done");

  const Process* child = rig.k().process(3);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->name, "child");
  EXPECT_EQ(child->parent, parent);
  ASSERT_TRUE(child->exit.has_value());
  EXPECT_EQ(child->exit->answer, "child got it");
  // Derived from the parent's, in its workspace.
  ASSERT_EQ(child->capabilities.size(), 1u);
  EXPECT_EQ(child->capabilities[0].rfind("fs.read:/", 0), 0u);
  EXPECT_NE(child->capabilities[0].find("/sub/**"), std::string::npos);
  EXPECT_EQ(rig.k().process(4), nullptr);  // neither refused spawn made a process

  const std::string t = rig.transcript("parent");
  EXPECT_NE(t.find("fs.write:/**"), std::string::npos) << t;  // the refusal names it
  EXPECT_NE(t.find(R"({"pid":3})"), std::string::npos) << t;
  EXPECT_NE(t.find("spawn"), std::string::npos) << t;
  EXPECT_NE(t.find(R"("answer":"child got it")"), std::string::npos) << t;
  EXPECT_NE(t.find(R"("reason":"completed")"), std::string::npos) << t;
  EXPECT_NE(t.find("not a live descendant"), std::string::npos) << t;
  EXPECT_NE(rig.transcript("child").find(R"({"body":"hello child","from":1,"id":1})"),
            std::string::npos)
      << rig.transcript("child");
  // The bystander was not touched.
  EXPECT_FALSE(rig.p(bystander).exit.has_value());
  ASSERT_TRUE(rig.k().cancel(bystander).ok());

  // Every one of them was audited: three spawns (one denied by spawn:1, one refused by
  // attenuation after it was allowed), and the kill refused.
  EXPECT_EQ(rig.audit("proc.spawn").size(), 6u);
  EXPECT_EQ(rig.audit("proc.wait").size(), 2u);
  EXPECT_EQ(rig.audit("msg.send").size(), 2u);
  EXPECT_EQ(rig.audit("msg.recv").size(), 2u);
  EXPECT_EQ(rig.audit("proc.kill").size(), 2u);
}

TEST(BlockingSyscallTest, KillingABlockedParentTakesItsBlockedChildrenWithIt) {
  Rig rig({{"parent",
            {tool_call("proc.spawn", {{"name", "child"}, {"task", "t"}, {"tools", {"msg.recv"}}}),
             tool_call("msg.recv", json::object())}},
           {"child", {tool_call("msg.recv", json::object())}}});
  ASSERT_TRUE(rig.ok());
  const Pid parent = rig.spawn(scripted_job("parent", {"proc.spawn", "msg.recv"}, {"spawn:2"}));
  ASSERT_TRUE(rig.run_until([&] { return rig.k().blocked_processes() == 2; }));
  const Process* child = rig.k().process(2);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->blocked_on, "msg.recv");
  EXPECT_EQ(rig.p(parent).blocked_on, "msg.recv");

  ASSERT_TRUE(rig.k().cancel(parent).ok());
  ASSERT_TRUE(child->exit.has_value());
  EXPECT_EQ(child->exit->reason, ExitReason::cancelled);
  EXPECT_EQ(rig.k().blocked_processes(), 0u);
  ASSERT_TRUE(rig.k().step().ok());
  // Both msg.recv calls were completed in the audit log when their processes were cancelled.
  const auto records = rig.audit("msg.recv");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[2].status, audit::CompletionStatus::error);
  EXPECT_EQ(records[3].status, audit::CompletionStatus::error);
}

}  // namespace
}  // namespace icam::kernel
