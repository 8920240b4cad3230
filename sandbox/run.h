// Running a program in the sandbox to completion: for one-shot commands and for tests that need
// a program's whole output and how it ended.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/driver_process.h"
#include "sandbox/policy.h"

namespace icam::sandbox {

struct SandboxRun {
  ExitStatus exit;
  std::string stdout_text;  // at most limits.output_bytes
  std::string stderr_tail;  // the last limits.stderr_bytes
  bool timed_out = false;   // killed at the timeout
  bool output_truncated = false;  // killed for writing more than limits.output_bytes
  SandboxReport report;
};

// Launches `argv`, writes `input` to its stdin and closes it, collects stdout and stderr until the
// program exits or `timeout` passes (then kills it), and reaps it. An error means it could not be
// started.
Result<SandboxRun> run_sandboxed(const SandboxPolicy& policy, const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env = {},
                                 const std::string& input = {},
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace icam::sandbox
