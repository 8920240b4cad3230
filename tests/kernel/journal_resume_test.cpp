// The process journal wired into the kernel (tiny generated model, real SQLite journal files in a
// temporary directory): a kernel destroyed mid-run (as a daemon killed with SIGKILL would be) and
// a new kernel over the same journal give the same tokens as an uninterrupted run; a call whose
// result was recorded is not made again; a call with no recorded result is made again only when
// it is idempotent; a half-written call goes on under the tool-call grammar; children come back
// under their parent with its waits answered; checkpoints restore as new processes; a damaged or
// locked journal stops the kernel at startup.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "kernel/kernel.h"
#include "memory/mailbox_store.h"
#include "memory/model_identity.h"
#include "memory/page_hash.h"
#include "syscalls/arg_schema.h"
#include "tests/drivers/llm/engine/tiny_model.h"
#include "tests/kernel/scripted_events.h"
#include "tests/memory/temp_dir.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Scripts;
using testing::ScriptedEvents;
using testing::tool_call;

using memory::testing::TempDir;

// Serves every call by counting it: what the test asserts is whether a call was made at all.
class CountingHandler : public SyscallHandler {
 public:
  Result<std::string> call(Process&, const std::string& name, const json& arguments) override {
    calls.push_back(name + " " + arguments.dump());
    return json{{"ok", true}, {"call", calls.size()}}.dump();
  }
  std::vector<std::string> calls;
};

KernelOptions options(const std::string& journal, bool resume, SyscallHandler* handler = nullptr,
                      Scripts scripts = {}) {
  llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
  spec.context_length = 4096;  // tool instructions are long in byte tokens
  KernelOptions o;
  o.model_path = llm::testing::tiny_model_file(spec);
  o.threads = 1;
  o.kv_pool_bytes = 16u << 20;
  o.journal_path = journal;
  o.resume_journaled = resume;
  o.syscalls = handler;
  if (!scripts.empty()) o.events_tap = ScriptedEvents::tap(std::move(scripts));
  return o;
}

std::unique_ptr<Kernel> make_kernel(const KernelOptions& o) {
  auto k = Kernel::create(o);
  EXPECT_TRUE(k.ok()) << k.error().message();
  return k.ok() ? std::move(*k) : nullptr;
}

JobSpec story_job() {
  JobSpec job;
  job.name = "story";
  job.task = "tell me a long story";
  job.sampling.max_tokens = 48;  // greedy (temperature 0)
  job.sampling.stop_tokens = {};
  job.budgets.tokens = 48;
  return job;
}

JobSpec tool_job(std::string name, std::vector<std::string> tools, int turn_tokens = 2) {
  JobSpec job;
  job.name = std::move(name);
  job.task = "do it";
  job.sampling.max_tokens = turn_tokens;
  job.budgets.tokens = 2000;
  job.tools = std::move(tools);
  return job;
}

memory::JournalProcess load(Kernel& k, Pid pid) {
  auto p = k.journal()->load(pid);
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? *p : memory::JournalProcess{};
}

// The page table a transcript has: the hash of each full page (16 tokens, the kernel's default),
// chained, under the model's identity, as the scheduler names pages in the page store.
std::vector<memory::PageHash> page_table_of(const Kernel& k, const std::vector<int32_t>& t) {
  const memory::ModelIdentity model = memory::model_identity(k.model());
  std::vector<memory::PageHash> out;
  memory::PageHash parent = memory::kRootPageHash;
  for (size_t page = 0; (page + 1) * 16 <= t.size(); ++page) {
    parent = memory::page_hash(parent, std::span<const int32_t>(t).subspan(page * 16, 16), model);
    out.push_back(parent);
  }
  return out;
}

bool starts_with(const std::vector<int32_t>& whole, const std::vector<int32_t>& prefix) {
  return whole.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), whole.begin());
}

TEST(JournalResume, AKernelKilledMidRunResumesFromTheLastCommittedToken) {
  TempDir dir;
  // The uninterrupted run.
  std::vector<int32_t> whole;
  ExitStatus uninterrupted;
  int64_t generated = 0;
  {
    auto k = make_kernel(options(dir.file("a.db"), false));
    ASSERT_TRUE(k);
    auto pid = k->spawn(story_job());
    ASSERT_TRUE(pid.ok()) << pid.error().message();
    ASSERT_TRUE(k->run_until_idle().ok());
    uninterrupted = *k->process(*pid)->exit;
    generated = k->process(*pid)->accounting.generated_tokens;
    const memory::JournalProcess jp = load(*k, *pid);
    EXPECT_EQ(jp.state, "exited");
    whole = jp.transcript;
    auto record = json::parse(jp.exit);
    EXPECT_EQ(record["exit"]["reason"], exit_reason_name(uninterrupted.reason));
  }
  ASSERT_FALSE(whole.empty());

  // The same job, its kernel destroyed part-way: nothing exits, as under SIGKILL.
  Pid pid = 0;
  size_t committed = 0;
  size_t prompt = 0;
  {
    auto k = make_kernel(options(dir.file("b.db"), false));
    ASSERT_TRUE(k);
    auto spawned = k->spawn(story_job());
    ASSERT_TRUE(spawned.ok());
    pid = *spawned;
    prompt = static_cast<size_t>(k->process(pid)->accounting.prompt_tokens);
    while (k->process(pid)->accounting.generated_tokens < 20) ASSERT_TRUE(k->step().ok());
    const memory::JournalProcess mid = load(*k, pid);
    committed = mid.transcript.size();
    // The page table is journaled with the tokens: a hash for each full page committed.
    EXPECT_EQ(mid.page_table, page_table_of(*k, mid.transcript));
    EXPECT_EQ(mid.page_table.size(), committed / 16);
  }
  EXPECT_GT(committed, prompt + 10);  // it was mid-run, with tokens committed
  EXPECT_LT(committed, whole.size());

  // A new kernel over the journal picks it up with its pid and finishes it.
  auto k = make_kernel(options(dir.file("b.db"), true));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->live_processes(), 1u);
  ASSERT_TRUE(k->run_until_idle().ok());
  ASSERT_EQ(k->resumed(), std::vector<Pid>{pid});
  EXPECT_TRUE(k->resume_errors().empty());
  const Process* p = k->process(pid);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->exit.has_value());
  EXPECT_EQ(p->exit->reason, uninterrupted.reason);
  EXPECT_EQ(p->accounting.generated_tokens, generated);
  EXPECT_EQ(p->exit->answer, uninterrupted.answer);
  const memory::JournalProcess jp = load(*k, pid);
  EXPECT_EQ(jp.state, "exited");
  // Every committed token kept, none twice, and the rest as the uninterrupted run made them.
  EXPECT_EQ(jp.transcript, whole);
  // The page table went on from where the journal's stopped.
  EXPECT_EQ(jp.page_table, page_table_of(*k, whole));
  // New processes are numbered after the journal's.
  auto next = k->spawn(story_job());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, pid + 1);
}

TEST(JournalResume, ARecordedResultIsGivenAgainNotMadeAgain) {
  TempDir dir;
  CountingHandler handler;
  const json args = {{"namespace", "notes"}, {"key", "k"}, {"value", "v"}};
  Pid pid = 0;
  std::vector<int32_t> before;
  {
    auto k = make_kernel(options(dir.file("j.db"), false, &handler,
                                 {{"writer", {tool_call("kv.put", args)}}}));
    ASSERT_TRUE(k);
    auto spawned = k->spawn(tool_job("writer", {"kv.put"}));
    ASSERT_TRUE(spawned.ok()) << spawned.error().message();
    pid = *spawned;
    while (handler.calls.empty()) ASSERT_TRUE(k->step().ok());
    before = load(*k, pid).transcript;
    const memory::JournalProcess jp = load(*k, pid);
    ASSERT_EQ(jp.tool_results.size(), 1u);
    EXPECT_EQ(jp.tool_results[0].name, "kv.put");
    EXPECT_EQ(json::parse(jp.tool_results[0].arguments), args);
  }
  ASSERT_EQ(handler.calls.size(), 1u);
  // Restarted, the model's next turn ends the process; the put is not made again.
  auto k = make_kernel(options(dir.file("j.db"), true, &handler,
                               {{"writer", {tool_call("proc.exit", {{"answer", "done"}})}}}));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->run_until_idle().ok());
  EXPECT_EQ(handler.calls.size(), 1u);
  const Process* p = k->process(pid);
  ASSERT_TRUE(p && p->exit);
  EXPECT_EQ(p->exit->reason, ExitReason::completed);
  EXPECT_EQ(p->exit->answer, "done");
  EXPECT_EQ(p->accounting.syscalls, 2);  // the put, then proc.exit
  const memory::JournalProcess jp = load(*k, pid);
  EXPECT_TRUE(starts_with(jp.transcript, before));
  EXPECT_EQ(jp.tool_results.size(), 1u);
}

// Builds a journal by hand: a process begun by a kernel (so its prompt is the real one), then
// what the test appends, as a kernel stopped at that point would have left it.
struct HandMade {
  Pid pid = 0;
  std::vector<int32_t> transcript;
};

HandMade begin_by_hand(const std::string& journal, const JobSpec& job,
                       const std::string& written, CountingHandler& handler) {
  HandMade out;
  auto k = make_kernel(options(journal, false, &handler));
  if (!k) return out;
  auto pid = k->spawn(job);
  EXPECT_TRUE(pid.ok()) << pid.error().message();
  if (!pid.ok()) return out;
  out.pid = *pid;
  auto tokens = k->model().tokenizer().encode(written, false, true);
  EXPECT_TRUE(tokens.ok());
  EXPECT_TRUE(k->journal()->append_tokens(out.pid, *tokens).ok());
  out.transcript = load(*k, out.pid).transcript;
  return out;
}

TEST(JournalResume, AMissingToolMessageIsAppendedFromTheRecordedResult) {
  TempDir dir;
  CountingHandler handler;
  const JobSpec job = tool_job("writer", {"kv.put"});
  const std::string call =
      tool_call("kv.put", {{"namespace", "n"}, {"key", "k"}, {"value", "v"}}) + "</tool_call>";
  HandMade h = begin_by_hand(dir.file("j.db"), job, call, handler);
  ASSERT_NE(h.pid, 0u);
  {
    auto journal = memory::ProcessJournal::open(dir.file("j.db"));
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->record_tool_result(h.pid, 0, "kv.put", "{}", "{\"stored\":true}").ok());
  }
  auto k = make_kernel(options(dir.file("j.db"), true, &handler));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->run_until_idle().ok());
  EXPECT_TRUE(handler.calls.empty());
  const memory::JournalProcess jp = load(*k, h.pid);
  EXPECT_EQ(jp.state, "exited");
  ASSERT_TRUE(starts_with(jp.transcript, h.transcript));
  const std::string after = k->model().tokenizer().decode(
      std::vector<int32_t>(jp.transcript.begin() + static_cast<std::ptrdiff_t>(h.transcript.size()),
                           jp.transcript.end()));
  EXPECT_NE(after.find("{\"stored\":true}"), std::string::npos) << after;
}

TEST(JournalResume, AnUnansweredCallRunsAgainOnlyWhenIdempotent) {
  TempDir dir;
  CountingHandler handler;
  // exec.run is not idempotent: the model is told its outcome is unknown.
  const JobSpec runner = tool_job("runner", {"exec.run"});
  HandMade a = begin_by_hand(dir.file("a.db"), runner,
                             tool_call("exec.run", {{"argv", {"/bin/true"}}}) + "</tool_call>",
                             handler);
  ASSERT_NE(a.pid, 0u);
  {
    auto k = make_kernel(options(dir.file("a.db"), true, &handler));
    ASSERT_TRUE(k);
    ASSERT_TRUE(k->run_until_idle().ok());
    EXPECT_TRUE(handler.calls.empty());
    const memory::JournalProcess jp = load(*k, a.pid);
    ASSERT_EQ(jp.tool_results.size(), 1u);
    EXPECT_EQ(jp.tool_results[0].name, "exec.run");
    EXPECT_NE(jp.tool_results[0].result.find("outcome unknown"), std::string::npos)
        << jp.tool_results[0].result;
    EXPECT_EQ(jp.tool_results[0].at_token, static_cast<int64_t>(a.transcript.size()));
    EXPECT_EQ(k->process(a.pid)->accounting.syscalls, 1);
  }
  // kv.get is: it is made again, once.
  const JobSpec reader = tool_job("reader", {"kv.get"});
  HandMade b = begin_by_hand(dir.file("b.db"), reader,
                             tool_call("kv.get", {{"namespace", "n"}, {"key", "k"}}) + "</tool_call>",
                             handler);
  ASSERT_NE(b.pid, 0u);
  auto k = make_kernel(options(dir.file("b.db"), true, &handler));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->run_until_idle().ok());
  ASSERT_EQ(handler.calls.size(), 1u);
  EXPECT_EQ(handler.calls[0].rfind("kv.get ", 0), 0u);
  const memory::JournalProcess jp = load(*k, b.pid);
  ASSERT_EQ(jp.tool_results.size(), 1u);
  EXPECT_NE(jp.tool_results[0].result.find("\"ok\":true"), std::string::npos);
}

TEST(JournalResume, AHalfWrittenCallGoesOnUnderTheGrammar) {
  TempDir dir;
  CountingHandler handler;
  // The kernel stopped while the model was writing the tool's name. Primed with what it wrote,
  // the filter can only let it finish a well-formed call to a tool it lists.
  const JobSpec job = tool_job("reader", {"kv.get"}, 1500);
  HandMade h = begin_by_hand(dir.file("j.db"), job, "<tool_call>{\"name\": \"kv.", handler);
  ASSERT_NE(h.pid, 0u);
  auto k = make_kernel(options(dir.file("j.db"), true, &handler));
  ASSERT_TRUE(k);
  // Run until the call is made (a random tiny model, constrained, still has to close it).
  for (int i = 0; i < 3000 && handler.calls.empty() && k->has_work(); ++i)
    ASSERT_TRUE(k->step().ok());
  ASSERT_FALSE(handler.calls.empty()) << "no call was made";
  EXPECT_EQ(handler.calls[0].rfind("kv.get ", 0), 0u) << handler.calls[0];
}

// A handler whose jobs have external tools (as the dispatcher lists a job's drivers' tools).
class ExternalToolsHandler : public CountingHandler {
 public:
  explicit ExternalToolsHandler(std::vector<ExternalTool> extra = {}) : extra_(std::move(extra)) {}
  std::vector<ExternalTool> external_tools(const JobSpec&) override {
    std::vector<ExternalTool> tools = listed();
    tools.insert(tools.end(), extra_.begin(), extra_.end());
    return tools;
  }

 private:
  static std::vector<ExternalTool> listed() {
    return {{"calc", "add", "Add.",
             json::parse(R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0,
                             "maximum": 99}, "b": {"type": "integer", "minimum": 0,
                             "maximum": 99}}, "required": ["a", "b"],
                             "additionalProperties": false})")},
            {"calc", "neg", "Negate.",
             json::parse(R"({"type": "object", "properties": {"a": {"type": "integer",
                             "minimum": -9, "maximum": 9}}, "required": ["a"],
                             "additionalProperties": false})")},
            {"clock", "now", "Now.", json::parse(R"({"type": "object",
                                                    "additionalProperties": false})")}};
  }
  std::vector<ExternalTool> extra_;
};

// Revives a process stopped after "<tool_call>{"name": "tool.call", "arguments": {" and returns
// the call it then makes (the tiny random model, constrained), as the handler saw it.
json revived_tool_call(ExternalToolsHandler& handler) {
  TempDir dir;
  const JobSpec job = tool_job("caller", {"tool.call"}, 1500);
  HandMade h = begin_by_hand(dir.file("j.db"), job,
                             "<tool_call>{\"name\": \"tool.call\", \"arguments\": {", handler);
  EXPECT_NE(h.pid, 0u);
  auto k = make_kernel(options(dir.file("j.db"), true, &handler));
  if (!k || h.pid == 0) return json();
  for (int i = 0; i < 3000 && handler.calls.empty() && k->has_work(); ++i)
    EXPECT_TRUE(k->step().ok());
  if (handler.calls.empty() || handler.calls[0].rfind("tool.call ", 0) != 0) return json();
  return json::parse(handler.calls[0].substr(std::string("tool.call ").size()));
}

TEST(JournalResume, AHalfWrittenToolCallGoesOnToAToolTheProcessHas) {
  // The revived process's filter is made with the job's external tools: once it writes the
  // driver's name, only a tool the process has, with arguments its schema takes, can follow.
  ExternalToolsHandler handler;
  const json a = revived_tool_call(handler);
  ASSERT_TRUE(a.is_object()) << "no tool.call was made";
  const std::vector<ExternalTool> tools = handler.external_tools(JobSpec{});
  const ExternalTool* tool = nullptr;
  for (const ExternalTool& t : tools)
    if (t.driver == a.value("driver", "") && t.name == a.value("tool", "")) tool = &t;
  ASSERT_NE(tool, nullptr) << a.dump();
  ASSERT_TRUE(a.contains("arguments")) << a.dump();
  Status valid = syscalls::validate_arguments(tool->checked_schema, a["arguments"]);
  EXPECT_TRUE(valid.ok()) << valid.error().message() << ": " << a.dump();
}

// A tool whose schema the grammar cannot follow (a bounded number) keeps the names held: the
// call still names a tool the process has; only that tool's arguments are left free.
TEST(JournalResume, AToolTheGrammarCannotFollowLeavesTheNamesHeld) {
  ExternalToolsHandler handler({{"calc", "ratio", "A ratio.",
                                 json::parse(R"({"type": "object", "properties": {"r": {"type":
                                                 "number", "maximum": 1}}})")}});
  const json a = revived_tool_call(handler);
  ASSERT_TRUE(a.is_object()) << "no tool.call was made";
  const std::vector<ExternalTool> tools = handler.external_tools(JobSpec{});
  bool real = false;
  for (const ExternalTool& t : tools)
    real = real || (t.driver == a.value("driver", "") && t.name == a.value("tool", ""));
  EXPECT_TRUE(real) << a.dump();
}

// A parent blocked in proc.wait, its child blocked in msg.recv and another child that had ended:
// after the restart both children are known to the parent again (the live one revived under it,
// its capabilities derived from the parent's again; the ended one's exit status restored), the
// waits are served again rather than answered "outcome unknown", and both are answered.
TEST(JournalResume, ChildrenComeBackUnderTheirParentAndItsWaitsAreAnswered) {
  TempDir dir;
  const json worker_spawn = {{"name", "worker"},
                             {"task", "wait for work"},
                             {"tools", {"msg.recv"}},
                             {"capabilities", {"spawn:1"}}};
  JobSpec parent_job = tool_job("parent", {"proc.spawn", "proc.wait", "msg.recv"});
  parent_job.capabilities = {"spawn:4"};
  const Pid parent = 1, worker = 2, quick = 3;  // numbered in spawn order
  {
    auto k = make_kernel(options(
        dir.file("j.db"), false, nullptr,
        {{"parent",
          {tool_call("proc.spawn", worker_spawn),
           tool_call("proc.spawn", {{"name", "quick"}, {"task", "answer at once"}}),
           tool_call("proc.wait", {{"pid", worker}})}},
         {"worker", {tool_call("msg.recv", {{"timeout_ms", 600000}})}}}));
    ASSERT_TRUE(k);
    auto pid = k->spawn(parent_job);
    ASSERT_TRUE(pid.ok()) << pid.error().message();
    ASSERT_EQ(*pid, parent);
    auto waiting = [&](Pid p, const std::string& on) {
      const Process* q = k->process(p);
      return q && q->state == ProcessState::blocked && q->blocked_on.rfind(on, 0) == 0;
    };
    for (int i = 0; i < 2000 && !(waiting(parent, "proc.wait") && waiting(worker, "msg.recv") &&
                                  k->process(quick) && k->process(quick)->exit);
         ++i) {
      ASSERT_TRUE(k->step().ok());
      if (!k->has_work()) k->wait_for_completion(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(waiting(parent, "proc.wait"));
    ASSERT_TRUE(waiting(worker, "msg.recv"));
    ASSERT_TRUE(k->process(quick) && k->process(quick)->exit);
    EXPECT_EQ(k->process(worker)->capabilities, std::vector<std::string>{"spawn:1"});
    // A script's text reaches the loop, not the transcript: the two calls in progress are
    // journaled as the model's tokens would have been.
    for (const auto& [who, call] :
         {std::pair{parent, tool_call("proc.wait", {{"pid", worker}})},
          std::pair{worker, tool_call("msg.recv", {{"timeout_ms", 600000}})}}) {
      auto tokens = k->model().tokenizer().encode(call + "</tool_call>", false, true);
      ASSERT_TRUE(tokens.ok());
      ASSERT_TRUE(k->journal()->append_tokens(who, *tokens).ok());
    }
  }  // the kernel is gone, as after SIGKILL: nothing more is written

  auto k = make_kernel(options(
      dir.file("j.db"), true, nullptr,
      {{"parent",
        {tool_call("proc.wait", {{"pid", quick}}), tool_call("proc.exit", {{"answer", "all done"}})}}}));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->step().ok());  // revives both live processes
  EXPECT_EQ(k->resume_errors(), std::vector<std::string>{});
  EXPECT_EQ(k->resumed(), (std::vector<Pid>{parent, worker}));
  const Process* w = k->process(worker);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->parent, parent);
  EXPECT_EQ(w->capabilities, std::vector<std::string>{"spawn:1"});  // derived again
  // Both waits were made again, not answered "outcome unknown".
  EXPECT_EQ(k->process(parent)->state, ProcessState::blocked);
  EXPECT_EQ(w->state, ProcessState::blocked);
  EXPECT_EQ(w->blocked_on.rfind("msg.recv", 0), 0u) << w->blocked_on;

  // The worker ends: the parent's wait hears it, then its wait for the child that had ended
  // before the restart is answered from that child's journaled exit.
  ASSERT_TRUE(k->cancel(worker).ok());
  for (int i = 0; i < 2000 && !k->process(parent)->exit; ++i) {
    ASSERT_TRUE(k->step().ok());
    if (!k->has_work()) k->wait_for_completion(std::chrono::milliseconds(10));
  }
  const Process* p = k->process(parent);
  ASSERT_TRUE(p->exit.has_value());
  EXPECT_EQ(p->exit->answer, "all done");
  const memory::JournalProcess jp = load(*k, parent);
  ASSERT_GE(jp.tool_results.size(), 4u);  // two spawns, two waits (then proc.exit)
  EXPECT_EQ(json::parse(jp.tool_results[2].result).value("reason", ""), "cancelled")
      << jp.tool_results[2].result;
  EXPECT_EQ(json::parse(jp.tool_results[2].result).value("pid", Pid{0}), worker);
  EXPECT_EQ(json::parse(jp.tool_results[3].result).value("reason", ""), "completed")
      << jp.tool_results[3].result;
  EXPECT_EQ(json::parse(jp.tool_results[3].result).value("pid", Pid{0}), quick);
}

// Messages survive a restart: those queued in a mailbox when the kernel stopped are there again,
// in order, and none is given twice.
TEST(JournalResume, QueuedMessagesAreThereAfterARestartAndNoneTwice) {
  TempDir dir;
  // rx waits for a child that waits forever, so tx's two messages queue in rx's mailbox.
  JobSpec rx = tool_job("rx", {"proc.spawn", "proc.wait", "msg.recv"});
  rx.capabilities = {"spawn:1"};
  JobSpec tx = tool_job("tx", {"msg.send"});
  tx.capabilities = {"msg:pid/1"};
  const Pid rx_pid = 1, tx_pid = 2, child = 3;
  const json forever = {{"timeout_ms", 600000}};
  {
    auto k = make_kernel(options(
        dir.file("j.db"), false, nullptr,
        {{"rx",
          {tool_call("proc.spawn", {{"name", "child"}, {"task", "t"}, {"tools", {"msg.recv"}}}),
           tool_call("proc.wait", {{"pid", child}})}},
         {"child", {tool_call("msg.recv", forever)}},
         {"tx",
          {tool_call("msg.send", {{"to", rx_pid}, {"body", "one"}}),
           tool_call("msg.send", {{"to", rx_pid}, {"body", "two"}})}}}));
    ASSERT_TRUE(k);
    ASSERT_EQ(*k->spawn(rx), rx_pid);
    ASSERT_EQ(*k->spawn(tx), tx_pid);
    auto done = [&] {
      const Process* c = k->process(child);
      return c && c->state == ProcessState::blocked && k->process(tx_pid)->exit &&
             k->process(rx_pid)->state == ProcessState::blocked;
    };
    for (int i = 0; i < 2000 && !done(); ++i) {
      ASSERT_TRUE(k->step().ok());
      if (!k->has_work()) k->wait_for_completion(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(done());
    const memory::JournalProcess sender = load(*k, tx_pid);
    ASSERT_EQ(sender.tool_results.size(), 2u);
    EXPECT_EQ(json::parse(sender.tool_results[1].result).value("queued", 0), 2);
    // The calls in progress, as the model's tokens would have put them in the journal.
    for (const auto& [pid, call] : {std::pair{rx_pid, tool_call("proc.wait", {{"pid", child}})},
                                    std::pair{child, tool_call("msg.recv", forever)}}) {
      auto tokens = k->model().tokenizer().encode(call + "</tool_call>", false, true);
      ASSERT_TRUE(tokens.ok());
      ASSERT_TRUE(k->journal()->append_tokens(pid, *tokens).ok());
    }
  }  // stopped as by SIGKILL, two messages in rx's mailbox

  const json soon = {{"timeout_ms", 200}};
  auto k = make_kernel(options(dir.file("j.db"), true, nullptr,
                               {{"rx",
                                 {tool_call("msg.recv", soon), tool_call("msg.recv", soon),
                                  tool_call("msg.recv", soon),
                                  tool_call("proc.exit", {{"answer", "read"}})}}}));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->step().ok());
  ASSERT_TRUE(k->cancel(child).ok());  // rx's wait ends; then it reads its mailbox
  for (int i = 0; i < 3000 && !k->process(rx_pid)->exit; ++i) {
    ASSERT_TRUE(k->step().ok());
    if (!k->has_work()) k->wait_for_completion(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(k->process(rx_pid)->exit.has_value());
  const memory::JournalProcess jp = load(*k, rx_pid);
  ASSERT_GE(jp.tool_results.size(), 5u);
  const json first = json::parse(jp.tool_results[2].result, nullptr, false);
  const json second = json::parse(jp.tool_results[3].result, nullptr, false);
  EXPECT_EQ(first.value("body", ""), "one") << jp.tool_results[2].result;
  EXPECT_EQ(first.value("from", Pid{0}), tx_pid);
  EXPECT_EQ(second.value("body", ""), "two") << jp.tool_results[3].result;
  EXPECT_LT(first.value("id", 0), second.value("id", 0));
  EXPECT_NE(jp.tool_results[4].result.find("no message"), std::string::npos)
      << jp.tool_results[4].result;
  // Nothing is left stored for a process that exited.
  auto stored = memory::MailboxStore::open(dir.file("j.db"));
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE((*stored)->all()->empty());
}

TEST(JournalResume, ACheckpointRestoresAsANewProcessWithItsPrefix) {
  TempDir dir;
  auto k = make_kernel(options(dir.file("j.db"), false));
  ASSERT_TRUE(k);
  auto pid = k->spawn(story_job());
  ASSERT_TRUE(pid.ok());
  while (k->process(*pid)->accounting.generated_tokens < 10) ASSERT_TRUE(k->step().ok());
  auto c = k->checkpoint(*pid, "ten");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->label, "ten");
  const std::vector<int32_t> at_checkpoint = load(*k, *pid).transcript;
  EXPECT_EQ(static_cast<size_t>(c->tokens), at_checkpoint.size());
  auto found = k->find_checkpoint(*pid, "ten");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, c->id);
  EXPECT_EQ(k->find_checkpoint(*pid, "none").error().code(), Errc::not_found);

  // Another user's checkpoint does not exist for them.
  EXPECT_EQ(k->restore(c->id, static_cast<uint32_t>(getuid()) + 1).error().code(),
            Errc::not_found);
  EXPECT_EQ(k->restore(c->id + 100).error().code(), Errc::not_found);

  auto restored = k->restore(c->id, static_cast<uint32_t>(getuid()));
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_NE(*restored, *pid);
  const Process* r = k->process(*restored);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "story");
  EXPECT_EQ(r->owner_uid, k->process(*pid)->owner_uid);
  EXPECT_EQ(r->accounting.prompt_tokens + r->accounting.generated_tokens,
            static_cast<int64_t>(at_checkpoint.size()));
  ASSERT_TRUE(k->run_until_idle().ok());
  ASSERT_TRUE(k->process(*restored)->exit.has_value());
  const memory::JournalProcess original = load(*k, *pid);
  const memory::JournalProcess copy = load(*k, *restored);
  EXPECT_TRUE(starts_with(copy.transcript, at_checkpoint));
  EXPECT_GT(copy.transcript.size(), at_checkpoint.size());
  // Greedy from the same prefix: the copy ends as the original did.
  EXPECT_EQ(copy.transcript, original.transcript);
}

TEST(JournalResume, ADamagedOrLockedJournalStopsTheKernelAtStartup) {
  TempDir dir;
  {
    std::ofstream out(dir.file("garbage.db"), std::ios::binary);
    out << std::string(8192, 'x');
  }
  auto bad = Kernel::create(options(dir.file("garbage.db"), true));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::corrupt) << bad.error().message();
  EXPECT_NE(bad.error().message().find("journal"), std::string::npos) << bad.error().message();

  // Another kernel holds it.
  auto first = make_kernel(options(dir.file("j.db"), true));
  ASSERT_TRUE(first);
  auto second = Kernel::create(options(dir.file("j.db"), true));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), Errc::unavailable) << second.error().message();
  EXPECT_NE(second.error().message().find("another kernel"), std::string::npos);
  first.reset();

  // Another process holds the SQLite file's write lock.
  auto db = sqlite::Database::open(dir.file("j.db"), false);
  ASSERT_TRUE(db.ok()) << db.error().message();
  ASSERT_TRUE(db->exec("BEGIN IMMEDIATE").ok());
  auto locked = Kernel::create(options(dir.file("j.db"), true));
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().code(), Errc::unavailable) << locked.error().message();
  EXPECT_NE(locked.error().message().find("journal"), std::string::npos);
  ASSERT_TRUE(db->exec("ROLLBACK").ok());
  EXPECT_TRUE(make_kernel(options(dir.file("j.db"), true)) != nullptr);
}

}  // namespace
}  // namespace icam::kernel
