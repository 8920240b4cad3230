// icamctl's subcommands. Each takes the arguments after its name and returns the process exit
// status: 0 success, 1 the operation failed (the message says why), 2 the command line was wrong.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"

namespace icam::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

int cmd_model(const Config& config, const std::vector<std::string>& args);
int cmd_generate(const Config& config, const std::vector<std::string>& args);
int cmd_config(const Config& config, const std::vector<std::string>& args);
int cmd_devices(const Config& config, const std::vector<std::string>& args);
// Runs an agent job; also exits 3 when a budget ran out (see docs/jobs.md).
int cmd_run(const Config& config, const std::vector<std::string>& args);

// Reads the syscall audit log: tail, query, export, verify (docs/icamctl.md).
int cmd_audit(const Config& config, const std::vector<std::string>& args);

// Reads context memory's SQLite tier: the archive and the process journal (docs/icamctl.md).
int cmd_mem(const Config& config, const std::vector<std::string>& args);

// Prints "icamctl: <message>" to stderr and returns `status`.
int fail(int status, const std::string& message);

}  // namespace icam::ctl
