#include "kernel/agent_loop.h"

#include <unistd.h>

#include <algorithm>

#include "common/utf8.h"

namespace icam::kernel {
namespace {

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

Result<Pid> AgentLoop::spawn(const JobSpec& job, Pid parent, std::optional<uint32_t> owner_uid) {
  if (!scheduler_) return make_error(Errc::internal, "agent loop: no scheduler attached");
  // Tools are explained only to jobs that list some: small models tend to recite instructions
  // they do not need. proc.exit is served either way (a process may always end itself).
  std::string system = job.system;
  if (!job.tools.empty()) system += (system.empty() ? "" : "\n\n") + tool_instructions(job.tools);
  std::vector<llm::ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system});
  messages.insert(messages.end(), job.history.begin(), job.history.end());
  messages.push_back({"user", job.task});
  const std::string rendered =
      ICAM_TRY_CTX(llm::render_chat(family_, messages, true), "job '" + job.name + "'");
  std::vector<int32_t> prompt = ICAM_TRY_CTX(
      tokenizer_.encode(rendered, tokenizer_.add_bos_default(), /*parse_special=*/true),
      "job '" + job.name + "'");

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

  sched::SequenceSpec spec;
  spec.prompt = std::move(prompt);
  spec.sampling = job.sampling;
  spec.sampling.stop_strings.push_back(std::string(kToolCallClose));
  spec.sampling.max_tokens = turn_max_tokens(slot);
  spec.priority = job.priority;
  spec.stop_at_end_of_generation = true;
  spec.on_stop = sched::OnStop::pause;
  if (constrained_tool_calls_) {
    auto filter = make_tool_filter(p.tools);
    if (!filter.ok()) {
      handler_.on_exit(p);  // undo on_spawn: the process never ran
      return std::move(filter).error().with_context("job '" + job.name + "'");
    }
    slot.tool_filter = *filter;
    spec.token_filter = *filter;
  }
  auto submitted = scheduler_->submit(std::move(spec));
  if (!submitted.ok()) {
    handler_.on_exit(p);  // undo on_spawn: the process never ran
    return std::move(submitted).error().with_context("job '" + job.name + "'");
  }
  slot.sequence = *submitted;

  ++next_pid_;
  p.set_state(ProcessState::ready, Clock::now());
  by_sequence_[slot.sequence] = p.pid;
  const Pid pid = p.pid;
  slots_.emplace(pid, std::move(slot));
  return pid;
}

Result<std::shared_ptr<ToolCallFilter>> AgentLoop::make_tool_filter(
    const std::vector<std::string>& tools) {
  if (!token_bytes_) token_bytes_ = TokenBytes::build(tokenizer_);
  auto grammar = std::make_shared<const ToolCallGrammar>(ICAM_TRY(ToolCallGrammar::create(tools)));
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
  p.exit = ExitStatus{reason, std::move(answer), std::move(error)};
  p.set_state(ProcessState::exited, Clock::now());
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
  if (p.state == ProcessState::ready) p.set_state(ProcessState::running, Clock::now());
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
  for (Completion& c : completions_->drain()) {
    auto it = slots_.find(c.pid);
    if (it == slots_.end() || it->second.process.exit || it->second.waiting == 0 ||
        it->second.waiting != c.ticket) {
      ++dropped_completions_;
      continue;
    }
    Slot& s = it->second;
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
  auto text = tool_message_text(family_, tool_result);
  if (!text.ok()) {
    exit(s, ExitReason::error, "", text.error().message());
    return;
  }
  auto tokens = tokenizer_.encode(*text, /*add_bos=*/false, /*parse_special=*/true);
  if (!tokens.ok()) {
    exit(s, ExitReason::error, "", "tool message: " + tokens.error().message());
    return;
  }
  sched::Continuation next;
  next.appended = std::move(*tokens);
  llm::SamplingParams sampling = p.sampling;
  sampling.stop_strings.push_back(std::string(kToolCallClose));
  sampling.max_tokens = turn_max_tokens(s);
  next.sampling = sampling;
  const int64_t appended = static_cast<int64_t>(next.appended.size());
  if (Status st = scheduler_->resume(s.sequence, std::move(next)); !st.ok()) {
    exit(s, ExitReason::error, "", "resume after a tool call: " + st.error().message());
    return;
  }
  p.accounting.prompt_tokens += appended;
  ++p.accounting.turns;
  s.turn_text.clear();
  p.set_state(ProcessState::ready, Clock::now());
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

const Process* AgentLoop::process(Pid pid) const {
  auto it = slots_.find(pid);
  return it == slots_.end() ? nullptr : &it->second.process;
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
  return by_sequence_.size();
}

}  // namespace icam::kernel
