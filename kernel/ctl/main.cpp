// icamctl: the command-line client of icam. See docs/icamctl.md.
#include <cstdio>
#include <string>
#include <vector>

#include "common/config.h"
#include "kernel/ctl/commands.h"
#include "kernel/ctl/daemon_commands.h"

namespace {

constexpr const char* kUsage =
    "usage: icamctl [--config FILE] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  model info [PATH] [--json]    describe a GGUF model (default: the configured model)\n"
    "  generate [OPTIONS]            generate text with a model (icamctl generate --help)\n"
    "  run JOB.json | --task TEXT    run an agent job (icamctl run --help; docs/jobs.md)\n"
    "  ps [--all] [--json]           list processes (needs icamd, as do the commands below)\n"
    "  kill PID...                   cancel processes\n"
    "  approve PID [--answer TEXT]   answer a process's question (human.ask): yes\n"
    "  deny PID [--reason TEXT]      answer a process's question (human.ask): no\n"
    "  caps PID [--json]             a process's capabilities and where each came from\n"
    "  checkpoint PID [--label L]    record a process in the journal; prints the checkpoint id\n"
    "  restore ID | PID --label L    start a new process from a checkpoint; prints its pid\n"
    "  wait PID [--timeout S]        wait for a process to exit; its exit status\n"
    "  logs PID [-f]                 print (and follow) a process's output\n"
    "  top [-d S] [-n N]             live view: throughput, batch, KV pool, processes\n"
    "  stats [--json]                the daemon's counters\n"
    "  daemon info|stop              what the daemon serves; drain and stop it\n"
    "  audit tail|query|export|verify  the syscall audit log (icamctl audit --help)\n"
    "  mem [archive|recall|journal]  archival memory and the process journal (icamctl mem --help)\n"
    "  config [--markdown]           show the effective configuration and where it came from\n"
    "  devices                       list CUDA devices\n"
    "\n"
    "exit status: 0 success, 1 failure, 2 bad command line, 3 a budget ran out, 4 no such\n"
    "process, 5 no daemon running, 130 interrupted (see docs/icamctl.md)\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_file;
  if (args.size() >= 2 && args[0] == "--config") {
    config_file = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? icam::ctl::kExitUsage : icam::ctl::kExitOk;
  }
  auto config = icam::load_config(config_file);
  if (!config.ok()) return icam::ctl::fail(icam::ctl::kExitFailure, config.error().message());

  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "model") return icam::ctl::cmd_model(*config, rest);
  if (command == "generate") return icam::ctl::cmd_generate(*config, rest);
  if (command == "run") return icam::ctl::cmd_run(*config, rest);
  if (command == "config") return icam::ctl::cmd_config(*config, rest);
  if (command == "audit") return icam::ctl::cmd_audit(*config, rest);
  if (command == "mem") return icam::ctl::cmd_mem(*config, rest);
  if (command == "devices") return icam::ctl::cmd_devices(*config, rest);
  if (command == "ps") return icam::ctl::cmd_ps(*config, rest);
  if (command == "kill") return icam::ctl::cmd_kill(*config, rest);
  if (command == "approve") return icam::ctl::cmd_answer(*config, rest, true);
  if (command == "deny") return icam::ctl::cmd_answer(*config, rest, false);
  if (command == "caps") return icam::ctl::cmd_caps(*config, rest);
  if (command == "checkpoint") return icam::ctl::cmd_checkpoint(*config, rest);
  if (command == "restore") return icam::ctl::cmd_restore(*config, rest);
  if (command == "wait") return icam::ctl::cmd_wait(*config, rest);
  if (command == "logs") return icam::ctl::cmd_logs(*config, rest);
  if (command == "top") return icam::ctl::cmd_top(*config, rest);
  if (command == "stats") return icam::ctl::cmd_stats(*config, rest);
  if (command == "daemon") return icam::ctl::cmd_daemon(*config, rest);
  std::fputs(kUsage, stderr);
  return icam::ctl::fail(icam::ctl::kExitUsage, "unknown command '" + command + "'");
}
