// The drivers of one process: the built-in icam-driver-fs, -exec and -kv, each started in the
// sandbox on the process's first call that needs it, and the external drivers its job declares
// (tool.call; started at spawn to list their tools). Each is kept warm (a sandboxed start costs milliseconds,
// a warm call microseconds) until the process exits. A driver that died or was killed for
// misbehaving is started afresh on the next call.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/job.h"
#include "kernel/tool_call.h"
#include "sandbox/driver_client.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {

// An external driver the process may start: its job's declaration, with the program resolved
// (canonical) once the process's exec capability was checked for it.
struct ExternalDriverSetup {
  DriverSpec spec;
  std::filesystem::path program;
};

// A running external driver and what it offers.
struct ExternalDriver {
  sandbox::DriverClient* client = nullptr;
  const DriverSpec* spec = nullptr;
  const std::vector<ExternalTool>* tools = nullptr;  // listed by it and allowed by the job
};

// Where the driver executables live. default_driver_dir(): the build tree's drivers/tools/ next
// to the running executable's directory (build/kernel/icamd -> build/drivers/tools/), or that
// directory itself when the drivers were installed beside it.
std::filesystem::path default_driver_dir();

class ProcessDrivers {
 public:
  // `workspace` (canonical, existing) is each driver's cwd and only writable tree;
  // `programs` are extra read-only paths for the exec driver (the programs the process may run,
  // so one outside the system paths is visible in the sandbox).
  // `external`: the job's external drivers (tool.call), started by external().
  ProcessDrivers(std::filesystem::path driver_dir, std::filesystem::path workspace,
                 std::vector<std::filesystem::path> programs,
                 std::vector<ExternalDriverSetup> external = {});
  ProcessDrivers(const ProcessDrivers&) = delete;
  ProcessDrivers& operator=(const ProcessDrivers&) = delete;
  ~ProcessDrivers();

  // The running driver for `server` (fs, exec or kv), started now when it is not running.
  // Errors: no such executable, or the sandbox refused to start it (naming the layer).
  Result<sandbox::DriverClient*> get(syscalls::Server server);

  // The external driver `name`, started now when it is not running: launched in the sandbox
  // (the workspace its only writable tree, its read_only paths visible, network only when its
  // declaration says so), the MCP handshake (or none, for a stateless driver), then tools/list,
  // kept until it is restarted. Errors: not declared (not_found), the sandbox refused it, the
  // handshake or the listing failed, or it does not list a tool the job allows.
  Result<ExternalDriver> external(const std::string& name);
  // The listed tools of the external drivers that have been started, in declaration order.
  std::vector<ExternalTool> external_tools() const;

  // Stops every running driver (stdin closed, a short grace, then killed).
  void stop_all();

  // How many drivers are running (for tests and inspection).
  size_t running() const;

 private:
  std::optional<sandbox::DriverClient>& slot(syscalls::Server server);

  struct External {
    ExternalDriverSetup setup;
    std::optional<sandbox::DriverClient> client;
    std::vector<ExternalTool> tools;
  };
  Status start_external(External& e);
  // Paths outside the system paths (which are visible already, and inside whose read-only
  // mounts no bind mount can be made).
  static bool under_system_paths(const sandbox::SandboxPolicy& policy,
                                 const std::filesystem::path& path);

  std::filesystem::path driver_dir_;
  std::filesystem::path workspace_;
  std::vector<std::filesystem::path> programs_;
  std::optional<sandbox::DriverClient> fs_, exec_, kv_;
  std::vector<External> external_;
};

}  // namespace icam::kernel
