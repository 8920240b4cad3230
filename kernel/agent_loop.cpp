#include "kernel/agent_loop.h"

#include <unistd.h>

#include <algorithm>

#include "common/log.h"
#include "common/utf8.h"
#include "memory/page_hash.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

// Whether `text` ends with a proper, non-empty prefix of "</tool_call>": what the scheduler's
// stop matcher is still holding back.
bool ends_in_partial_close(std::string_view text) {
  for (size_t k = std::min(text.size(), kToolCallClose.size() - 1); k >= 1; --k)
    if (text.substr(text.size() - k) == kToolCallClose.substr(0, k)) return true;
  return false;
}

// How many trailing tokens of `context` (none before `from`) to hold back from the journal: while
// the text ends in a partial "</tool_call>", the last token is held. Only the last few tokens are
// decoded: the stop string is short.
size_t held_back_tokens(const llm::Tokenizer& tokenizer, const std::vector<int32_t>& context,
                        size_t from) {
  size_t held = 0;
  while (context.size() - held > from && held < kToolCallClose.size()) {
    const size_t end = context.size() - held;
    const size_t begin = std::max(from, end > 16 ? end - 16 : size_t{0});
    const std::string text =
        tokenizer.decode(std::span<const int32_t>(context).subspan(begin, end - begin));
    if (!ends_in_partial_close(text)) break;
    ++held;
  }
  return held;
}

std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

AgentLoop::AgentLoop(const llm::Tokenizer& tokenizer, llm::ChatFamily family,
                     SyscallHandler* handler)
    : tokenizer_(tokenizer), family_(family), handler_(handler ? *handler : no_syscalls_) {
  handler_.attach(completions_, this);
}

Result<std::string> AgentLoop::tool_message_text(llm::ChatFamily family,
                                                 std::string_view tool_result) {
  // Render a closed assistant turn holding a marker, then the tool turn, and keep what follows
  // the marker: the family's end-of-turn text, the tool message and the next assistant header.
  // The marker has no surrounding whitespace, so trimming renderers keep it intact.
  static constexpr std::string_view kMarker = "\x01icam-turn-end\x01";
  const std::vector<llm::ChatMessage> messages = {{"assistant", std::string(kMarker)},
                                                  {"tool", std::string(tool_result)}};
  std::string rendered = ICAM_TRY(llm::render_chat(family, messages, true));
  const size_t at = rendered.find(kMarker);
  if (at == std::string::npos)
    return make_error(Errc::internal, "tool message: the chat template dropped the marker");
  return rendered.substr(at + kMarker.size());
}

std::vector<llm::ChatMessage> AgentLoop::prompt_messages(const JobSpec& job) {
  // Tools are explained only to jobs that list some: small models tend to recite instructions
  // they do not need. proc.exit is served either way (a process may always end itself).
  std::string system = job.system;
  if (!job.tools.empty())
    system += (system.empty() ? "" : "\n\n") +
              tool_instructions(job.tools, handler_.external_tools(job));
  std::vector<llm::ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system});
  messages.insert(messages.end(), job.history.begin(), job.history.end());
  messages.push_back({"user", job.task});
  return messages;
}

Result<std::vector<int32_t>> AgentLoop::render_prompt(const JobSpec& job) {
  const std::string rendered = ICAM_TRY(llm::render_chat(family_, prompt_messages(job), true));
  return tokenizer_.encode(rendered, tokenizer_.add_bos_default(), /*parse_special=*/true);
}

int64_t AgentLoop::context_limit(const JobSpec& job) const {
  // A job's own limit is kept under the window: past it the scheduler would refuse the turn.
  if (job.context_tokens > 0)
    return context_length_ > 0 ? std::min(job.context_tokens, context_length_) : job.context_tokens;
  return context_length_ * 3 / 4;
}

sched::SequenceSpec AgentLoop::sequence_spec(const Slot& s, std::vector<int32_t> prompt,
                                             int max_tokens) const {
  sched::SequenceSpec spec;
  spec.prompt = std::move(prompt);
  spec.sampling = s.process.sampling;
  spec.sampling.stop_strings.push_back(std::string(kToolCallClose));
  spec.sampling.max_tokens = max_tokens;
  spec.priority = s.process.priority;
  spec.stop_at_end_of_generation = true;
  spec.on_stop = sched::OnStop::pause;
  spec.token_filter = s.tool_filter;
  return spec;
}

Result<std::vector<int32_t>> AgentLoop::tool_message_tokens(const std::string& tool_result) const {
  const std::string text = ICAM_TRY(tool_message_text(family_, tool_result));
  return ICAM_TRY_CTX(tokenizer_.encode(text, /*add_bos=*/false, /*parse_special=*/true),
                      "tool message");
}

namespace {

// The job as the journal keeps it: its own JSON, with the workspace the process got pinned (so
// that a revived process finds its files) and, for a child, its parent's pid.
std::string journal_job(const JobSpec& job, const std::string& workspace, Pid parent) {
  nlohmann::json j = to_json(job);
  if (job.workspace.empty() && !workspace.empty()) j["workspace"] = workspace;
  if (parent != 0) j["parent"] = parent;
  return j.dump();
}

}  // namespace

void AgentLoop::set_journal(memory::ProcessJournal* journal,
                            std::function<std::string(Pid)> workspace_of) {
  journal_ = journal;
  workspace_of_ = std::move(workspace_of);
}

Result<Pid> AgentLoop::spawn(const JobSpec& job, Pid parent, std::optional<uint32_t> owner_uid) {
  if (!scheduler_) return make_error(Errc::internal, "agent loop: no scheduler attached");
  std::vector<int32_t> prompt = ICAM_TRY_CTX(render_prompt(job), "job '" + job.name + "'");

  Slot slot;
  Process& p = slot.process;
  p.pid = next_pid_;
  p.parent = parent;
  p.name = job.name;
  p.owner_uid = owner_uid.value_or(static_cast<uint32_t>(getuid()));
  p.priority = job.priority;
  p.budgets = job.budgets;
  p.tools = job.tools;
  p.sampling = job.sampling;
  p.started = p.state_since = Clock::now();
  p.accounting.prompt_tokens = static_cast<int64_t>(prompt.size());
  p.accounting.turns = 1;

  // The handler sets up what the process's syscalls need (capabilities, workspace) before the
  // model can make one; if it refuses, nothing was created.
  ICAM_TRY_CTX(handler_.on_spawn(p, job), "job '" + job.name + "'");

  if (constrained_tool_calls_) {
    // The same external tools as the prompt's (the handler answers a job the same each time).
    auto filter = make_tool_filter(p.tools, handler_.external_tools(job));
    if (!filter.ok()) {
      handler_.on_exit(p);  // undo on_spawn: the process never ran
      return std::move(filter).error().with_context("job '" + job.name + "'");
    }
    slot.tool_filter = *filter;
  }
  if (journal_) {
    // A process the journal cannot record is not started: it could not survive a restart.
    const std::string workspace = workspace_of_ ? workspace_of_(p.pid) : std::string();
    Status begun = journal_->begin_process(p.pid, journal_job(job, workspace, parent),
                                           p.owner_uid, prompt);
    if (!begun.ok()) {
      handler_.on_exit(p);
      return std::move(begun).error().with_context("job '" + job.name + "'");
    }
    slot.journaled = static_cast<int64_t>(prompt.size());
  }
  slot.turn_start = prompt.size();
  slot.context_limit = context_limit(job);
  slot.pinned = prompt_messages(job);
  slot.pinned_tokens = prompt.size();
  slot.turns.push_back({prompt.size(), 0, {}, {}});
  const int max_tokens = turn_max_tokens(slot);
  auto submitted = scheduler_->submit(sequence_spec(slot, std::move(prompt), max_tokens));
  if (!submitted.ok()) {
    handler_.on_exit(p);  // undo on_spawn: the process never ran
    if (journal_) {
      p.exit = ExitStatus{ExitReason::error, "", submitted.error().message()};
      p.set_state(ProcessState::exited, Clock::now());
      (void)journal_->exit(p.pid, to_json(p).dump());
    }
    return std::move(submitted).error().with_context("job '" + job.name + "'");
  }
  slot.sequence = *submitted;

  ++next_pid_;
  p.set_state(ProcessState::ready, Clock::now());
  by_sequence_[slot.sequence] = p.pid;
  const Pid pid = p.pid;
  Slot& stored = slots_.emplace(pid, std::move(slot)).first->second;
  journal_state(stored);
  return pid;
}

Result<std::shared_ptr<ToolCallFilter>> AgentLoop::make_tool_filter(
    const std::vector<std::string>& tools, const std::vector<ExternalTool>& external) {
  if (!token_bytes_) token_bytes_ = TokenBytes::build(tokenizer_);
  std::shared_ptr<const ToolCallGrammar> grammar;
  const bool calls_external =
      !external.empty() && std::find(tools.begin(), tools.end(), "tool.call") != tools.end();
  if (calls_external) {
    // Drivers' schemas are not the kernel's. A tool whose schema the automaton cannot follow
    // (bounds on a number are common) keeps its name held and gets any object as arguments (the
    // dispatch still checks them); only what no tool can fix (too many drivers or tools, a name
    // that needs escaping) leaves tool.call to its table schema. Never a refused spawn.
    std::vector<ExternalTool> followed = external;
    for (ExternalTool& t : followed) {
      if (t.checked_schema.is_null()) continue;
      auto alone = ToolCallGrammar::create({std::string(kToolCall)}, {t});
      if (alone.ok()) continue;
      log::info("kernel", "tool ", t.driver, "/", t.name,
                ": arguments left free in the tool-call grammar: ", alone.error().message());
      t.checked_schema = nullptr;
    }
    auto held = ToolCallGrammar::create(tools, followed);
    if (held.ok()) {
      grammar = std::make_shared<const ToolCallGrammar>(std::move(held).value());
    } else {
      log::info("kernel", "tool.call left to its table schema in the tool-call grammar: ",
                held.error().message());
    }
  }
  if (!grammar)
    grammar = std::make_shared<const ToolCallGrammar>(ICAM_TRY(ToolCallGrammar::create(tools)));
  return std::make_shared<ToolCallFilter>(token_bytes_, std::move(grammar));
}

int AgentLoop::turn_max_tokens(const Slot& s) const {
  const int64_t left = s.process.budgets.tokens - s.process.accounting.generated_tokens;
  return static_cast<int>(std::clamp<int64_t>(left, 0, s.process.sampling.max_tokens));
}

AgentLoop::Slot* AgentLoop::slot_for(sched::SequenceId id) {
  auto it = by_sequence_.find(id);
  if (it == by_sequence_.end()) return nullptr;
  return &slots_.at(it->second);
}

void AgentLoop::exit(Slot& s, ExitReason reason, std::string answer, std::string error) {
  Process& p = s.process;
  if (p.exit) return;
  if (journal_ && s.sequence != 0) {
    // The last tokens first: the journal takes nothing for a process after its exit.
    auto tail = journal_tail(s, /*hold_back=*/false);
    Status st = !tail.ok()      ? Status(tail.error())
                : tail->empty() ? ok_status()
                                : journal_->append_step({{{p.pid, tail->tokens, tail->pages}}});
    if (!st.ok())
      log::warn("kernel", "process ", p.pid, ": its last tokens were not journaled: ",
                st.error().message());
  }
  p.exit = ExitStatus{reason, std::move(answer), std::move(error)};
  p.set_state(ProcessState::exited, Clock::now());
  if (journal_) {
    // The whole record, so a restarted daemon still answers `wait` for it. A refused write
    // leaves the process live in the journal: a restart would revive it, and it would find its
    // recorded results and end the same way.
    if (Status st = journal_->exit(p.pid, to_json(p).dump()); !st.ok())
      log::warn("kernel", "process ", p.pid, ": its exit was not journaled: ", st.error().message());
  }
  s.waiting = 0;  // a completion still on its way is dropped
  p.blocked_on.clear();
  by_sequence_.erase(s.sequence);
  // Forget the sequence now: its pages go back to the pool, and events still queued for it
  // find no process and are ignored.
  if (scheduler_) (void)scheduler_->release(s.sequence);
  // Its children go first: their capabilities hang off its tokens, which are about to be revoked,
  // and nobody would be left to wait for them. (Iterating is safe: exit() never adds or removes
  // slots.)
  for (auto& [pid, child] : slots_)
    if (child.process.parent == p.pid && !child.process.exit)
      exit(child, ExitReason::cancelled, trim(child.turn_text), "its parent exited");
  // Drivers stop and capabilities are revoked now, not at reap: an exited process makes no more
  // syscalls, and a daemon may keep its record for a long time.
  handler_.on_exit(p);
  if (callbacks_.on_exit) callbacks_.on_exit(p);
}

void AgentLoop::on_token(sched::SequenceId id, const llm::SampleResult&,
                         std::string_view raw_text) {
  Slot* s = slot_for(id);
  if (!s) return;
  // The scheduler's text never splits a character but may hold invalid bytes (byte-fallback
  // tokens); what a process outputs is valid UTF-8.
  const std::string text = sanitize_utf8(raw_text);
  Process& p = s->process;
  if (p.state == ProcessState::ready) {
    p.set_state(ProcessState::running, Clock::now());
    journal_state(*s);
  }
  s->dirty = true;
  ++p.accounting.generated_tokens;
  s->turn_text += text;
  if (!text.empty() && callbacks_.on_text) callbacks_.on_text(p.pid, text);
}

void AgentLoop::on_pause(sched::SequenceId id, sched::FinishReason reason) {
  Slot* s = slot_for(id);
  if (!s) return;
  Process& p = s->process;
  switch (reason) {
    case sched::FinishReason::stop_string:
      serve_tool_call(*s);
      return;
    case sched::FinishReason::max_tokens:
      if (p.accounting.generated_tokens >= p.budgets.tokens) {
        exit(*s, ExitReason::budget_tokens, trim(s->turn_text));
        return;
      }
      [[fallthrough]];  // the job's own per-turn max_tokens: the turn's text is the answer
    default:
      exit(*s, ExitReason::completed, trim(s->turn_text));
      return;
  }
}

void AgentLoop::serve_tool_call(Slot& s) {
  Process& p = s.process;
  const auto now = Clock::now();
  p.set_state(ProcessState::blocked, now);
  if (callbacks_.on_text) callbacks_.on_text(p.pid, kToolCallClose);
  // The call's own tokens are committed before it runs: after a restart the journal then shows
  // a call that may have run (no recorded result), never one it forgot (which would run twice).
  if (!commit_slot(s, /*hold_back=*/false)) return;
  journal_state(s);
  if (auto call = extract_tool_call(s.turn_text); call.ok()) {
    s.call_name = call->name;
    s.call_arguments = call->arguments.dump();
  } else {
    s.call_name.clear();
    s.call_arguments.clear();
  }
  ToolOutcome outcome = execute_tool_call(p, s.turn_text, handler_);
  switch (outcome.kind) {
    case ToolOutcome::Kind::exit:
      exit(s, ExitReason::completed, std::move(outcome.text));
      return;
    case ToolOutcome::Kind::budget:
      exit(s, ExitReason::budget_syscalls, trim(s.turn_text));
      return;
    case ToolOutcome::Kind::blocked:
      // The sequence stays paused and the process blocked until the completion arrives.
      s.waiting = outcome.pending.ticket;
      p.blocked_on = std::move(outcome.pending.waiting_on);
      return;
    case ToolOutcome::Kind::resume:
      break;
  }
  resume_turn(s, outcome.text);
}

size_t AgentLoop::deliver_completions() {
  size_t delivered = 0;
  std::vector<Completion> done = completions_->drain();
  auto current = [&](const Completion& c) {
    auto it = slots_.find(c.pid);
    return it != slots_.end() && !it->second.process.exit && it->second.waiting != 0 &&
           it->second.waiting == c.ticket;
  };
  // Each of these processes is about to run again: the pages taken from them while they waited
  // start coming back from the page store now, while their results are journaled below.
  if (scheduler_)
    for (const Completion& c : done)
      if (current(c)) (void)scheduler_->prefetch(slots_.at(c.pid).sequence);
  for (Completion& c : done) {
    if (!current(c)) {
      ++dropped_completions_;
      continue;
    }
    Slot& s = slots_.at(c.pid);
    s.waiting = 0;
    s.process.blocked_on.clear();
    resume_turn(s, tool_result_text(c.result));
    ++delivered;
  }
  return delivered;
}

size_t AgentLoop::blocked_processes() const {
  size_t n = 0;
  for (const auto& [pid, s] : slots_)
    if (!s.process.exit && s.waiting != 0) ++n;
  return n;
}

Result<Pid> AgentLoop::spawn_child(const JobSpec& job, Pid parent) {
  auto it = slots_.find(parent);
  if (it == slots_.end() || it->second.process.exit)
    return make_error(Errc::not_found, "no live process ", parent);
  return spawn(job, parent, it->second.process.owner_uid);
}

void AgentLoop::resume_turn(Slot& s, const std::string& tool_result) {
  Process& p = s.process;
  if (turn_max_tokens(s) <= 0) {
    exit(s, ExitReason::budget_tokens, trim(s.turn_text));
    return;
  }
  // The result is recorded before its tool message enters the context: a revived process that
  // finds it is given it again instead of making the call again.
  if (journal_) {
    Status st = journal_->record_tool_result(p.pid, s.calls, s.call_name, s.call_arguments,
                                             tool_result);
    if (!st.ok()) {
      exit(s, ExitReason::error, trim(s.turn_text),
           "the process journal could not record its call's result: " + st.error().message());
      return;
    }
  }
  ++s.calls;
  auto tokens = tool_message_tokens(tool_result);
  if (!tokens.ok()) {
    exit(s, ExitReason::error, "", tokens.error().message());
    return;
  }
  llm::SamplingParams sampling = p.sampling;
  sampling.stop_strings.push_back(std::string(kToolCallClose));
  sampling.max_tokens = turn_max_tokens(s);
  const int64_t appended = static_cast<int64_t>(tokens->size());
  if (!s.turns.empty()) {
    // The turn just done, as messages (the call's closing tag is not in its text).
    s.turns.back().assistant = s.turn_text + std::string(kToolCallClose);
    s.turns.back().tool = tool_result;
  }
  if (s.sequence == 0) {
    // A revived process that had no sequence while its call was served.
    std::vector<int32_t> prompt = std::move(s.pending_prompt);
    s.pending_prompt.clear();
    if (!s.turns.empty()) s.turns.back().end = prompt.size();
    prompt.insert(prompt.end(), tokens->begin(), tokens->end());
    s.turn_start = prompt.size();
    auto submitted = scheduler_->submit(sequence_spec(s, std::move(prompt), sampling.max_tokens));
    if (!submitted.ok()) {
      exit(s, ExitReason::error, "", "resume after a tool call: " + submitted.error().message());
      return;
    }
    s.sequence = *submitted;
    by_sequence_[s.sequence] = p.pid;
  } else {
    auto info = scheduler_->info(s.sequence);
    const size_t before = info.ok() ? static_cast<size_t>(info->context_tokens) : 0;
    if (!s.turns.empty()) s.turns.back().end = before;
    // Over its budget, the context is compacted into a new sequence that ends with the message.
    const Compacted compacted =
        info.ok() ? compact(s, *tokens, sampling.max_tokens) : Compacted::no;
    if (compacted == Compacted::exited) return;
    if (compacted == Compacted::no) {
      sched::Continuation next;
      next.appended = std::move(*tokens);
      next.sampling = sampling;
      if (Status st = scheduler_->resume(s.sequence, std::move(next)); !st.ok()) {
        exit(s, ExitReason::error, "", "resume after a tool call: " + st.error().message());
        return;
      }
      s.turn_start = before + static_cast<size_t>(appended);
    }
  }
  s.turns.push_back({s.turn_start, 0, {}, {}});
  s.dirty = true;
  p.accounting.prompt_tokens += appended;
  ++p.accounting.turns;
  s.turn_text.clear();
  p.set_state(ProcessState::ready, Clock::now());
  journal_state(s);
}

namespace {

// The marker that stands for the moved turns in a compacted context.
std::string context_marker(int64_t messages, int64_t tokens, bool archived) {
  if (archived)
    return str_cat("[", messages, " earlier messages, ", tokens,
                   " tokens, were moved to your archival memory; search them with mem.recall]");
  return str_cat("[", messages, " earlier messages, ", tokens,
                 " tokens, were dropped to fit the context (there is no archival memory)]");
}

}  // namespace

AgentLoop::Compacted AgentLoop::compact(Slot& s, const std::vector<int32_t>& message,
                                        int max_tokens) {
  Process& p = s.process;
  const size_t m = s.turns.size();  // the last is the turn whose call was just answered
  if (s.context_limit <= 0 || m < 2) return Compacted::no;
  const size_t before = s.turns.back().end;
  const int64_t needed = static_cast<int64_t>(before + message.size()) + max_tokens;
  if (needed <= s.context_limit) return Compacted::no;
  // Everything committed first: the journal's transcript must be this context, token for token.
  if (!commit_slot(s, /*hold_back=*/false)) return Compacted::exited;
  auto current = scheduler_->context(s.sequence);
  if (!current.ok() || current->size() != before ||
      (journal_ && static_cast<size_t>(s.journaled) != before)) {
    log::warn("kernel", "process ", p.pid, ": context not compacted: its journal or sequence is ",
              "not where the loop expects");
    return Compacted::no;
  }
  std::vector<int32_t> full = std::move(*current);
  full.insert(full.end(), message.begin(), message.end());
  // Turn k spans [turns[k].start, turns[k + 1].start); the last ends with the new message.
  auto segment_end = [&](size_t k) { return k + 1 < m ? s.turns[k + 1].start : full.size(); };

  // How many of the oldest turns move: the fewest that bring the context under its limit, but
  // the turn just done (its call and result) always stays.
  auto moved_counts = [&](size_t j, int64_t& generated, int64_t& appended) {
    generated = s.compaction.generated;
    appended = s.compaction.appended;
    for (size_t k = 0; k < j; ++k) {
      generated += static_cast<int64_t>(s.turns[k].end - s.turns[k].start);
      appended += static_cast<int64_t>(segment_end(k) - s.turns[k].end);
    }
  };
  auto marker_tokens = [&](size_t j, bool archived) -> Result<std::vector<int32_t>> {
    int64_t generated = 0, appended = 0;
    moved_counts(j, generated, appended);
    return tool_message_tokens(context_marker(2 * (s.compaction.turns + static_cast<int64_t>(j)),
                                              generated + appended, archived));
  };
  size_t j = 1;
  for (; j + 1 < m; ++j) {
    auto marker = marker_tokens(j, true);
    if (!marker.ok()) break;
    const int64_t size = static_cast<int64_t>(s.pinned_tokens + marker->size() +
                                              (full.size() - s.turns[j].start));
    if (size + max_tokens <= s.context_limit) break;
  }

  // The moved text goes to the archive before anything else changes: if the kernel stops now,
  // the journal still has the whole context, and the next compaction stores it again.
  std::string text;
  for (size_t k = 0; k < j; ++k) {
    if (!text.empty()) text += "\n\n";
    text += "assistant: " + s.turns[k].assistant + "\n\ntool: " + s.turns[k].tool;
  }
  Status archived = handler_.archive_context(p, text);
  if (!archived.ok())
    log::warn("kernel", "process ", p.pid, ": ", 2 * j,
              " messages moved out of its context were dropped, not archived: ",
              archived.error().message());
  auto marker = marker_tokens(j, archived.ok());
  if (!marker.ok()) {
    log::warn("kernel", "process ", p.pid, ": context not compacted: ", marker.error().message());
    return Compacted::no;
  }
  const size_t kept_from = s.turns[j].start;
  std::vector<int32_t> compacted(full.begin(),
                                 full.begin() + static_cast<std::ptrdiff_t>(s.pinned_tokens));
  compacted.insert(compacted.end(), marker->begin(), marker->end());
  const size_t kept_at = compacted.size();
  compacted.insert(compacted.end(), full.begin() + static_cast<std::ptrdiff_t>(kept_from),
                   full.end());
  // Kept turns move this far forward (negative: back) in the context.
  const int64_t shift = static_cast<int64_t>(kept_from) - static_cast<int64_t>(kept_at);

  memory::JournalContext next = s.compaction;
  ++next.compactions;
  next.calls += static_cast<int64_t>(j);
  next.start = static_cast<int64_t>(kept_at);
  moved_counts(j, next.generated, next.appended);
  next.turns += static_cast<int64_t>(j);
  if (journal_) {
    if (Status st = journal_->replace_context(p.pid, compacted, next, shift); !st.ok()) {
      exit(s, ExitReason::error, trim(s.turn_text),
           "the process journal could not record its compacted context: " + st.error().message());
      return Compacted::exited;
    }
  }

  // A new sequence for the compacted context, with a fresh filter (its turn starts afresh); the
  // old one is released after, so the pinned prefix's pages are still there to be shared.
  // It holds calls to the process's own grammar (made at spawn, with its external tools).
  std::shared_ptr<ToolCallFilter> filter;
  if (s.tool_filter)
    filter = std::make_shared<ToolCallFilter>(token_bytes_, s.tool_filter->grammar());
  const sched::SequenceId old = s.sequence;
  s.tool_filter = std::move(filter);
  auto submitted = scheduler_->submit(sequence_spec(s, compacted, max_tokens));
  if (!submitted.ok()) {
    // Perhaps the pool could not hold both: without the old one it may.
    by_sequence_.erase(old);
    (void)scheduler_->release(old);
    s.sequence = 0;
    submitted = scheduler_->submit(sequence_spec(s, compacted, max_tokens));
    if (!submitted.ok()) {
      exit(s, ExitReason::error, trim(s.turn_text),
           "resume after compacting the context: " + submitted.error().message());
      return Compacted::exited;
    }
  } else {
    by_sequence_.erase(old);
    (void)scheduler_->release(old);
  }
  s.sequence = *submitted;
  by_sequence_[s.sequence] = p.pid;

  log::info("kernel", "process ", p.pid, ": context compacted from ", full.size(), " to ",
            compacted.size(), " tokens: ", 2 * j, " messages ",
            archived.ok() ? "moved to its archival memory" : "dropped");
  s.turns.erase(s.turns.begin(), s.turns.begin() + static_cast<std::ptrdiff_t>(j));
  for (Slot::Turn& t : s.turns) {
    t.start = static_cast<size_t>(static_cast<int64_t>(t.start) - shift);
    t.end = static_cast<size_t>(static_cast<int64_t>(t.end) - shift);
  }
  s.compaction = next;
  s.marker = context_marker(2 * next.turns, next.generated + next.appended, archived.ok());
  s.turn_start = compacted.size();
  if (journal_) {
    // The journal's page table was emptied with the old transcript: the compacted context's
    // pages are hashed from its start at the next commit.
    s.journaled = static_cast<int64_t>(compacted.size());
    s.pages_journaled = 0;
    s.last_page = memory::kRootPageHash;
  }
  return Compacted::yes;
}

void AgentLoop::journal_state(Slot& s) {
  if (!journal_ || s.process.exit || s.journal_state == s.process.state) return;
  // The state is for people (icamctl mem); revival reads the transcript and results, not it.
  if (Status st = journal_->set_state(s.process.pid, process_state_name(s.process.state));
      !st.ok()) {
    log::warn("kernel", "process ", s.process.pid, ": state not journaled: ", st.error().message());
    return;
  }
  s.journal_state = s.process.state;
}

Result<AgentLoop::JournalTail> AgentLoop::journal_tail(const Slot& s, bool hold_back) const {
  JournalTail out;
  std::vector<int32_t> context = ICAM_TRY(scheduler_->context(s.sequence));
  const size_t journaled = static_cast<size_t>(s.journaled);
  if (context.size() < journaled)
    return make_error(Errc::internal, "process ", s.process.pid, ": its context (",
                      context.size(), " tokens) is shorter than its journal (", journaled, ")");
  if (hold_back)
    out.held = held_back_tokens(tokenizer_, context, std::max(journaled, s.turn_start));
  const size_t committed = context.size() - out.held;
  out.tokens.assign(context.begin() + static_cast<std::ptrdiff_t>(journaled),
                    context.begin() + static_cast<std::ptrdiff_t>(committed));
  if (page_tokens_ > 0) {
    // Each full page of what will be committed, chained from the last page journaled.
    const size_t pt = static_cast<size_t>(page_tokens_);
    memory::PageHash parent = s.last_page;
    for (size_t page = static_cast<size_t>(s.pages_journaled); (page + 1) * pt <= committed;
         ++page) {
      parent = memory::page_hash(parent, std::span<const int32_t>(context).subspan(page * pt, pt),
                                 page_model_);
      out.pages.push_back(parent);
    }
  }
  return out;
}

void AgentLoop::journaled(Slot& s, const JournalTail& tail) {
  s.journaled += static_cast<int64_t>(tail.tokens.size());
  s.pages_journaled += static_cast<int64_t>(tail.pages.size());
  if (!tail.pages.empty()) s.last_page = tail.pages.back();
  s.dirty = tail.held > 0;
}

bool AgentLoop::commit_slot(Slot& s, bool hold_back) {
  if (!journal_ || s.process.exit || s.sequence == 0) return true;
  auto tail = journal_tail(s, hold_back);
  Status st = !tail.ok()      ? Status(tail.error())
              : tail->empty() ? ok_status()
                              : journal_->append_step({{{s.process.pid, tail->tokens, tail->pages}}});
  if (!st.ok()) {
    exit(s, ExitReason::error, trim(s.turn_text),
         "the process journal could not record its tokens: " + st.error().message());
    return false;
  }
  journaled(s, *tail);
  return true;
}

Status AgentLoop::commit_journal() {
  if (!journal_) return ok_status();
  std::vector<Slot*> who;
  std::vector<JournalTail> tails;
  for (auto& [pid, s] : slots_) {
    if (!s.dirty || s.process.exit || s.sequence == 0) continue;
    auto tail = journal_tail(s, /*hold_back=*/true);
    if (!tail.ok()) {
      exit(s, ExitReason::error, trim(s.turn_text), tail.error().message());
      continue;
    }
    if (tail->empty()) {
      s.dirty = tail->held > 0;
      continue;
    }
    who.push_back(&s);
    tails.push_back(std::move(*tail));
  }
  if (who.empty()) return ok_status();
  std::vector<memory::StepAppend> step;
  for (size_t i = 0; i < who.size(); ++i)
    step.push_back({who[i]->process.pid, tails[i].tokens, tails[i].pages});
  Status st = journal_->append_step(step);
  if (!st.ok()) {
    // Nothing of this step is committed, and a process whose tokens the journal refuses could
    // not be revived where it is: it ends now, saying why, rather than run on uncommitted.
    const std::string message =
        "the process journal could not record its tokens: " + st.error().message();
    for (Slot* s : who) exit(*s, ExitReason::error, trim(s->turn_text), message);
    return st;
  }
  for (size_t i = 0; i < who.size(); ++i) journaled(*who[i], tails[i]);
  return ok_status();
}

Status AgentLoop::commit_process(Pid pid) {
  auto it = slots_.find(pid);
  if (it == slots_.end()) return make_error(Errc::not_found, "no process ", pid);
  if (it->second.process.exit) return ok_status();
  if (!commit_slot(it->second, /*hold_back=*/true))
    return make_error(Errc::io, "process ", pid, ": ", it->second.process.exit->error);
  return ok_status();
}

Result<Pid> AgentLoop::revive(Revival r) {
  if (!scheduler_) return make_error(Errc::internal, "agent loop: no scheduler attached");
  const JobSpec& job = r.job;
  const std::string what =
      r.pid != 0 ? str_cat("process ", r.pid, " ('", job.name, "')") : "job '" + job.name + "'";
  const std::vector<int32_t> prompt = ICAM_TRY_CTX(render_prompt(job), what);
  const std::vector<int32_t>& t = r.transcript;
  if (t.size() < prompt.size() || !std::equal(prompt.begin(), prompt.end(), t.begin()))
    return make_error(Errc::invalid_argument, what,
                      ": its transcript does not begin with its job's prompt (another model or "
                      "tokenizer?)");

  // Each turn's sampled tokens end where its call's result was recorded (at_token); the call's
  // tool message follows. The last result's message may be missing (the kernel stopped between
  // recording it and committing the message): it is appended now.
  // A compacted transcript: the prompt, a marker, and from context.start the kept turns, whose
  // results are those from context.calls on; the moved turns count as they did.
  const memory::JournalContext& compaction = r.context;
  if (compaction.compacted() &&
      (compaction.start < static_cast<int64_t>(prompt.size()) ||
       compaction.start > static_cast<int64_t>(t.size()) ||
       compaction.calls > static_cast<int64_t>(r.tool_results.size())))
    return make_error(Errc::corrupt, what, ": its compacted context does not fit its transcript");
  size_t pos = compaction.compacted() ? static_cast<size_t>(compaction.start) : prompt.size();
  int64_t generated = compaction.generated;
  int64_t appended = compaction.appended;
  int turns = 1 + static_cast<int>(compaction.turns);
  std::vector<Slot::Turn> kept_turns;
  std::vector<int32_t> missing;
  for (size_t i = static_cast<size_t>(compaction.calls); i < r.tool_results.size(); ++i) {
    const memory::JournalToolResult& result = r.tool_results[i];
    if (result.call_index != static_cast<int64_t>(i) || result.at_token < static_cast<int64_t>(pos) ||
        result.at_token > static_cast<int64_t>(t.size()))
      return make_error(Errc::corrupt, what, ": tool result ", i, " does not fit its transcript");
    std::vector<int32_t> message = ICAM_TRY_CTX(tool_message_tokens(result.result), what);
    const size_t at = static_cast<size_t>(result.at_token);
    generated += static_cast<int64_t>(at - pos);
    appended += static_cast<int64_t>(message.size());
    ++turns;
    kept_turns.push_back({pos, at,
                          sanitize_utf8(tokenizer_.decode(std::span<const int32_t>(t).subspan(
                              pos, at - pos))),
                          result.result});
    if (at == t.size() && i + 1 == r.tool_results.size()) {
      missing = std::move(message);
      pos = at;
      break;
    }
    if (at + message.size() > t.size() ||
        !std::equal(message.begin(), message.end(), t.begin() + static_cast<std::ptrdiff_t>(at)))
      return make_error(Errc::corrupt, what, ": the tool message of call ", i,
                        " is not where its result says");
    pos = at + message.size();
  }
  const std::vector<int32_t> turn(t.begin() + static_cast<std::ptrdiff_t>(pos), t.end());
  generated += static_cast<int64_t>(turn.size());

  Slot slot;
  Process& p = slot.process;
  p.pid = r.pid != 0 ? r.pid : next_pid_;
  p.parent = r.parent;
  p.name = job.name;
  p.owner_uid = r.owner_uid;
  p.priority = job.priority;
  p.budgets = job.budgets;
  p.tools = job.tools;
  p.sampling = job.sampling;
  // The wall-clock budget counts again from here: the time the kernel was down is not the
  // process's.
  p.started = p.state_since = Clock::now();
  p.accounting.prompt_tokens = static_cast<int64_t>(prompt.size()) + appended;
  p.accounting.generated_tokens = generated;
  p.accounting.syscalls = static_cast<int64_t>(r.tool_results.size());
  p.accounting.turns = turns;
  slot.calls = static_cast<int64_t>(r.tool_results.size());
  slot.context_limit = context_limit(job);
  slot.pinned = prompt_messages(job);
  slot.pinned_tokens = prompt.size();
  slot.compaction = compaction;
  if (compaction.compacted())  // (whether its text was archived or dropped is not journaled)
    slot.marker = context_marker(2 * compaction.turns, compaction.generated + compaction.appended,
                                 true);
  slot.turns = std::move(kept_turns);
  slot.turns.push_back({pos, 0, {}, {}});
  slot.turn_text = sanitize_utf8(tokenizer_.decode(turn));
  const size_t close = slot.turn_text.find(kToolCallClose);
  const bool unanswered_call = missing.empty() && close != std::string::npos;
  if (unanswered_call) slot.turn_text.resize(close);

  ICAM_TRY_CTX(handler_.on_spawn(p, job), what);
  auto undo = [&](Error error) {
    handler_.on_exit(p);
    return std::move(error).with_context(what);
  };
  if (constrained_tool_calls_) {
    auto filter = make_tool_filter(p.tools, handler_.external_tools(job));
    if (!filter.ok()) return undo(std::move(filter).error());
    slot.tool_filter = *filter;
    // The filter has seen what the model wrote in this turn, so a half-written call goes on
    // under the grammar.
    for (int32_t token : turn) slot.tool_filter->accept(token);
  }
  if (journal_ && !r.journaled) {
    const std::string workspace = workspace_of_ ? workspace_of_(p.pid) : std::string();
    Status st = journal_->begin_process(p.pid, journal_job(job, workspace, r.parent), p.owner_uid, t);
    for (size_t i = 0; st.ok() && i < r.tool_results.size(); ++i) {
      const memory::JournalToolResult& result = r.tool_results[i];
      // A moved turn's result has no place in the transcript any more.
      const bool moved = static_cast<int64_t>(i) < compaction.calls;
      st = journal_->record_tool_result(p.pid, static_cast<int64_t>(i), result.name,
                                        result.arguments, result.result,
                                        moved ? 0 : result.at_token);
    }
    if (st.ok() && compaction.compacted()) st = journal_->replace_context(p.pid, t, compaction, 0);
    if (!st.ok()) return undo(std::move(st).error());
  }
  slot.journaled = static_cast<int64_t>(t.size());
  if (r.journaled && !r.page_table.empty()) {
    // The journal's page table goes on from its last page (one journaled before page tables
    // were is hashed from the start at the next commit).
    slot.pages_journaled = static_cast<int64_t>(r.page_table.size());
    slot.last_page = r.page_table.back();
  }

  // What comes next: a new turn after the missing tool message, the unanswered call served, an
  // ended turn (its end was committed, its exit was not), or the turn continued.
  std::optional<std::pair<ExitReason, std::string>> ended;
  std::vector<int32_t> sequence_prompt;
  int max_tokens = 0;
  if (!missing.empty()) {
    sequence_prompt = t;
    sequence_prompt.insert(sequence_prompt.end(), missing.begin(), missing.end());
    slot.turn_start = sequence_prompt.size();
    slot.turns.back().start = slot.turn_start;
    max_tokens = turn_max_tokens(slot);
    if (max_tokens <= 0) ended.emplace(ExitReason::budget_tokens, "");
  } else if (unanswered_call) {
    slot.pending_prompt = t;
    slot.turn_start = t.size();
  } else {
    const int64_t before_turn = generated - static_cast<int64_t>(turn.size());
    const int64_t turn_max = std::clamp<int64_t>(p.budgets.tokens - before_turn, 0,
                                                 p.sampling.max_tokens);
    const int64_t remaining = turn_max - static_cast<int64_t>(turn.size());
    const auto& stops = p.sampling.stop_tokens;
    const bool stopped =
        !turn.empty() && (tokenizer_.is_end_of_generation(turn.back()) ||
                          std::find(stops.begin(), stops.end(), turn.back()) != stops.end());
    if (stopped) {
      ended.emplace(ExitReason::completed, trim(slot.turn_text));
    } else if (remaining <= 0) {
      ended.emplace(generated >= p.budgets.tokens ? ExitReason::budget_tokens
                                                  : ExitReason::completed,
                    trim(slot.turn_text));
    } else {
      sequence_prompt = t;
      slot.turn_start = t.size() - turn.size();
      max_tokens = static_cast<int>(remaining);
    }
  }
  if (!ended && !unanswered_call) {
    auto submitted = scheduler_->submit(sequence_spec(slot, std::move(sequence_prompt), max_tokens));
    if (!submitted.ok()) {
      if (journal_ && !r.journaled) {
        p.exit = ExitStatus{ExitReason::error, "", submitted.error().message()};
        p.set_state(ProcessState::exited, Clock::now());
        (void)journal_->exit(p.pid, to_json(p).dump());
      }
      return undo(std::move(submitted).error());
    }
    slot.sequence = *submitted;
  }

  next_pid_ = std::max(next_pid_, p.pid + 1);
  p.set_state(unanswered_call ? ProcessState::blocked : ProcessState::ready, Clock::now());
  const Pid pid = p.pid;
  if (slot.sequence != 0) by_sequence_[slot.sequence] = pid;
  Slot& s = slots_.emplace(pid, std::move(slot)).first->second;
  s.dirty = true;
  journal_state(s);
  if (ended) {
    exit(s, ended->first, ended->second);
  } else if (unanswered_call) {
    if (holding_calls_)
      held_calls_.push_back(pid);
    else
      serve_unanswered_call(s);
  }
  return pid;
}

void AgentLoop::release_unanswered_calls() {
  holding_calls_ = false;
  std::vector<Pid> held = std::move(held_calls_);
  held_calls_.clear();
  for (Pid pid : held) {
    auto it = slots_.find(pid);
    // It may have exited meanwhile (its parent was not revived, or ended).
    if (it == slots_.end() || it->second.process.exit) continue;
    serve_unanswered_call(it->second);
  }
}

void AgentLoop::serve_unanswered_call(Slot& s) {
  Process& p = s.process;
  auto call = extract_tool_call(s.turn_text);
  const syscalls::SyscallSpec* spec = call.ok() ? syscalls::find_syscall(call->name) : nullptr;
  const bool listed =
      call.ok() && std::find(p.tools.begin(), p.tools.end(), call->name) != p.tools.end();
  if (!spec || !listed || call->name == kToolProcExit || spec->idempotent ||
      spec->again_after_restart) {
    // Safe to serve again: nothing happened, it changes nothing more, it ends the process, or
    // what it changed did not survive the restart (SyscallSpec::again_after_restart).
    serve_tool_call(s);
    return;
  }
  // It may have run, and running it again could apply it twice: the model hears that its
  // outcome is unknown (the audit log marks its intent outcome_unknown on recovery).
  ++p.accounting.syscalls;
  s.call_name = call->name;
  s.call_arguments = call->arguments.dump();
  if (callbacks_.on_text) callbacks_.on_text(p.pid, kToolCallClose);
  resume_turn(s, tool_result_text(make_error(
                     Errc::unavailable, call->name,
                     ": outcome unknown: the kernel stopped while this call was being served; it "
                     "was not run again because it is not idempotent, and it may or may not have "
                     "taken effect")));
}

void AgentLoop::on_finish(sched::SequenceId id, sched::FinishReason reason) {
  Slot* s = slot_for(id);
  if (!s) return;
  switch (reason) {
    case sched::FinishReason::cancelled:
      exit(*s, ExitReason::cancelled, trim(s->turn_text));
      return;
    case sched::FinishReason::context_full:
      exit(*s, ExitReason::error, trim(s->turn_text), "the context is full");
      return;
    case sched::FinishReason::error: {
      std::string message = "the engine failed";
      if (auto info = scheduler_->info(id); info.ok() && !info->error.empty())
        message = info->error;
      exit(*s, ExitReason::error, trim(s->turn_text), message);
      return;
    }
    default:  // sequences are submitted with OnStop::pause, so normal ends pause instead
      exit(*s, ExitReason::completed, trim(s->turn_text));
      return;
  }
}

Status AgentLoop::cancel(Pid pid) {
  auto it = slots_.find(pid);
  if (it == slots_.end()) return make_error(Errc::not_found, "no process ", pid);
  if (it->second.process.exit)
    return make_error(Errc::invalid_argument, "process ", pid, " has already exited");
  exit(it->second, ExitReason::cancelled, trim(it->second.turn_text));
  return ok_status();
}

void AgentLoop::check_wall_budgets(Clock::time_point now) {
  for (auto& [pid, s] : slots_) {
    if (s.process.exit) continue;
    const double elapsed = std::chrono::duration<double>(now - s.process.started).count();
    if (elapsed >= s.process.budgets.wall_seconds)
      exit(s, ExitReason::budget_time, trim(s.turn_text));
  }
}

void AgentLoop::fail_all(const std::string& message) {
  for (auto& [pid, s] : slots_)
    if (!s.process.exit) exit(s, ExitReason::error, trim(s.turn_text), message);
}

Status AgentLoop::reap(Pid pid) {
  auto it = slots_.find(pid);
  if (it == slots_.end()) return make_error(Errc::not_found, "no process ", pid);
  if (!it->second.process.exit)
    return make_error(Errc::invalid_argument, "process ", pid, " has not exited");
  slots_.erase(it);
  return ok_status();
}

std::optional<sched::SequenceId> AgentLoop::sequence_of(Pid pid) const {
  auto it = slots_.find(pid);
  if (it == slots_.end() || it->second.process.exit) return std::nullopt;
  return it->second.sequence;
}

const Process* AgentLoop::process(Pid pid) const {
  auto it = slots_.find(pid);
  return it == slots_.end() ? nullptr : &it->second.process;
}

std::vector<llm::ChatMessage> AgentLoop::context_messages(Pid pid) const {
  auto it = slots_.find(pid);
  if (it == slots_.end() || it->second.process.exit) return {};
  const Slot& s = it->second;
  std::vector<llm::ChatMessage> out = s.pinned;
  if (!s.marker.empty()) out.push_back({"tool", s.marker});
  for (size_t k = 0; k < s.turns.size(); ++k) {
    const Slot::Turn& t = s.turns[k];
    if (k + 1 == s.turns.size() && t.assistant.empty()) {
      if (!s.turn_text.empty()) out.push_back({"assistant", s.turn_text});
      break;
    }
    out.push_back({"assistant", t.assistant});
    out.push_back({"tool", t.tool});
  }
  return out;
}

int64_t AgentLoop::compactions(Pid pid) const {
  auto it = slots_.find(pid);
  return it == slots_.end() ? 0 : it->second.compaction.compactions;
}

Pid AgentLoop::pid_of(sched::SequenceId id) const {
  auto it = by_sequence_.find(id);
  return it == by_sequence_.end() ? 0 : it->second;
}

std::vector<Pid> AgentLoop::pids() const {
  std::vector<Pid> out;
  for (const auto& [pid, s] : slots_) out.push_back(pid);
  return out;
}

size_t AgentLoop::live_processes() const {
  size_t n = 0;  // a revived process may have no sequence while its call is served
  for (const auto& [pid, s] : slots_)
    if (!s.process.exit) ++n;
  return n;
}

}  // namespace icam::kernel
