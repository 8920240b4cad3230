// icamd: the icam daemon. Loads the model, starts the engine thread and serves the JSON-RPC API
// (docs/daemon-api.md) on a Unix socket until SIGTERM or SIGINT drains it. See docs/icamd.md.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/log.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "kernel/ctl/args.h"
#include "kernel/daemon/api.h"
#include "kernel/daemon/server.h"
#include "kernel/kernel.h"
#include "sandbox/cgroup.h"
#include "syscalls/syscall_table.h"

namespace {

using icam::ctl::Args;
using icam::ctl::OptionSpec;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const std::vector<OptionSpec>& specs() {
  static const std::vector<OptionSpec> s = {
      {"config", "", true, false, "configuration file (default: $ICAM_CONFIG or ~/.config/icam/config.json)"},
      {"socket", "s", true, false, "Unix socket path (default: configured socket)"},
      {"model", "m", true, false, "GGUF model to serve (default: configured model)"},
      {"backend", "", true, false, "cpu, cuda or auto (default: configured)"},
      {"threads", "", true, false, "engine worker threads (default: configured; 0 = all cores)"},
      {"policy", "", true, false, "scheduling policy: fair_share, round_robin or fifo"},
      {"quantum", "", true, false, "round-robin quantum in tokens (default 16)"},
      {"token-budget", "", true, false, "tokens fed per engine step (default 256)"},
      {"max-batch", "", true, false, "sequences per engine step (default 64)"},
      {"max-processes", "", true, false, "live processes, all users (default 256)"},
      {"max-per-user", "", true, false, "live processes per user (default 64)"},
      {"drain-seconds", "", true, false, "on SIGTERM, seconds running processes get to finish (default 30)"},
      {"audit-db", "", true, false, "the audit log of every syscall (default: $ICAM_HOME/audit.db)"},
      {"workspace-root", "", true, false, "where default process workspaces are made (default: $ICAM_HOME/workspaces)"},
      {"driver-dir", "", true, false, "the built-in drivers (default: the build's drivers/tools beside icamd)"},
      {"journal", "", true, false, "the process journal, from which a restarted icamd resumes its processes (default: $ICAM_HOME/journal.db)"},
      {"cgroup", "", true, false, "per-driver cgroup v2 limits: auto (this daemon's own cgroup when delegated to it alone), off, or a cgroup v2 directory holding no processes (default auto)"},
      {"api-markdown", "", false, false, "print the API reference (docs/daemon-api.md) and exit"},
      {"syscalls-markdown", "", false, false, "print the syscall reference (docs/syscalls.md) and exit"},
      {"help", "h", false, false, "show this help"},
  };
  return s;
}

int fail(int status, const std::string& message) {
  std::fprintf(stderr, "icamd: %s\n", message.c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace icam;
  auto args = Args::parse(std::vector<std::string>(argv + 1, argv + argc), specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamd [OPTIONS]\n\nServes agent processes on a Unix socket (JSON-RPC "
                 "2.0; docs/daemon-api.md).\nSIGTERM or SIGINT drains: running processes get "
                 "--drain-seconds to finish.\n\n"
              << ctl::usage_lines(specs());
    return kExitOk;
  }
  if (args->has("api-markdown")) {
    std::cout << daemon::api_markdown();
    return kExitOk;
  }
  if (args->has("syscalls-markdown")) {
    std::cout << syscalls::syscalls_markdown();
    return kExitOk;
  }
  if (!args->positional().empty())
    return fail(kExitUsage, "unexpected argument '" + args->positional()[0] + "'");

  auto config = load_config(args->get("config").value_or(""));
  if (!config.ok()) return fail(kExitFailure, config.error().message());

  kernel::KernelOptions options = kernel::kernel_options(*config);
  options.model_path = args->get("model").value_or(options.model_path);
  auto threads = args->get_int("threads", config->threads, 0, 1024);
  if (!threads.ok()) return fail(kExitUsage, threads.error().message());
  options.threads = static_cast<int>(*threads);
  // Every syscall of every process goes to the audit log; the file is made on the first one.
  options.audit_path = args->get("audit-db").value_or(options.audit_path);
  options.workspace_root = args->get("workspace-root").value_or(options.workspace_root);
  options.driver_dir = args->get("driver-dir").value_or("");
  // Every process is journaled as it runs; those a killed daemon left running resume here, from
  // their last committed token (docs/memory.md).
  options.journal_path = args->get("journal").value_or(options.journal_path);
  options.resume_journaled = true;
  // People answer human.ask here, with `icamctl approve` and `icamctl deny`.
  options.human_answers = true;
  const std::string backend = args->get("backend").value_or(config->backend);
  if (backend != "cpu" && backend != "cuda" && backend != "auto")
    return fail(kExitUsage, "--backend must be cpu, cuda or auto, not '" + backend + "'");
  options.backend = backend;
  if (auto policy = args->get("policy")) {
    auto kind = sched::parse_policy_kind(*policy);
    if (!kind.ok()) return fail(kExitUsage, kind.error().message());
    options.policy.kind = *kind;
  }
  auto quantum = args->get_int("quantum", options.policy.quantum, 1, 1 << 20);
  auto token_budget = args->get_int("token-budget", options.scheduler.token_budget, 1, 1 << 20);
  auto max_batch = args->get_int("max-batch", options.scheduler.max_batch, 1, 4096);
  auto max_processes = args->get_int("max-processes", 256, 1, 1 << 20);
  auto max_per_user = args->get_int("max-per-user", 64, 1, 1 << 20);
  auto drain = args->get_double("drain-seconds", 30);
  for (const auto* r : {&quantum, &token_budget, &max_batch, &max_processes, &max_per_user})
    if (!r->ok()) return fail(kExitUsage, r->error().message());
  if (!drain.ok()) return fail(kExitUsage, drain.error().message());
  if (!(*drain >= 0 && *drain <= 86400))
    return fail(kExitUsage, "--drain-seconds must be from 0 to 86400");
  options.policy.quantum = static_cast<int>(*quantum);
  options.scheduler.token_budget = static_cast<int>(*token_budget);
  options.scheduler.max_batch = static_cast<int>(*max_batch);

  // A client that goes away mid-write must not kill the daemon.
  ::signal(SIGPIPE, SIG_IGN);

  // Before any driver starts: each one then starts in a cgroup of its own under this tree.
  const std::string cgroup = args->get("cgroup").value_or("auto");
  if (Status st = sandbox::configure_driver_cgroups(cgroup); !st.ok())
    return fail(kExitFailure, st.error().message());
  if (sandbox::CgroupTree* tree = sandbox::driver_cgroups())
    log::info("icamd", "drivers start in cgroups of their own: ", tree->describe());
  else
    log::info("icamd", "no driver cgroups: ", sandbox::driver_cgroups_detail());

  auto kernel = kernel::Kernel::create(options);
  if (!kernel.ok()) return fail(kExitFailure, kernel.error().message());
  log::info("icamd", "model ", options.model_path, " loaded; audit log ", options.audit_path,
            "; process journal ", options.journal_path);

  daemon::ServerOptions server_options;
  server_options.socket_path = args->get("socket").value_or(config->socket);
  server_options.drain_seconds = *drain;
  server_options.max_processes = static_cast<size_t>(*max_processes);
  server_options.max_per_user = static_cast<size_t>(*max_per_user);
  const auto* cpu = dynamic_cast<const llm::CpuBackend*>(&(*kernel)->backend());
  server_options.info = {{"backend", std::string((*kernel)->backend().name())},
                         {"threads", cpu ? cpu->threads() : 0},
                         {"policy", sched::policy_kind_name(options.policy.kind)},
                         {"socket", server_options.socket_path}};
  auto server = daemon::Server::create(server_options, std::move(*kernel));
  if (!server.ok()) return fail(kExitFailure, server.error().message());
  // Ready: a line on stdout that scripts and tests can wait for.
  std::printf("icamd: listening on %s\n", server_options.socket_path.c_str());
  std::fflush(stdout);
  Status ran = (*server)->run();
  if (!ran.ok()) return fail(kExitFailure, ran.error().message());
  std::printf("icamd: stopped\n");
  return kExitOk;
}
