// icamctl run: runs one agent job to completion. For now the kernel runs embedded in icamctl
// (model, scheduler and agent loop in this process); once the daemon exists, run will send the
// job over its socket instead and stream the same output.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"
#include "kernel/embedded_kernel.h"
#include "kernel/job.h"

namespace icam::ctl {
namespace {

using kernel::ExitReason;

// Exit status of `run` when a budget ran out.
constexpr int kExitBudget = 3;

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
  g_interrupted.store(true);
}

const std::vector<OptionSpec>& run_specs() {
  static const std::vector<OptionSpec> specs = {
      {"task", "t", true, false, "the task (instead of a JOB.json file)"},
      {"system", "", true, false, "system message (with --task)"},
      {"name", "", true, false, "process name (with --task; default 'run')"},
      {"max-tokens", "n", true, false, "token budget (default: the job's, or 4096)"},
      {"model", "m", true, false, "GGUF model path (default: the job's, or the configured model)"},
      {"threads", "", true, false, "worker threads (default: configured, 0 = all cores)"},
      {"json", "", false, false, "print the final process record as JSON to stdout"},
      {"help", "h", false, false, "show this help"},
  };
  return specs;
}

int exit_status(ExitReason reason) {
  switch (reason) {
    case ExitReason::completed:
      return kExitOk;
    case ExitReason::budget_tokens:
    case ExitReason::budget_time:
    case ExitReason::budget_syscalls:
      return kExitBudget;
    case ExitReason::cancelled:
      return 130;
    case ExitReason::error:
      return kExitFailure;
  }
  return kExitFailure;
}

// The job from the command line: a JOB.json file, or --task with optional --system and --name.
Result<kernel::JobSpec> job_from_args(const Args& args) {
  const auto& pos = args.positional();
  kernel::JobSpec job;
  if (args.has("task")) {
    if (!pos.empty())
      return make_error(Errc::invalid_argument, "give either JOB.json or --task, not both");
    job.name = args.get("name").value_or("run");
    job.task = *args.get("task");
    if (job.task.empty()) return make_error(Errc::invalid_argument, "--task is empty");
    job.system = args.get("system").value_or("");
  } else {
    if (pos.size() != 1)
      return make_error(Errc::invalid_argument, "usage: icamctl run JOB.json | --task TEXT");
    if (args.has("system") || args.has("name"))
      return make_error(Errc::invalid_argument, "--system and --name go with --task");
    job = ICAM_TRY(kernel::load_job_file(pos[0]));
  }
  if (args.has("max-tokens"))
    job.budgets.tokens = ICAM_TRY(args.get_int("max-tokens", 0, 1, INT64_MAX));
  if (auto m = args.get("model")) job.model = *m;
  return job;
}

}  // namespace

int cmd_run(const Config& config, const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, run_specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamctl run JOB.json [OPTIONS]\n"
              << "       icamctl run --task TEXT [--system TEXT] [OPTIONS]\n\n"
              << "Runs one agent process (embedded kernel) and streams its text to stdout; a\n"
              << "summary line goes to stderr. See docs/jobs.md.\n"
              << "exit status: 0 completed, 1 error, 2 bad command line or job, 3 a budget ran "
                 "out\n\n"
              << usage_lines(run_specs());
    return kExitOk;
  }
  auto job = job_from_args(*args);
  if (!job.ok()) return fail(kExitUsage, job.error().message());
  auto threads = args->get_int("threads", config.threads, 0, 1024);
  if (!threads.ok()) return fail(kExitUsage, threads.error().message());
  const bool as_json = args->has("json");

  kernel::EmbeddedOptions options;
  options.model_path = job->model.empty() ? config.model : job->model;
  options.threads = static_cast<int>(*threads);
  options.kv_pool_bytes = config.kv_pool_bytes;
  auto kernel = kernel::EmbeddedKernel::create(options);
  if (!kernel.ok()) return fail(kExitFailure, kernel.error().message());
  auto pid = (*kernel)->spawn(*job);
  if (!pid.ok()) return fail(kExitFailure, pid.error().message());

  g_interrupted.store(false);
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigaction(SIGINT, &action, nullptr);

  kernel::AgentCallbacks callbacks;
  callbacks.on_text = [&](kernel::Pid, std::string_view text) {
    if (!as_json) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    // Cancelling from a callback is allowed; the loop then finds nothing runnable.
    if (g_interrupted.load()) (void)(*kernel)->cancel(*pid);
  };
  Status ran = (*kernel)->run_until_idle(callbacks);
  const kernel::Process* p = (*kernel)->process(*pid);
  if (!p || !p->exit) return fail(kExitFailure, "the process did not exit (a kernel bug)");
  if (as_json) {
    std::cout << kernel::to_json(*p).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::fputs("\n", stdout);
  }
  const double running =
      p->accounting.state_seconds[static_cast<size_t>(kernel::ProcessState::running)];
  const double tps =
      running > 0 ? static_cast<double>(p->accounting.generated_tokens) / running : 0;
  std::fprintf(stderr,
               "pid %llu (%s): exit %s | prompt %lld tokens, generated %lld tokens, %.1f tokens/s "
               "| %d turns, %lld syscalls | %.2f s\n",
               static_cast<unsigned long long>(p->pid), p->name.c_str(),
               std::string(kernel::exit_reason_name(p->exit->reason)).c_str(),
               static_cast<long long>(p->accounting.prompt_tokens),
               static_cast<long long>(p->accounting.generated_tokens), tps, p->accounting.turns,
               static_cast<long long>(p->accounting.syscalls), p->accounting.wall_seconds());
  if (!p->exit->error.empty()) std::fprintf(stderr, "icamctl: %s\n", p->exit->error.c_str());
  if (!ran.ok()) return fail(kExitFailure, ran.error().message());
  return exit_status(p->exit->reason);
}

}  // namespace icam::ctl
