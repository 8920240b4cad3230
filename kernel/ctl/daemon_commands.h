// What icamctl's daemon commands (ps, kill, wait, logs, top, stats, daemon) and the remote path of
// `run` share: connecting, exit statuses, and how a process record reads for people.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "kernel/client/daemon_client.h"

namespace icam::ctl {

inline constexpr int kExitBudget = 3;      // the process ran out of a budget
inline constexpr int kExitNoProcess = 4;   // no such process (or not yours)
inline constexpr int kExitNoDaemon = 5;    // no daemon answers on the socket
inline constexpr int kExitInterrupted = 130;

// Connects to the daemon at `socket` (empty: the configured socket) and checks its API version.
Result<client::DaemonClient> connect_daemon(const Config& config, const std::string& socket);

// The exit status for an error from the daemon: kExitNoDaemon, kExitNoProcess, kExitUsage for
// invalid params, kExitInterrupted, else kExitFailure. Prints the message.
int fail_with(const Error& error);

// The exit status that reflects how a process ended ("exit.reason" of its record).
int exit_status_for(const nlohmann::json& record);

// One line for stderr: "pid 3 (name): exit completed | prompt ... | 1.2 s".
std::string summary_line(const nlohmann::json& record);

// A table of process records (PID, PPID, NAME, STATE, PRIO, PROMPT, GEN, SYSC, TIME, EXIT, and
// for a blocked process what it waits on).
std::string process_table(const std::vector<nlohmann::json>& records, bool memory = false);

int cmd_ps(const Config& config, const std::vector<std::string>& args);
int cmd_kill(const Config& config, const std::vector<std::string>& args);
// approve PID [--answer TEXT] / deny PID [--reason TEXT]: answer a process's human.ask.
int cmd_answer(const Config& config, const std::vector<std::string>& args, bool approve);
int cmd_wait(const Config& config, const std::vector<std::string>& args);
int cmd_logs(const Config& config, const std::vector<std::string>& args);
int cmd_top(const Config& config, const std::vector<std::string>& args);
int cmd_stats(const Config& config, const std::vector<std::string>& args);
int cmd_caps(const Config& config, const std::vector<std::string>& args);
// checkpoint PID [--label L]: prints the checkpoint's id. restore ID | PID --label L: the new pid.
int cmd_checkpoint(const Config& config, const std::vector<std::string>& args);
int cmd_restore(const Config& config, const std::vector<std::string>& args);
int cmd_daemon(const Config& config, const std::vector<std::string>& args);

}  // namespace icam::ctl
