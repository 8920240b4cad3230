// Scripted model text for kernel tests: stands between the scheduler and the agent loop
// (KernelOptions::events_tap) and, each time a turn of a process with a script ends on its
// per-turn max_tokens, delivers the next line of that process's script as if the model had written
// it, followed by a pause on the "</tool_call>" stop string. The sequence really is paused, so the
// loop's blocking, resuming and exiting run for real; only what the tiny model says is replaced.
// Processes are matched by name; those without a script run as the model makes them.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "kernel/agent_loop.h"
#include "sched/events.h"

namespace icam::kernel::testing {

using Scripts = std::map<std::string, std::deque<std::string>>;

class ScriptedEvents : public sched::SchedulerEvents {
 public:
  ScriptedEvents(AgentLoop& loop, Scripts scripts) : loop_(loop), scripts_(std::move(scripts)) {}

  void on_token(sched::SequenceId id, const llm::SampleResult& s, std::string_view text) override {
    loop_.on_token(id, s, text);
  }
  void on_pause(sched::SequenceId id, sched::FinishReason reason) override {
    std::deque<std::string>* script = script_of(id);
    if (reason != sched::FinishReason::max_tokens || !script || script->empty()) {
      loop_.on_pause(id, reason);
      return;
    }
    const std::string text = script->front();
    script->pop_front();
    loop_.on_token(id, llm::SampleResult{}, text);
    loop_.on_pause(id, sched::FinishReason::stop_string);
  }
  void on_finish(sched::SequenceId id, sched::FinishReason reason) override {
    loop_.on_finish(id, reason);
  }

  // A tap for KernelOptions::events_tap.
  static std::function<std::unique_ptr<sched::SchedulerEvents>(AgentLoop&)> tap(Scripts scripts) {
    return [scripts = std::move(scripts)](AgentLoop& loop) {
      return std::make_unique<ScriptedEvents>(loop, scripts);
    };
  }

 private:
  std::deque<std::string>* script_of(sched::SequenceId id) {
    const Process* p = loop_.process(loop_.pid_of(id));
    if (!p) return nullptr;
    auto it = scripts_.find(p->name);
    return it == scripts_.end() ? nullptr : &it->second;
  }

  AgentLoop& loop_;
  Scripts scripts_;
};

// A tool call line for a script.
inline std::string tool_call(const std::string& name, const nlohmann::json& arguments) {
  return "<tool_call>" + nlohmann::json{{"name", name}, {"arguments", arguments}}.dump();
}

}  // namespace icam::kernel::testing
