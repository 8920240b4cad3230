// The built-in drivers of one process: icam-driver-fs, -exec and -kv, each started in the sandbox
// on the process's first call that needs it and kept warm (a sandboxed start costs milliseconds,
// a warm call microseconds) until the process exits. A driver that died or was killed for
// misbehaving is started afresh on the next call.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/driver_client.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {

// Where the driver executables live. default_driver_dir(): the build tree's drivers/tools/ next
// to the running executable's directory (build/kernel/icamd -> build/drivers/tools/), or that
// directory itself when the drivers were installed beside it.
std::filesystem::path default_driver_dir();

class ProcessDrivers {
 public:
  // `workspace` (canonical, existing) is each driver's cwd and only writable tree;
  // `programs` are extra read-only paths for the exec driver (the programs the process may run,
  // so one outside the system paths is visible in the sandbox).
  ProcessDrivers(std::filesystem::path driver_dir, std::filesystem::path workspace,
                 std::vector<std::filesystem::path> programs);
  ProcessDrivers(const ProcessDrivers&) = delete;
  ProcessDrivers& operator=(const ProcessDrivers&) = delete;
  ~ProcessDrivers();

  // The running driver for `server` (fs, exec or kv), started now when it is not running.
  // Errors: no such executable, or the sandbox refused to start it (naming the layer).
  Result<sandbox::DriverClient*> get(syscalls::Server server);

  // Stops every running driver (stdin closed, a short grace, then killed).
  void stop_all();

  // How many drivers are running (for tests and inspection).
  size_t running() const;

 private:
  std::optional<sandbox::DriverClient>& slot(syscalls::Server server);

  std::filesystem::path driver_dir_;
  std::filesystem::path workspace_;
  std::vector<std::filesystem::path> programs_;
  std::optional<sandbox::DriverClient> fs_, exec_, kv_;
};

}  // namespace icam::kernel
