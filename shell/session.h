// An icamsh session: the conversation with the agent and the slash commands, over one daemon.
//
// A line that does not start with "/" is a turn of the conversation: it runs as an agent process
// whose job carries the system message and the conversation so far ("history", docs/jobs.md),
// and its output streams to the terminal. Ctrl-C during a turn kills that process (the turn is
// dropped from the conversation) and returns to the prompt; the shell itself carries on.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/client/daemon_client.h"

namespace icam::shell {

struct SessionOptions {
  std::string socket;         // the daemon's socket
  std::string system;         // the system message of every turn
  int64_t max_tokens = 512;   // per turn
  double temperature = 0;     // 0 = greedy
  int priority = 10;
};

class Session {
 public:
  // `interrupt` is set by the SIGINT handler while a turn or a wait runs.
  Session(SessionOptions options, std::atomic<bool>* interrupt);

  // Handles one input line. Returns false when the shell should exit (/quit).
  bool handle(const std::string& line);

  static std::string help();

 private:
  Result<client::DaemonClient*> client();
  void turn(const std::string& text);
  void stop_turn(uint64_t pid);
  void command(const std::string& name, const std::string& rest);
  void print_error(const Error& error);

  SessionOptions options_;
  std::atomic<bool>* interrupt_;
  std::optional<client::DaemonClient> client_;
  struct Message {
    std::string role;
    std::string content;
  };
  std::vector<Message> history_;
};

}  // namespace icam::shell
