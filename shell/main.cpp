// icamsh: the interactive agent shell. Talks to the daemon (icamd) on its socket; with no daemon
// running it starts one inside the shell for the session. See docs/icamsh.md.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "common/config.h"
#include "kernel/client/daemon_client.h"
#include "kernel/ctl/args.h"
#include "kernel/daemon/server.h"
#include "kernel/kernel.h"
#include "shell/line_editor.h"
#include "shell/session.h"

namespace {

using icam::ctl::Args;
using icam::ctl::OptionSpec;

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
  g_interrupted.store(true);
}

const std::vector<OptionSpec>& specs() {
  static const std::vector<OptionSpec> s = {
      {"config", "", true, false, "configuration file"},
      {"socket", "", true, false, "daemon socket (default: configured socket)"},
      {"system", "", true, false, "system message for the conversation"},
      {"max-tokens", "n", true, false, "tokens per answer at most (default 512)"},
      {"temperature", "t", true, false, "sampling temperature (default 0: greedy)"},
      {"model", "m", true, false, "model for the shell's own kernel when no daemon runs"},
      {"threads", "", true, false, "engine threads for the shell's own kernel"},
      {"help", "h", false, false, "show this help"},
  };
  return s;
}

int fail(int status, const std::string& message) {
  std::fprintf(stderr, "icamsh: %s\n", message.c_str());
  return status;
}

// The shell's own daemon, on a private socket, for sessions without icamd.
struct EmbeddedDaemon {
  std::unique_ptr<icam::daemon::Server> server;
  std::thread thread;
  std::string dir;
  ~EmbeddedDaemon() {
    if (server) server->request_shutdown();
    if (thread.joinable()) thread.join();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace icam;
  auto args = Args::parse(std::vector<std::string>(argv + 1, argv + argc), specs());
  if (!args.ok()) return fail(2, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamsh [OPTIONS]\n\nAn interactive agent shell: type to talk to an agent, "
                 "/help for commands.\n\n"
              << ctl::usage_lines(specs());
    return 0;
  }
  auto config = load_config(args->get("config").value_or(""));
  if (!config.ok()) return fail(1, config.error().message());

  shell::SessionOptions options;
  options.socket = args->get("socket").value_or(config->socket);
  options.system = args->get("system").value_or("");
  auto max_tokens = args->get_int("max-tokens", 512, 1, 1 << 30);
  if (!max_tokens.ok()) return fail(2, max_tokens.error().message());
  options.max_tokens = *max_tokens;
  auto temperature = args->get_double("temperature", 0);
  if (!temperature.ok() || *temperature < 0 || *temperature > 100)
    return fail(2, "--temperature: expected a number from 0 to 100");
  options.temperature = *temperature;

  ::signal(SIGPIPE, SIG_IGN);
  EmbeddedDaemon embedded;
  auto probe = client::DaemonClient::connect(options.socket);
  if (!probe.ok() && probe.error().code() != Errc::unavailable) return fail(1, probe.error().message());
  if (!probe.ok()) {
    // Audited and with workspaces where icamd's would be, so `icamctl audit` sees them too.
    kernel::KernelOptions k = kernel::kernel_options(*config);
    k.human_answers = true;  // the shell's /approve and /deny answer human.ask
    // The shell's own kernel keeps no journal: its processes end with the shell, and a later
    // icamd must not resume conversations nobody is attached to.
    k.journal_path.clear();
    k.model_path = args->get("model").value_or(k.model_path);
    auto threads = args->get_int("threads", config->threads, 0, 1024);
    if (!threads.ok()) return fail(2, threads.error().message());
    k.threads = static_cast<int>(*threads);
    auto kernel = kernel::Kernel::create(k);
    if (!kernel.ok()) return fail(1, kernel.error().message());
    embedded.dir = (std::filesystem::temp_directory_path() /
                    ("icamsh-" + std::to_string(::getpid())))
                       .string();
    daemon::ServerOptions so;
    so.socket_path = embedded.dir + "/icamd.sock";
    so.drain_seconds = 0;
    so.info = {{"backend", "cpu"}, {"embedded_in", "icamsh"}};
    auto server = daemon::Server::create(so, std::move(*kernel));
    if (!server.ok()) return fail(1, server.error().message());
    embedded.server = std::move(*server);
    embedded.thread = std::thread([&] { (void)embedded.server->run(); });
    options.socket = so.socket_path;
    std::cout << "icamsh: no daemon at " << args->get("socket").value_or(config->socket)
              << "; running a kernel inside the shell (" << k.model_path << ")\n";
  }

  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigaction(SIGINT, &action, nullptr);

  std::string history_file;
  if (!config->home.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config->home, ec);
    if (!ec) history_file = config->home + "/icamsh_history";
  }
  shell::LineEditor editor(history_file);
  shell::Session session(options, &g_interrupted);
  std::cout << "icamsh: talk to the agent, /help for commands, Ctrl-D to leave\n" << std::flush;
  while (true) {
    // A Ctrl-C that stopped the last command is spent; one pressed from here on (even between
    // Enter and the start of the turn) stops what the line starts.
    g_interrupted.store(false);
    auto input = editor.read("icam> ");
    if (input.outcome == shell::LineEditor::Outcome::end_of_input) break;
    editor.add_history(input.text);
    if (!session.handle(input.text)) break;
  }
  return 0;
}
