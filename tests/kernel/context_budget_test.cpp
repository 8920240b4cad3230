// The context budget (docs/memory.md): a process whose context outgrows its job's context_tokens
// is compacted between turns (tiny generated model, scripted tool calls, real SQLite journal and
// archive files): the pinned prefix stays, the oldest turns move to its archival memory behind a
// marker, the most recent turn stays, and it runs on to completion; mem.recall finds the moved
// text; without an archive the text is dropped and the marker says so; a kernel destroyed after a
// compaction resumes the compacted context from the journal and ends as an uninterrupted run does;
// a checkpoint taken before a compaction still restores after it, from the context it recorded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "memory/model_identity.h"
#include "memory/page_hash.h"
#include "kernel/syscall_dispatcher.h"
#include "memory/archive_store.h"
#include "memory/archive_syscalls.h"
#include "tests/drivers/llm/engine/tiny_model.h"
#include "tests/kernel/scripted_events.h"
#include "tests/memory/temp_dir.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::Scripts;
using testing::ScriptedEvents;
using testing::tool_call;

using memory::testing::TempDir;

constexpr const char* kName = "compactor";

// Each turn says a word of its own before its call, so the moved text can be searched for.
std::deque<std::string> script() {
  return {"step one, the password is aardvark " + tool_call("clock.now", json::object()),
          "step two, zebra " + tool_call("clock.now", json::object()),
          "step three, giraffe " + tool_call("clock.now", json::object()),
          "step four, okapi " + tool_call("clock.now", json::object()),
          "step five, lemur " + tool_call("clock.now", json::object()),
          "step six " + tool_call("mem.recall", {{"query", "aardvark"}}),
          tool_call("proc.exit", {{"answer", "done"}})};
}

// Serves the calls the same way every time (clock.now with a fixed time, so that two runs make
// the same tokens), mem.recall and the moved context on a real archive file.
class FixedHandler : public SyscallHandler {
 public:
  explicit FixedHandler(const std::string& archive_path) {
    auto opened = memory::ArchiveStore::open(archive_path);
    EXPECT_TRUE(opened.ok()) << opened.error().message();
    if (opened.ok()) archive_ = std::move(*opened);
  }
  Result<std::string> call(Process&, const std::string& name, const json& arguments) override {
    if (name == "mem.recall") return memory::serve_mem_recall(*archive_, "ns", arguments);
    return json{{"unix_ms", 1'800'000'000'000}, {"utc", "2027-01-15T08:00:00.000Z"}}.dump();
  }
  Status archive_context(const Process&, std::string_view text) override {
    auto id = archive_->store("ns", text, {"context"});
    return id.ok() ? ok_status() : Status(id.error());
  }

 private:
  std::unique_ptr<memory::ArchiveStore> archive_;
};

KernelOptions options(const TempDir& dir, const std::string& journal, bool archive, bool resume,
                      std::deque<std::string> lines, SyscallHandler* handler = nullptr) {
  llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
  spec.context_length = 4096;  // tool instructions are long in byte tokens
  KernelOptions o;
  o.model_path = llm::testing::tiny_model_file(spec);
  o.threads = 1;
  o.kv_pool_bytes = 16u << 20;
  o.journal_path = journal;
  o.resume_journaled = resume;
  o.workspace_root = dir.file("workspaces");
  if (archive) o.archive_path = dir.file("archive.db");
  o.events_tap = ScriptedEvents::tap(Scripts{{kName, std::move(lines)}});
  o.syscalls = handler;
  return o;
}

std::unique_ptr<Kernel> make_kernel(const KernelOptions& o) {
  auto k = Kernel::create(o);
  EXPECT_TRUE(k.ok()) << k.error().message();
  return k.ok() ? std::move(*k) : nullptr;
}

JobSpec job(int64_t context_tokens) {
  JobSpec j;
  j.name = kName;
  j.task = "do it";
  j.sampling.max_tokens = 2;  // each turn ends at once and the script writes its call
  j.budgets.tokens = 2000;
  j.tools = {"clock.now", "mem.recall"};
  j.capabilities = {"tool:mem.recall"};
  j.context_tokens = context_tokens;
  return j;
}

// The prompt's length for job(): a probe of the same job (another name, so no script), cancelled
// before it runs.
size_t prompt_tokens(Kernel& k) {
  JobSpec probe = job(0);
  probe.name = "probe";
  auto pid = k.spawn(probe);
  EXPECT_TRUE(pid.ok()) << pid.error().message();
  if (!pid.ok()) return 0;
  const size_t n = static_cast<size_t>(k.process(*pid)->accounting.prompt_tokens);
  EXPECT_TRUE(k.cancel(*pid).ok());
  EXPECT_TRUE(k.reap(*pid).ok());
  return n;
}

// Room for the prompt, a marker and a few turns: several compactions over the script.
constexpr int64_t kRoom = 400;

memory::JournalProcess load(Kernel& k, Pid pid) {
  auto p = k.journal()->load(pid);
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? *p : memory::JournalProcess{};
}

std::vector<int32_t> tool_message(const Kernel& k, const std::string& result) {
  auto text = AgentLoop::tool_message_text(k.model().chat_family(), result);
  EXPECT_TRUE(text.ok());
  auto tokens = k.model().tokenizer().encode(text.ok() ? *text : "", false, true);
  EXPECT_TRUE(tokens.ok());
  return tokens.ok() ? *tokens : std::vector<int32_t>{};
}

bool starts_with(const std::vector<int32_t>& whole, const std::vector<int32_t>& prefix) {
  return whole.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), whole.begin());
}
bool ends_with(const std::vector<int32_t>& whole, const std::vector<int32_t>& suffix) {
  return whole.size() >= suffix.size() && std::equal(suffix.rbegin(), suffix.rend(), whole.rbegin());
}

TEST(ContextBudget, TheJobsContextTokensAreValidated) {
  auto parsed = parse_job(R"({"task": "t", "context_tokens": 1000})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->context_tokens, 1000);
  auto again = job_from_json(to_json(*parsed));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->context_tokens, 1000);
  EXPECT_EQ(parse_job(R"({"task": "t"})")->context_tokens, 0);
  for (const char* bad : {R"({"task": "t", "context_tokens": -1})",
                          R"({"task": "t", "context_tokens": 1.5})",
                          R"({"task": "t", "context_tokens": "1000"})",
                          R"({"task": "t", "context_tokens": 99999999999})"}) {
    auto job = parse_job(bad, "job.json");
    ASSERT_FALSE(job.ok()) << bad;
    EXPECT_THAT(job.error().message(), HasSubstr("job.json: /context_tokens"));
  }
}

TEST(ContextBudget, TheDispatcherArchivesMovedTextInEntriesTheArchiveTakes) {
  TempDir dir;
  DispatcherOptions o;
  o.archive_path = dir.file("archive.db");
  o.workspace_root = dir.file("workspaces");
  auto d = SyscallDispatcher::create(o);
  ASSERT_TRUE(d.ok()) << d.error().message();
  JobSpec j = job(0);
  Process p;
  p.pid = 7;
  p.name = j.name;
  p.owner_uid = 1000;
  p.tools = j.tools;
  ASSERT_TRUE((*d)->on_spawn(p, j).ok());
  // Over two entries' worth, with two-byte characters that no cut may split.
  std::string text = "wombat ";
  while (text.size() < 20000) text += "caf\xc3\xa9 ";
  ASSERT_TRUE((*d)->archive_context(p, text).ok());
  auto found = (*d)->call(p, "mem.recall", {{"query", "wombat"}});
  ASSERT_TRUE(found.ok()) << found.error().message();
  EXPECT_THAT(*found, HasSubstr("wombat"));
  (*d)->on_exit(p);
  d->reset();
  auto archive = memory::ArchiveStore::open(o.archive_path);
  ASSERT_TRUE(archive.ok());
  auto entries = (*archive)->entries(memory::process_archive_namespace(1000, kName), 100);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  std::string joined;
  for (auto it = entries->rbegin(); it != entries->rend(); ++it) {  // oldest first
    EXPECT_LE(it->text.size(), memory::ArchiveLimits{}.max_text_bytes);
    EXPECT_NE(static_cast<unsigned char>(it->text[0]) & 0xC0, 0x80);
    joined += it->text;
  }
  EXPECT_EQ(joined, text);

  // Without an archive there is nowhere to put it.
  DispatcherOptions none;
  none.workspace_root = dir.file("workspaces");
  auto bare = SyscallDispatcher::create(none);
  ASSERT_TRUE(bare.ok());
  ASSERT_TRUE((*bare)->on_spawn(p, j).ok());
  EXPECT_EQ((*bare)->archive_context(p, "x").error().code(), Errc::unavailable);
  (*bare)->on_exit(p);
}

TEST(ContextBudget, AProcessOverItsBudgetIsCompactedIntoItsArchiveAndRunsOn) {
  TempDir dir;
  auto k = make_kernel(options(dir, dir.file("journal.db"), true, false, script()));
  ASSERT_TRUE(k);
  const size_t prompt = prompt_tokens(*k);
  ASSERT_GT(prompt, 0u);
  const int64_t limit = static_cast<int64_t>(prompt) + kRoom;
  auto spawned = k->spawn(job(limit));
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  const Pid pid = *spawned;
  const std::vector<int32_t> pinned(load(*k, pid).transcript);
  ASSERT_EQ(pinned.size(), prompt);

  // Up to the first compaction.
  while (k->compactions(pid) == 0 && !k->process(pid)->exit) ASSERT_TRUE(k->step().ok());
  ASSERT_EQ(k->compactions(pid), 1) << "the context never outgrew " << limit << " tokens";
  {
    // The pinned prefix, the marker, and the most recent turn last.
    const std::vector<llm::ChatMessage> messages = k->context_messages(pid);
    ASSERT_GE(messages.size(), 5u);
    EXPECT_EQ(messages[0].role, "system");
    EXPECT_EQ(messages[1].role, "user");
    EXPECT_EQ(messages[1].content, "do it");
    EXPECT_EQ(messages[2].role, "tool");
    EXPECT_THAT(messages[2].content, HasSubstr("moved to your archival memory"));
    EXPECT_THAT(messages[2].content, HasSubstr("mem.recall"));
    const int64_t calls = k->process(pid)->accounting.syscalls;
    EXPECT_EQ(messages[messages.size() - 2].role, "assistant");
    EXPECT_EQ(messages.back().role, "tool");
    // The turn just done is kept; the first turn is not.
    const std::vector<std::string> words = {"aardvark", "zebra", "giraffe", "okapi", "lemur"};
    ASSERT_LE(calls, static_cast<int64_t>(words.size()));
    EXPECT_THAT(messages[messages.size() - 2].content, HasSubstr(words[calls - 1]));
    for (const auto& m : messages) EXPECT_THAT(m.content, ::testing::Not(HasSubstr("aardvark")));

    // The journal holds the compacted context: the prompt first, the last tool message last, and
    // the whole under the limit with the next turn.
    const memory::JournalProcess jp = load(*k, pid);
    EXPECT_EQ(jp.context.compactions, 1);
    EXPECT_GE(jp.context.calls, 1);
    EXPECT_TRUE(starts_with(jp.transcript, pinned));
    EXPECT_TRUE(ends_with(jp.transcript, tool_message(*k, messages.back().content)));
    EXPECT_LE(static_cast<int64_t>(jp.transcript.size()) + 2, limit);
    EXPECT_EQ(jp.context.start, static_cast<int64_t>(prompt) +
                                    static_cast<int64_t>(tool_message(*k, messages[2].content).size()));
  }

  ASSERT_TRUE(k->run_until_idle().ok());
  const Process* p = k->process(pid);
  ASSERT_TRUE(p && p->exit);
  EXPECT_EQ(p->exit->reason, ExitReason::completed) << p->exit->error;
  EXPECT_EQ(p->exit->answer, "done");
  EXPECT_EQ(p->accounting.syscalls, 7);
  EXPECT_EQ(p->accounting.turns, 7);
  EXPECT_GE(k->compactions(pid), 1);

  // The moved text is in the process's archive namespace, and its mem.recall found it.
  const memory::JournalProcess jp = load(*k, pid);
  ASSERT_EQ(jp.tool_results.size(), 6u);
  // The page table is the compacted transcript's (emptied with the old one, hashed again).
  {
    const memory::ModelIdentity model = memory::model_identity(k->model());
    memory::PageHash parent = memory::kRootPageHash;
    std::vector<memory::PageHash> expected;
    for (size_t page = 0; (page + 1) * 16 <= jp.transcript.size(); ++page) {
      parent = memory::page_hash(
          parent, std::span<const int32_t>(jp.transcript).subspan(page * 16, 16), model);
      expected.push_back(parent);
    }
    EXPECT_EQ(jp.page_table, expected);
  }
  EXPECT_EQ(jp.tool_results[5].name, "mem.recall");
  EXPECT_THAT(jp.tool_results[5].result, HasSubstr("aardvark"));
  k.reset();
  auto archive = memory::ArchiveStore::open(dir.file("archive.db"));
  ASSERT_TRUE(archive.ok()) << archive.error().message();
  const std::string ns = memory::process_archive_namespace(static_cast<uint32_t>(getuid()), kName);
  auto hits = (*archive)->recall(ns, "aardvark", 5);
  ASSERT_TRUE(hits.ok()) << hits.error().message();
  ASSERT_FALSE(hits->empty());
  auto entries = (*archive)->entries(ns, 100);
  ASSERT_TRUE(entries.ok());
  std::string all;
  for (const auto& e : *entries) all += e.text + "\n";
  EXPECT_THAT(all, HasSubstr("step one, the password is aardvark"));
  EXPECT_THAT(all, HasSubstr("tool: "));
  EXPECT_THAT(all, HasSubstr("zebra"));
}

TEST(ContextBudget, WithoutAnArchiveTheMovedTextIsDroppedAndTheMarkerSaysSo) {
  TempDir dir;
  auto k = make_kernel(options(dir, "", false, false, script()));
  ASSERT_TRUE(k);
  const size_t prompt = prompt_tokens(*k);
  auto spawned = k->spawn(job(static_cast<int64_t>(prompt) + kRoom));
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  const Pid pid = *spawned;
  while (k->compactions(pid) == 0 && !k->process(pid)->exit) ASSERT_TRUE(k->step().ok());
  ASSERT_EQ(k->compactions(pid), 1);
  const std::vector<llm::ChatMessage> messages = k->context_messages(pid);
  ASSERT_GE(messages.size(), 3u);
  EXPECT_EQ(messages[2].role, "tool");
  EXPECT_THAT(messages[2].content, HasSubstr("dropped"));
  ASSERT_TRUE(k->run_until_idle().ok());
  const Process* p = k->process(pid);
  ASSERT_TRUE(p && p->exit);
  EXPECT_EQ(p->exit->reason, ExitReason::completed) << p->exit->error;
  EXPECT_EQ(p->exit->answer, "done");
}

TEST(ContextBudget, AKernelDestroyedAfterACompactionResumesTheCompactedContext) {
  TempDir dir;
  // The uninterrupted run.
  std::vector<int32_t> whole;
  ExitStatus uninterrupted;
  Accounting accounting;
  memory::JournalContext whole_context;
  int64_t limit = 0;
  FixedHandler handler_a(dir.file("archive-a.db"));
  {
    auto k = make_kernel(options(dir, dir.file("a.db"), true, false, script(), &handler_a));
    ASSERT_TRUE(k);
    limit = static_cast<int64_t>(prompt_tokens(*k)) + kRoom;
    auto pid = k->spawn(job(limit));
    ASSERT_TRUE(pid.ok()) << pid.error().message();
    ASSERT_TRUE(k->run_until_idle().ok());
    ASSERT_TRUE(k->process(*pid)->exit);
    uninterrupted = *k->process(*pid)->exit;
    accounting = k->process(*pid)->accounting;
    whole = load(*k, *pid).transcript;
    whole_context = load(*k, *pid).context;
    EXPECT_GE(whole_context.compactions, 2);
  }
  EXPECT_EQ(uninterrupted.answer, "done");

  // The same job, its kernel destroyed right after its first compaction.
  Pid pid = 0;
  size_t lines_used = 0;
  memory::JournalProcess at_stop;
  FixedHandler handler_b(dir.file("archive-b.db"));
  {
    auto k = make_kernel(options(dir, dir.file("b.db"), true, false, script(), &handler_b));
    ASSERT_TRUE(k);
    ASSERT_EQ(static_cast<int64_t>(prompt_tokens(*k)) + kRoom, limit);
    auto spawned = k->spawn(job(limit));
    ASSERT_TRUE(spawned.ok());
    pid = *spawned;
    while (k->compactions(pid) == 0 && !k->process(pid)->exit) ASSERT_TRUE(k->step().ok());
    ASSERT_EQ(k->compactions(pid), 1);
    lines_used = static_cast<size_t>(k->process(pid)->accounting.syscalls);
    at_stop = load(*k, pid);
  }
  EXPECT_EQ(at_stop.context.compactions, 1);

  // A new kernel over the journal revives it from the compacted context, with the rest of the
  // script, and it ends as the uninterrupted run did.
  std::deque<std::string> rest = script();
  rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(lines_used));
  auto k = make_kernel(options(dir, dir.file("b.db"), true, true, rest, &handler_b));
  ASSERT_TRUE(k);
  ASSERT_TRUE(k->run_until_idle().ok());
  ASSERT_EQ(k->resumed(), std::vector<Pid>{pid});
  EXPECT_TRUE(k->resume_errors().empty());
  const Process* p = k->process(pid);
  ASSERT_TRUE(p && p->exit);
  EXPECT_EQ(p->exit->reason, uninterrupted.reason) << p->exit->error;
  EXPECT_EQ(p->exit->answer, uninterrupted.answer);
  EXPECT_EQ(p->accounting.syscalls, accounting.syscalls);
  EXPECT_EQ(p->accounting.turns, accounting.turns);
  EXPECT_EQ(p->accounting.prompt_tokens, accounting.prompt_tokens);
  const memory::JournalProcess jp = load(*k, pid);
  EXPECT_EQ(jp.state, "exited");
  // It went on from the compacted context (not the whole one): every later compaction and every
  // token is the uninterrupted run's.
  EXPECT_EQ(memory::to_json_text(jp.context), memory::to_json_text(whole_context));
  EXPECT_GT(jp.context.compactions, at_stop.context.compactions);
  ASSERT_EQ(jp.tool_results.size(), 6u);
  EXPECT_THAT(jp.tool_results.back().result, HasSubstr("aardvark"));
  // Up to the recall's answer, token for token: the hits' scores depend on everything else the
  // archive holds, and a revived turn's text is what its tokens say (this test's scripted words
  // never were tokens), so the archives of the two runs differ after the restart.
  const auto recall_at = static_cast<size_t>(jp.tool_results.back().at_token);
  ASSERT_LE(recall_at, whole.size());
  ASSERT_LE(recall_at, jp.transcript.size());
  EXPECT_EQ(std::vector<int32_t>(jp.transcript.begin(), jp.transcript.begin() + recall_at),
            std::vector<int32_t>(whole.begin(), whole.begin() + recall_at));
  EXPECT_EQ(jp.transcript.size(), whole.size());
}

TEST(ContextBudget, ACheckpointTakenBeforeACompactionRestoresAfterIt) {
  TempDir dir;
  // One script for both (they share the job's name): the original's whole script, then for the
  // copy restored from its checkpoint after call kAt, the lines from there on.
  constexpr size_t kAt = 2;
  std::deque<std::string> lines = script();
  const std::deque<std::string> whole_script = script();
  lines.insert(lines.end(), whole_script.begin() + kAt, whole_script.end());
  FixedHandler handler(dir.file("archive.db"));
  auto k = make_kernel(options(dir, dir.file("journal.db"), true, false, lines, &handler));
  ASSERT_TRUE(k);
  const int64_t limit = static_cast<int64_t>(prompt_tokens(*k)) + kRoom;
  auto spawned = k->spawn(job(limit));
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  const Pid pid = *spawned;
  while (k->process(pid)->accounting.syscalls < static_cast<int64_t>(kAt) && !k->process(pid)->exit)
    ASSERT_TRUE(k->step().ok());
  ASSERT_EQ(k->process(pid)->accounting.syscalls, static_cast<int64_t>(kAt));
  ASSERT_EQ(k->compactions(pid), 0) << "compacted before the checkpoint: take it earlier (kAt)";
  auto c = k->checkpoint(pid, "before");
  ASSERT_TRUE(c.ok()) << c.error().message();
  const std::vector<int32_t> at_checkpoint = load(*k, pid).transcript;
  const int64_t prompt_at_checkpoint = k->process(pid)->accounting.prompt_tokens;
  EXPECT_EQ(static_cast<size_t>(c->tokens), at_checkpoint.size());
  EXPECT_EQ(c->tool_calls, static_cast<int64_t>(kAt));
  EXPECT_FALSE(c->context.compacted());

  // The original runs on, is compacted (its journaled transcript replaced) and completes.
  ASSERT_TRUE(k->run_until_idle().ok());
  const Process* original = k->process(pid);
  ASSERT_TRUE(original && original->exit);
  EXPECT_EQ(original->exit->reason, ExitReason::completed) << original->exit->error;
  const ExitStatus original_exit = *original->exit;
  const Accounting original_accounting = original->accounting;
  const memory::JournalProcess done = load(*k, pid);
  ASSERT_GE(done.context.compactions, 1);
  EXPECT_FALSE(starts_with(done.transcript, at_checkpoint));
  ASSERT_EQ(done.checkpoints.size(), 1u);  // the compaction kept it
  EXPECT_EQ(done.checkpoints[0].id, c->id);

  // Restored, it starts from the prefix it recorded, not from the compacted transcript.
  auto restored = k->restore(c->id, static_cast<uint32_t>(getuid()));
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  ASSERT_NE(*restored, pid);
  {
    const memory::JournalProcess copy = load(*k, *restored);
    EXPECT_TRUE(starts_with(copy.transcript, at_checkpoint));
    EXPECT_FALSE(copy.context.compacted());
    ASSERT_EQ(copy.tool_results.size(), kAt);
    for (size_t i = 0; i < kAt; ++i) {
      EXPECT_EQ(copy.tool_results[i].result, done.tool_results[i].result) << i;
      EXPECT_LE(copy.tool_results[i].at_token, static_cast<int64_t>(at_checkpoint.size())) << i;
    }
    const Process* r = k->process(*restored);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->accounting.syscalls, static_cast<int64_t>(kAt));
    EXPECT_EQ(r->accounting.prompt_tokens, prompt_at_checkpoint);
    EXPECT_EQ(k->compactions(*restored), 0);
  }

  // It runs the rest of the script and ends as the original did, compacted as it was.
  ASSERT_TRUE(k->run_until_idle().ok());
  const Process* p = k->process(*restored);
  ASSERT_TRUE(p && p->exit);
  EXPECT_EQ(p->exit->reason, original_exit.reason) << p->exit->error;
  EXPECT_EQ(p->exit->answer, original_exit.answer);
  EXPECT_EQ(p->accounting.syscalls, original_accounting.syscalls);
  EXPECT_EQ(p->accounting.turns, original_accounting.turns);
  const memory::JournalProcess copy = load(*k, *restored);
  EXPECT_EQ(copy.state, "exited");
  EXPECT_EQ(memory::to_json_text(copy.context), memory::to_json_text(done.context));
  ASSERT_EQ(copy.tool_results.size(), 6u);
  EXPECT_THAT(copy.tool_results.back().result, HasSubstr("aardvark"));
  // The same tokens fed in but the recall's answer: both processes moved their text into the
  // same archive (one job name, one owner), so the copy's recall finds more, and its message may
  // be of another length.
  const auto fed = [&](const Accounting& a, const memory::JournalProcess& jp) {
    const std::vector<int32_t> recalled = tool_message(*k, jp.tool_results.back().result);
    return a.prompt_tokens - static_cast<int64_t>(recalled.size());
  };
  EXPECT_EQ(fed(p->accounting, copy), fed(original_accounting, done));
  // Token for token up to the recall's answer (after it, as for a resume: the archive holds what
  // both processes moved there, so the recall's hits differ).
  const auto recall_at = static_cast<size_t>(copy.tool_results.back().at_token);
  ASSERT_LE(recall_at, copy.transcript.size());
  ASSERT_LE(recall_at, done.transcript.size());
  EXPECT_EQ(std::vector<int32_t>(copy.transcript.begin(), copy.transcript.begin() + recall_at),
            std::vector<int32_t>(done.transcript.begin(), done.transcript.begin() + recall_at));
  // And the checkpoint still restores after its process exited and its copy was compacted too.
  auto again = k->journal()->restore(pid, c->id);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->transcript, at_checkpoint);
}

}  // namespace
}  // namespace icam::kernel
