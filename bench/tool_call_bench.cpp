// Tool calls on a real model, decoded under the tool-call grammar and without it: how many of the
// calls the model opens are well formed (they parse, name a tool the job lists, and their
// arguments pass the syscall table's checks), and what the grammar costs in tokens per second.
// The same jobs run twice in one kernel configuration, greedy, so the two runs differ only by
// the constraint; the calls are served for real (sandboxed drivers, an audit log in DIR).
//
//   build/bench/tool_call_bench [--model PATH] [--dir DIR] [--max-tokens N] [--threads N]
//                               [--repetition-penalty X]
//
// ICAM_BENCH_SHOW=1 prints each process's text.
//
// The model defaults to the configured one (the default model after scripts/fetch-model).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "kernel/kernel.h"
#include "kernel/tool_call.h"
#include "syscalls/syscall_table.h"

namespace {

namespace fs = std::filesystem;
using icam::kernel::Pid;

// Tasks that invite a tool call, each with the tools that can serve it.
const std::vector<std::string> kTasks = {
    "What time is it now? Use the clock.",
    "Save the text 'hello world' in the file notes.txt.",
    "Read the file todo.txt and tell me what it says.",
    "List the files in the workspace.",
    "Remember the number 42 under the key 'answer' in the namespace 'facts'.",
    "Run /bin/date and tell me the output.",
    "Write a haiku about the sea into poem.txt.",
    "Check how big the file todo.txt is.",
};
const std::vector<std::string> kTools = {"clock.now", "fs.read", "fs.write", "fs.list",
                                         "fs.stat",   "kv.put",  "kv.get",   "exec.run"};

struct Tally {
  int opened = 0;       // "<tool_call>" written
  int closed = 0;       // ... and closed
  int well_formed = 0;  // ... and parsed, listed and valid
  int64_t tokens = 0;
  double seconds = 0;
  double sample_ms_per_token = 0;  // the scheduler's sampling time (the filter's cost is in it)
};

// Counts the calls in one process's text (the kernel streams each call's closing tag).
void count_calls(std::string_view text, const std::vector<std::string>& tools, Tally& t) {
  using icam::kernel::kToolCallClose;
  using icam::kernel::kToolCallOpen;
  size_t at = 0;
  while ((at = text.find(kToolCallOpen, at)) != std::string_view::npos) {
    ++t.opened;
    const size_t body = at + kToolCallOpen.size();
    const size_t end = text.find(kToolCallClose, body);
    if (end == std::string_view::npos) break;
    ++t.closed;
    auto call = icam::kernel::parse_tool_call(text.substr(body, end - body));
    at = end + kToolCallClose.size();
    if (!call.ok()) continue;
    const bool listed = call->name == icam::syscalls::kSyscallProcExit ||
                        std::find(tools.begin(), tools.end(), call->name) != tools.end();
    const icam::syscalls::SyscallSpec* spec = icam::syscalls::find_syscall(call->name);
    if (listed && spec &&
        icam::syscalls::validate_syscall_arguments(*spec, call->arguments).ok())
      ++t.well_formed;
  }
}

Tally run(icam::kernel::KernelOptions options, bool constrained, int max_tokens,
          float repetition_penalty) {
  options.constrained_tool_calls = constrained;
  auto kernel = icam::kernel::Kernel::create(options);
  if (!kernel.ok()) {
    std::fprintf(stderr, "tool_call_bench: %s\n", kernel.error().message().c_str());
    std::exit(1);
  }
  std::map<Pid, std::string> texts;
  for (size_t i = 0; i < kTasks.size(); ++i) {
    icam::kernel::JobSpec job;
    job.name = "tools-" + std::to_string(i);
    job.system = "You are an agent that acts through tools. Call a tool when the task needs one.";
    job.task = kTasks[i];
    job.tools = kTools;
    job.capabilities = {"fs.read:${workspace}/**", "fs.write:${workspace}/**", "kv:facts",
                        "exec:/bin/date"};
    job.sampling.temperature = 0.0f;
    job.sampling.repetition_penalty = repetition_penalty;
    job.sampling.max_tokens = max_tokens;
    job.budgets.tokens = max_tokens * 3;
    job.budgets.syscalls = 4;
    auto pid = (*kernel)->spawn(job);
    if (!pid.ok()) {
      std::fprintf(stderr, "tool_call_bench: %s\n", pid.error().message().c_str());
      std::exit(1);
    }
    texts[*pid];
  }
  icam::kernel::AgentCallbacks callbacks;
  callbacks.on_text = [&](Pid pid, std::string_view text) { texts[pid] += text; };
  const auto start = std::chrono::steady_clock::now();
  if (auto st = (*kernel)->run_until_idle(callbacks); !st.ok()) {
    std::fprintf(stderr, "tool_call_bench: %s\n", st.error().message().c_str());
    std::exit(1);
  }
  Tally t;
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& [pid, text] : texts) {
    if (std::getenv("ICAM_BENCH_SHOW"))
      std::printf("--- pid %d (%s)\n%s\n", static_cast<int>(pid),
                  constrained ? "constrained" : "free", text.c_str());
    count_calls(text, kTools, t);
    if (const auto* p = (*kernel)->process(pid)) t.tokens += p->accounting.generated_tokens;
  }
  const auto& stats = (*kernel)->scheduler().stats();
  if (stats.sampled_tokens > 0)
    t.sample_ms_per_token = 1000.0 * stats.sample_seconds / stats.sampled_tokens;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  auto config = icam::load_config();
  if (!config.ok()) {
    std::fprintf(stderr, "tool_call_bench: %s\n", config.error().message().c_str());
    return 1;
  }
  icam::kernel::KernelOptions options = icam::kernel::kernel_options(*config);
  fs::path dir = fs::temp_directory_path() / ("icam-tool-call-bench-" + std::to_string(getpid()));
  int max_tokens = 96;
  float repetition_penalty = 1.0f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") options.model_path = argv[i + 1];
    else if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--max-tokens") max_tokens = std::atoi(argv[i + 1]);
    else if (flag == "--threads") options.threads = std::atoi(argv[i + 1]);
    else if (flag == "--repetition-penalty") repetition_penalty = std::strtof(argv[i + 1], nullptr);
    else {
      std::fprintf(stderr, "usage: tool_call_bench [--model PATH] [--dir DIR] [--max-tokens N] "
                           "[--threads N] [--repetition-penalty X]\n");
      return 2;
    }
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  options.audit_path = (dir / "audit.db").string();
  options.workspace_root = (dir / "workspaces").string();
  std::printf("model %s, %zu jobs, greedy, repetition penalty %.2f, at most %d tokens a turn\n",
              options.model_path.c_str(), kTasks.size(), repetition_penalty, max_tokens);
  const Tally free = run(options, false, max_tokens, repetition_penalty);
  const Tally constrained = run(options, true, max_tokens, repetition_penalty);
  auto line = [](const char* name, const Tally& t) {
    std::printf("%-12s calls opened %2d, closed %2d, well formed %2d (%3.0f%% of opened); "
                "%lld tokens, %.1f tok/s, sampling %.3f ms/token\n",
                name, t.opened, t.closed, t.well_formed,
                t.opened ? 100.0 * t.well_formed / t.opened : 0.0,
                static_cast<long long>(t.tokens), t.tokens / t.seconds, t.sample_ms_per_token);
  };
  line("free", free);
  line("constrained", constrained);
  std::printf("constrained / free tok/s: %.2f\n",
              (constrained.tokens / constrained.seconds) / (free.tokens / free.seconds));
  fs::remove_all(dir, ec);
  return 0;
}
