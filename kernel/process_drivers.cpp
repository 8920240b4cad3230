#include "kernel/process_drivers.h"

#include <unistd.h>

#include <system_error>

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;

// The key-value driver keeps one store per name; the kernel keeps namespaces apart in the keys
// (see syscall_dispatcher.cpp), so every process's store in its workspace has the same name.
constexpr const char* kKvStoreName = "icam";

const char* executable_name(syscalls::Server server) {
  switch (server) {
    case syscalls::Server::fs_driver:
      return "icam-driver-fs";
    case syscalls::Server::exec_driver:
      return "icam-driver-exec";
    case syscalls::Server::kv_driver:
      return "icam-driver-kv";
    case syscalls::Server::kernel:
      break;
  }
  return nullptr;
}

}  // namespace

fs::path default_driver_dir() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (error) return {};
  const fs::path dir = exe.parent_path();
  if (fs::exists(dir / "icam-driver-fs", error)) return dir;
  // Walk up: build/kernel/icamd and build/tests/kernel/x both find build/drivers/tools.
  for (fs::path up = dir; !up.empty() && up != up.root_path(); up = up.parent_path())
    if (fs::exists(up / "drivers" / "tools" / "icam-driver-fs", error))
      return up / "drivers" / "tools";
  return dir.parent_path() / "drivers" / "tools";
}

ProcessDrivers::ProcessDrivers(fs::path driver_dir, fs::path workspace,
                               std::vector<fs::path> programs)
    : driver_dir_(std::move(driver_dir)),
      workspace_(std::move(workspace)),
      programs_(std::move(programs)) {}

ProcessDrivers::~ProcessDrivers() {
  stop_all();
}

std::optional<sandbox::DriverClient>& ProcessDrivers::slot(syscalls::Server server) {
  if (server == syscalls::Server::exec_driver) return exec_;
  if (server == syscalls::Server::kv_driver) return kv_;
  return fs_;
}

Result<sandbox::DriverClient*> ProcessDrivers::get(syscalls::Server server) {
  const char* name = executable_name(server);
  if (!name) return make_error(Errc::internal, "no driver serves in-kernel syscalls");
  auto& client = slot(server);
  if (client && client->alive()) return &*client;
  client.reset();  // a dead one is reaped and started afresh

  const fs::path executable = driver_dir_ / name;
  if (::access(executable.c_str(), X_OK) != 0)
    return make_error(Errc::not_found, "driver ", executable.string(),
                      " is missing or not executable (KernelOptions::driver_dir)");
  sandbox::SandboxPolicy policy;
  policy.workspace = workspace_;
  // The driver lives as long as its process: no wall-clock limit on the driver itself (each call
  // has the syscall table's timeout).
  policy.limits.wall_timeout = std::chrono::milliseconds(0);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer reserves terabytes of address space, so an RLIMIT_AS would kill the driver.
  policy.limits.address_space_bytes = 0;
#endif
  std::vector<std::string> argv = {executable.string()};
  if (server == syscalls::Server::fs_driver) argv.push_back(workspace_.string());
  if (server == syscalls::Server::kv_driver) argv.push_back(kKvStoreName);
  if (server == syscalls::Server::exec_driver) {
    // Programs under the system paths are visible already (and a bind mount cannot be made
    // inside those read-only mounts); others are bound read-only.
    std::error_code error;
    for (const auto& p : programs_) {
      bool visible = false;
      for (const auto& system : policy.system_paths) {
        const std::string prefix = system.string() + "/";
        if (p.string().rfind(prefix, 0) == 0 || p == system) visible = true;
      }
      if (!visible && fs::exists(p, error)) policy.read_only_paths.push_back(p);
    }
  }
  client.emplace(ICAM_TRY(sandbox::DriverClient::start(policy, argv)));
  return &*client;
}

void ProcessDrivers::stop_all() {
  for (auto* client : {&fs_, &exec_, &kv_}) {
    if (*client && (*client)->alive()) (void)(*client)->shutdown(std::chrono::milliseconds(200));
    client->reset();
  }
}

size_t ProcessDrivers::running() const {
  size_t n = 0;
  for (const auto* client : {&fs_, &exec_, &kv_})
    if (*client && (*client)->alive()) ++n;
  return n;
}

}  // namespace icam::kernel
