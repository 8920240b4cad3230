// A job description: what `icamctl run JOB.json` (and later the daemon's spawn call) asks the
// kernel to run as one agent process. The format is documented in docs/jobs.md.
//
// Parsing is strict: unknown keys are rejected, and every error names the source and the JSON
// path of the offending value, e.g. "job.json: /budgets/tokens: expected a positive integer".
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/sampling/sampling_params.h"
#include "drivers/llm/tokenizer/chat_template.h"

namespace icam::kernel {

// Resource limits of one process. Exceeding any of them ends the process with the matching exit
// reason (see process.h).
struct Budgets {
  int64_t tokens = 4096;      // generated tokens, all turns together; >= 1
  double wall_seconds = 600;  // wall-clock seconds from spawn to exit; > 0
  int64_t syscalls = 64;      // tool calls made (proc.exit excepted); >= 0
};

// The tools a job may name in "tools": the syscalls of the syscall table
// (syscalls/syscall_table.h), which is the only list of them.
inline constexpr std::string_view kToolProcExit = "proc.exit";
bool is_known_tool(std::string_view name);

// An external driver the job declares: an MCP server (or any program speaking the driver ABI,
// docs/drivers.md) that the process reaches through tool.call. Started in the same sandbox as the
// built-in drivers when the process is spawned (to list its tools for the model), kept warm,
// restarted if it died, stopped when the process exits.
struct DriverSpec {
  std::string name;  // [A-Za-z0-9_-]+, 1..64 bytes, unique in the job (no '.': see capability.h)
  // The program (an absolute path, which an exec: capability of the process must allow) and its
  // arguments.
  std::vector<std::string> command;
  // The tools the process may call, each one the driver must list; empty: every tool it lists.
  std::vector<std::string> tools;
  // Extra absolute paths the driver may read (a script, its data), bound read-only.
  std::vector<std::string> read_only;
  // Network for the driver; needs the capability net:*:* (the sandbox cannot filter by host).
  bool net = false;
  // How long one call may take before the driver is killed.
  int64_t timeout_ms = 30000;
};

inline constexpr size_t kMaxJobDrivers = 16;
inline constexpr std::string_view kToolCall = "tool.call";

struct JobSpec {
  std::string name = "job";      // a label for people; 1..128 bytes
  std::string system;            // system message; the tool instructions are appended to it
  std::string task;              // the user message; required, non-empty
  // Earlier turns of a conversation, rendered between the system message and the task: each a
  // "user" or "assistant" message, alternating and starting with "user" (icamsh sends the
  // conversation so far this way). At most kMaxHistoryMessages.
  std::vector<llm::ChatMessage> history;
  std::string model;             // GGUF path; empty = the kernel's model
  llm::SamplingParams sampling;  // validated
  int priority = 10;             // 1..100 (sched::kMinPriority..kMaxPriority)
  Budgets budgets;
  std::vector<std::string> tools;  // each is_known_tool(); no duplicates
  // Capabilities granted to the process, in the grammar of syscalls/capability.h (each parses;
  // "${workspace}" at the start of a path target stands for the process's workspace and is
  // expanded at spawn). Default: none, so every syscall but proc.exit and clock.now is denied.
  std::vector<std::string> capabilities;
  // The directory the process's files live in (fs.* paths are relative to it; the drivers run
  // there). Absolute. Empty: a per-process directory under the kernel's workspace root.
  std::string workspace;
  // External drivers, reached with tool.call (which "tools" must then list).
  std::vector<DriverSpec> drivers;
  // The context budget (docs/memory.md): when the context plus the next turn's max_tokens would
  // pass this many tokens, the agent loop moves its middle out to archival memory. 0: 3/4 of the
  // model's context length. 0 or 1..kMaxContextTokens.
  int64_t context_tokens = 0;
};

inline constexpr int64_t kMaxContextTokens = int64_t{1} << 24;

// "${workspace}": in a job's capability, the process's workspace directory.
inline constexpr std::string_view kWorkspaceVariable = "${workspace}";

inline constexpr size_t kMaxHistoryMessages = 256;

// Parses a job from a JSON value. `source` prefixes every error (a file name, or "job").
Result<JobSpec> job_from_json(const nlohmann::json& json, std::string_view source = "job");
// Parses JSON text; malformed JSON is an error naming `source` and the parser's message.
Result<JobSpec> parse_job(std::string_view text, std::string_view source = "job");
// Reads and parses a file; the error names the file.
Result<JobSpec> load_job_file(const std::string& path);

// The job as JSON in the documented format (every field written).
nlohmann::json to_json(const JobSpec& job);
// One driver declaration as the job's "drivers" holds it.
nlohmann::json to_json(const DriverSpec& driver);

}  // namespace icam::kernel
