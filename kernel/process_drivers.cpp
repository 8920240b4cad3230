#include "kernel/process_drivers.h"

#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "syscalls/arg_schema.h"

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
    case syscalls::Server::external:  // the job names an external driver's program itself
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
                               std::vector<fs::path> programs,
                               std::vector<ExternalDriverSetup> external)
    : driver_dir_(std::move(driver_dir)),
      workspace_(std::move(workspace)),
      programs_(std::move(programs)) {
  for (auto& setup : external) external_.push_back(External{std::move(setup), {}, {}});
}

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
    for (const auto& p : programs_)
      if (!under_system_paths(policy, p) && fs::exists(p, error))
        policy.read_only_paths.push_back(p);
  }
  client.emplace(ICAM_TRY(sandbox::DriverClient::start(policy, argv)));
  return &*client;
}

bool ProcessDrivers::under_system_paths(const sandbox::SandboxPolicy& policy,
                                        const fs::path& path) {
  for (const auto& system : policy.system_paths)
    if (path == system || path.string().rfind(system.string() + "/", 0) == 0) return true;
  return false;
}

Result<ExternalDriver> ProcessDrivers::external(const std::string& name) {
  for (External& e : external_) {
    if (e.setup.spec.name != name) continue;
    if (!e.client || !e.client->alive()) {
      e.client.reset();  // a dead one is reaped and started afresh, and listed again
      e.tools.clear();
      ICAM_TRY_CTX(start_external(e), "driver '" + name + "'");
    }
    return ExternalDriver{&*e.client, &e.setup.spec, &e.tools};
  }
  return make_error(Errc::not_found, "unknown driver '", name, "'");
}

Status ProcessDrivers::start_external(External& e) {
  const DriverSpec& spec = e.setup.spec;
  sandbox::SandboxPolicy policy;
  policy.workspace = workspace_;
  policy.allow_net = spec.net;  // the dispatcher allowed it only with net:*:*
  // As the built-in drivers: it lives as long as its process; each call has its own timeout.
  policy.limits.wall_timeout = std::chrono::milliseconds(0);
#if defined(__SANITIZE_ADDRESS__)
  policy.limits.address_space_bytes = 0;
#endif
  for (const auto& p : spec.read_only) {
    std::error_code error;
    const fs::path path = fs::canonical(p, error);
    if (error) return make_error(Errc::not_found, "read_only path ", p, ": ", error.message());
    if (!under_system_paths(policy, path)) policy.read_only_paths.push_back(path);
  }
  // The program as it was checked against the exec capability, not the path as written (a link
  // changed since cannot redirect it). launch_sandboxed makes it visible.
  std::vector<std::string> argv = spec.command;
  argv[0] = e.setup.program.string();
  sandbox::DriverClientOptions options;
  options.call_timeout = std::chrono::milliseconds(spec.timeout_ms);
  sandbox::DriverClient client = ICAM_TRY(sandbox::DriverClient::start(policy, argv, {}, options));

  std::vector<driver::ToolInfo> listed = ICAM_TRY_CTX(client.list_tools(), "tools/list");
  std::vector<ExternalTool> tools;
  auto allowed = [&](const std::string& tool) {
    return spec.tools.empty() ||
           std::find(spec.tools.begin(), spec.tools.end(), tool) != spec.tools.end();
  };
  for (const auto& info : listed) {
    if (!allowed(info.name)) continue;
    ExternalTool tool{spec.name, info.name, info.description, nullptr};
    // Checked against its schema only when the whole schema is understood (and is an object's).
    auto checked = syscalls::supported_schema(info.input_schema);
    if (checked.ok() && checked->value("type", "") == "object") tool.checked_schema = *checked;
    tools.push_back(std::move(tool));
  }
  for (const auto& wanted : spec.tools) {
    const bool found = std::any_of(tools.begin(), tools.end(),
                                   [&](const ExternalTool& t) { return t.name == wanted; });
    if (found) continue;
    std::string names;
    for (const auto& info : listed) names += (names.empty() ? "" : ", ") + info.name;
    (void)client.shutdown(std::chrono::milliseconds(200));
    return make_error(Errc::not_found, "does not list the tool '", wanted,
                      "' the job allows (it lists: ", names.empty() ? "none" : names, ")");
  }
  e.client.emplace(std::move(client));
  e.tools = std::move(tools);
  return ok_status();
}

std::vector<ExternalTool> ProcessDrivers::external_tools() const {
  std::vector<ExternalTool> out;
  for (const External& e : external_) out.insert(out.end(), e.tools.begin(), e.tools.end());
  return out;
}

void ProcessDrivers::stop_all() {
  for (auto* client : {&fs_, &exec_, &kv_}) {
    if (*client && (*client)->alive()) (void)(*client)->shutdown(std::chrono::milliseconds(200));
    client->reset();
  }
  for (External& e : external_) {
    if (e.client && e.client->alive()) (void)e.client->shutdown(std::chrono::milliseconds(200));
    e.client.reset();
  }
}

size_t ProcessDrivers::running() const {
  size_t n = 0;
  for (const auto* client : {&fs_, &exec_, &kv_})
    if (*client && (*client)->alive()) ++n;
  for (const External& e : external_)
    if (e.client && e.client->alive()) ++n;
  return n;
}

}  // namespace icam::kernel
