// icamctl run: runs one agent job to completion. When a daemon answers on the socket the job is
// sent to it (proc.run) and its output streamed back (proc.logs with follow); otherwise, or with
// --embedded, the kernel runs inside icamctl (model, scheduler and agent loop in this process).
// Either way the output, the summary line and the exit status are the same.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"
#include "kernel/ctl/daemon_commands.h"
#include "kernel/job.h"
#include "kernel/kernel.h"

namespace icam::ctl {
namespace {

using kernel::ExitReason;
using nlohmann::json;

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
      {"embedded", "", false, false, "run in this process even when a daemon is running"},
      {"detach", "d", false, false, "with a daemon: print the pid and return at once"},
      {"socket", "", true, false, "daemon socket (default: configured socket)"},
      {"audit-db", "", true, false, "embedded: the audit log of its syscalls (default: $ICAM_HOME/audit.db)"},
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
      return kExitInterrupted;
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

// Runs the job on the daemon behind `c`: the same output and exit status as an embedded run.
int run_on_daemon(client::DaemonClient& c, const Config& config, const std::string& socket,
                  const kernel::JobSpec& job, bool as_json, bool detach) {
  // Attached, a Ctrl-C from here on stops the process. The spawn itself is not interrupted (the
  // reply carries the pid to stop); a Ctrl-C during it is noticed once following starts.
  g_interrupted.store(false);
  if (!detach) {
    struct sigaction action {};
    action.sa_handler = on_sigint;
    sigaction(SIGINT, &action, nullptr);
  }
  auto spawned = c.call("proc.run", {{"job", kernel::to_json(job)}});
  if (!spawned.ok()) return fail_with(spawned.error());
  const uint64_t pid = (*spawned)["pid"].get<uint64_t>();
  if (detach) {
    std::cout << pid << "\n";
    return kExitOk;
  }
  c.set_interrupt(&g_interrupted);
  auto followed = c.call_streaming(
      "proc.logs", {{"pid", pid}, {"follow", true}},
      [as_json](const std::string& method, const json& params) {
        if (as_json || method != "proc.output") return;
        const std::string text = params.value("text", "");
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      });
  json record;
  if (followed.ok()) {
    record = (*followed)["process"];
  } else if (followed.error().code() == Errc::cancelled) {
    // Ctrl-C: the process is ours to stop. The interrupted connection is closed; use a new one.
    auto again = connect_daemon(config, socket);
    if (!again.ok()) return fail_with(again.error());
    auto killed = again->call("proc.kill", {{"pid", pid}});
    if (!killed.ok() && killed.error().code() != Errc::invalid_argument)
      return fail_with(killed.error());
    auto waited = again->call("proc.wait", {{"pid", pid}});
    if (!waited.ok()) return fail_with(waited.error());
    record = (*waited)["process"];
  } else {
    return fail_with(followed.error());
  }
  if (as_json) {
    std::cout << record.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::fputs("\n", stdout);
  }
  std::fflush(stdout);  // the text before the summary, also when both go to one file
  std::fprintf(stderr, "%s\n", summary_line(record).c_str());
  return exit_status_for(record);
}

}  // namespace

int cmd_run(const Config& config, const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, run_specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamctl run JOB.json [OPTIONS]\n"
              << "       icamctl run --task TEXT [--system TEXT] [OPTIONS]\n\n"
              << "Runs one agent process and streams its text to stdout; a summary line goes to\n"
              << "stderr. The job runs on the daemon when one is running, else in this process.\n"
              << "See docs/jobs.md.\n"
              << "exit status: 0 completed, 1 error, 2 bad command line or job, 3 a budget ran "
                 "out,\n5 --detach without a daemon, 130 interrupted (the process is killed)\n\n"
              << usage_lines(run_specs());
    return kExitOk;
  }
  auto job = job_from_args(*args);
  if (!job.ok()) return fail(kExitUsage, job.error().message());
  auto threads = args->get_int("threads", config.threads, 0, 1024);
  if (!threads.ok()) return fail(kExitUsage, threads.error().message());
  const bool as_json = args->has("json");
  const std::string socket = args->get("socket").value_or("");

  if (!args->has("embedded")) {
    auto c = connect_daemon(config, socket);
    if (c.ok()) return run_on_daemon(*c, config, socket, *job, as_json, args->has("detach"));
    // No daemon: run embedded. Any other failure (permissions, versions) is reported.
    if (c.error().code() != Errc::unavailable) return fail_with(c.error());
  }
  if (args->has("detach")) return fail(kExitNoDaemon, "--detach needs a running daemon");

  kernel::KernelOptions options = kernel::kernel_options(config);
  if (!job->model.empty()) options.model_path = job->model;
  options.threads = static_cast<int>(*threads);
  if (auto db = args->get("audit-db")) options.audit_path = *db;
  // A foreground run keeps no journal: nobody would be there to see it resumed, and a daemon
  // started later must not take it over.
  options.journal_path.clear();
  auto kernel = kernel::Kernel::create(options);
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
  std::fflush(stdout);  // the text before the summary, also when both go to one file
  std::fprintf(stderr, "%s\n", summary_line(kernel::to_json(*p)).c_str());
  if (!ran.ok()) return fail(kExitFailure, ran.error().message());
  return exit_status(p->exit->reason);
}

}  // namespace icam::ctl
