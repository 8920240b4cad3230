// icam's side of the driver ABI: JSON-RPC 2.0 over the driver's stdin and stdout, one message
// per line, with the MCP handshake when the driver takes it and the stateless form when it does
// not.
//
// Every failure of the driver is a value: a line that is not JSON-RPC, a line over the bound,
// more output than the policy allows, no answer within the call's timeout, an exit mid-call. On
// any of them the driver is killed and reaped and the client is closed; later calls fail at once.
// One call at a time: the client is not thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/sdk/line_buffer.h"
#include "drivers/sdk/protocol.h"
#include "sandbox/driver_process.h"
#include "sandbox/launch.h"

namespace icam::sandbox {

struct DriverClientOptions {
  std::chrono::milliseconds call_timeout{10'000};      // per request, unless a call says otherwise
  std::chrono::milliseconds handshake_timeout{5'000};  // initialize
  size_t max_line_bytes = driver::kMaxLineBytes;
};

class DriverClient {
 public:
  // Launches `argv` in the sandbox and performs the handshake.
  static Result<DriverClient> start(const SandboxPolicy& policy, const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env = {},
                                    DriverClientOptions options = {});

  // Takes over an already launched driver; call initialize() before anything else.
  DriverClient(DriverProcess process, DriverClientOptions options);
  DriverClient(DriverClient&&) noexcept = default;
  DriverClient& operator=(DriverClient&&) noexcept = default;
  ~DriverClient();

  // The MCP initialize handshake. A driver that answers "method not found" is spoken to
  // statelessly (no handshake, requests only).
  Status initialize();

  Result<std::vector<driver::ToolInfo>> list_tools();
  // Calls a tool. A tool that fails returns a ToolOutput with is_error set; an error Result means
  // the call could not be made (unknown tool, bad arguments, a broken driver).
  Result<driver::ToolOutput> call_tool(const std::string& name, const nlohmann::json& arguments,
                                       std::optional<std::chrono::milliseconds> timeout = {});
  Status ping();

  // Any request; the result member of the answer, or the driver's error as an Error.
  Result<nlohmann::json> request(const std::string& method, const nlohmann::json& params,
                                 std::optional<std::chrono::milliseconds> timeout = {});

  // Closes stdin, gives the driver `grace` to exit, then kills it. Returns how it ended.
  ExitStatus shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(500));

  bool alive() const { return process_.valid() && !closed_reason_; }
  bool stateless() const { return stateless_; }
  const std::string& protocol_version() const { return protocol_version_; }
  const nlohmann::json& server_info() const { return server_info_; }
  const SandboxReport& report() const { return process_.report(); }
  const std::string& stderr_tail() const { return process_.stderr_tail(); }
  DriverProcess& process() { return process_; }

 private:
  // Sends a request and waits for the response with its id (an error response included).
  Result<driver::Message> exchange(const std::string& method, const nlohmann::json& params,
                                   std::chrono::milliseconds timeout);
  Status send_line(const std::string& line, std::chrono::steady_clock::time_point deadline);
  // Kills and reaps the driver, closes the client, and returns the error to report.
  Error fail(Errc code, const std::string& why);

  DriverProcess process_;
  DriverClientOptions options_;
  driver::LineBuffer lines_;
  uint64_t output_bytes_ = 0;
  int64_t next_id_ = 1;
  bool stateless_ = false;
  std::string protocol_version_;
  nlohmann::json server_info_;
  std::optional<std::string> closed_reason_;
};

}  // namespace icam::sandbox
