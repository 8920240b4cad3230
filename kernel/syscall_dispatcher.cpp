#include "kernel/syscall_dispatcher.h"

#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <system_error>

#include "common/log.h"
#include "kernel/audit/audit_record.h"
#include "syscalls/capability.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using syscalls::Server;
using syscalls::SideEffectClass;
using syscalls::SyscallSpec;
using syscalls::TargetRule;

audit::SideEffect audit_side_effect(SideEffectClass effect) {
  switch (effect) {
    case SideEffectClass::pure:
    case SideEffectClass::read:
      return audit::SideEffect::none;
    case SideEffectClass::write:
      return audit::SideEffect::reversible;
    case SideEffectClass::irreversible:
      return audit::SideEffect::irreversible;
  }
  return audit::SideEffect::irreversible;
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Replaces every "${workspace}" in a capability with the workspace's path.
std::string expand_workspace(std::string text, const fs::path& workspace) {
  for (size_t at = text.find(kWorkspaceVariable); at != std::string::npos;
       at = text.find(kWorkspaceVariable, at)) {
    text.replace(at, kWorkspaceVariable.size(), workspace.string());
    at += workspace.string().size();
  }
  return text;
}

bool needs_workspace(const JobSpec& job) {
  if (!job.workspace.empty()) return true;
  for (const auto& c : job.capabilities)
    if (c.find(kWorkspaceVariable) != std::string::npos) return true;
  for (const auto& t : job.tools) {
    const SyscallSpec* spec = syscalls::find_syscall(t);
    if (spec && spec->server != Server::kernel) return true;
  }
  return false;
}

// A fresh directory under `root` whose name starts with the pid: pids restart at 1 with every
// embedded kernel, so the name alone would hand a new process an old one's files.
Result<fs::path> make_default_workspace(const fs::path& root, Pid pid) {
  std::error_code error;
  fs::create_directories(root, error);
  if (error) return make_error(Errc::io, "workspace root ", root.string(), ": ", error.message());
  std::string pattern = (root / (std::to_string(pid) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr)
    return make_error(Errc::io, "workspace under ", root.string(), ": ",
                      std::error_code(errno, std::generic_category()).message());
  return fs::path(pattern);
}

json clock_now() {
  const auto now = std::chrono::system_clock::now();
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::string utc = syscalls::format_utc(ms / 1000);  // "YYYY-MM-DDTHH:MM:SSZ"
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms % 1000));
  utc.pop_back();
  return json{{"unix_ms", ms}, {"utc", utc + millis}};
}

}  // namespace

fs::path default_workspace_root() {
  std::error_code error;
  fs::path tmp = fs::temp_directory_path(error);
  if (error) tmp = "/tmp";
  return tmp / ("icam-workspaces-" + std::to_string(::getuid()));
}

Result<std::unique_ptr<SyscallDispatcher>> SyscallDispatcher::create(DispatcherOptions options) {
  // The key lives only in this kernel's memory: tokens are re-granted from jobs after a restart.
  auto store = ICAM_TRY(syscalls::CapabilityStore::create_with_random_key());
  if (options.driver_dir.empty()) options.driver_dir = default_driver_dir().string();
  if (options.workspace_root.empty()) options.workspace_root = default_workspace_root().string();
  return std::unique_ptr<SyscallDispatcher>(
      new SyscallDispatcher(std::move(options), std::move(store)));
}

SyscallDispatcher::~SyscallDispatcher() = default;

Result<audit::AuditLog*> SyscallDispatcher::audit_log() {
  if (options_.audit_path.empty()) return nullptr;
  if (!audit_) {
    std::error_code error;
    const fs::path parent = fs::path(options_.audit_path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, error);
    audit::AuditOptions o;
    o.path = options_.audit_path;
    o.key_path = options_.audit_key_path;
    audit_ = ICAM_TRY(audit::AuditLog::open(std::move(o)));
    for (const auto& r : audit_->last_recovery())
      log::warn("syscalls", "audit: intent ", r.intent_id, " (pid ", r.pid, " ", r.syscall,
                ") had no completion; recorded as outcome_unknown",
                r.never_replay ? " and never to be replayed" : "");
  }
  return audit_.get();
}

Status SyscallDispatcher::on_spawn(Process& process, const JobSpec& job) {
  ProcessState state;
  if (needs_workspace(job)) {
    fs::path dir;
    if (!job.workspace.empty()) {
      std::error_code error;
      fs::create_directories(job.workspace, error);
      if (error) return make_error(Errc::io, "workspace ", job.workspace, ": ", error.message());
      dir = job.workspace;
    } else {
      dir = ICAM_TRY(make_default_workspace(options_.workspace_root, process.pid));
    }
    std::error_code error;
    state.workspace = fs::canonical(dir, error);
    if (error) return make_error(Errc::io, "workspace ", dir.string(), ": ", error.message());
  }

  const std::string origin = "job '" + job.name + "'";
  std::vector<std::string> granted;
  for (size_t i = 0; i < job.capabilities.size(); ++i) {
    const std::string text = expand_workspace(job.capabilities[i], state.workspace);
    auto cap = syscalls::parse_capability(text);
    auto id = cap.ok() ? store_->grant(process.pid, *cap, origin)
                       : Result<syscalls::TokenId>(std::move(cap).error());
    if (!id.ok()) {
      store_->revoke_owner(process.pid);
      // A default workspace made just now for this process goes too (a job's own stays).
      std::error_code ignored;
      if (job.workspace.empty() && !state.workspace.empty()) fs::remove(state.workspace, ignored);
      return std::move(id).error().with_context(str_cat("capabilities/", i));
    }
    granted.push_back(store_->token(*id)->capability.to_string());
  }
  process.capabilities = std::move(granted);
  processes_[process.pid] = std::move(state);
  return ok_status();
}

void SyscallDispatcher::on_exit(const Process& process) {
  auto it = processes_.find(process.pid);
  if (it == processes_.end()) return;
  if (it->second.drivers) it->second.drivers->stop_all();
  store_->revoke_owner(process.pid);
  processes_.erase(it);
}

fs::path SyscallDispatcher::workspace(Pid pid) const {
  auto it = processes_.find(pid);
  return it == processes_.end() ? fs::path() : it->second.workspace;
}

size_t SyscallDispatcher::running_drivers(Pid pid) const {
  auto it = processes_.find(pid);
  if (it == processes_.end() || !it->second.drivers) return 0;
  return it->second.drivers->running();
}

Result<syscalls::Authorization> SyscallDispatcher::authorize(const Process& process,
                                                             ProcessState& state,
                                                             const SyscallSpec& spec,
                                                             const json& arguments) {
  if (!spec.capability) return syscalls::Authorization{};  // pure: nothing to check
  std::string target = ICAM_TRY(syscalls::raw_capability_target(spec, arguments));
  switch (spec.target) {
    case TargetRule::workspace_path:
      if (state.workspace.empty())
        return make_error(Errc::permission_denied, "the process has no workspace");
      // Joined, not normalised: ".." and links are resolved by the store's canonicalisation,
      // which follows links before applying "..", as open(2) does.
      if (target.empty() || target.front() != '/') target = (state.workspace / target).string();
      break;
    case TargetRule::program_path:
      if (target.empty() || target.front() != '/')
        return make_error(Errc::permission_denied, "/arguments", spec.target_argument,
                          ": the program must be given as an absolute path, not '", target, "'");
      break;
    case TargetRule::name:
      // The capability grammar's name characters. Also keeps ':' out of kv namespaces, which the
      // kv driver's keys use as the separator (see serve()).
      for (char c : target)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '/' &&
            c != '-')
          return make_error(Errc::permission_denied, "/arguments", spec.target_argument, ": '",
                            target, "' is not a valid name ([A-Za-z0-9_./-]+)");
      if (target.empty())
        return make_error(Errc::permission_denied, "/arguments", spec.target_argument,
                          ": empty name");
      break;
    case TargetRule::none:
      break;
  }
  return store_->authorize(process.pid, syscalls::Request{*spec.capability, target});
}

Result<std::string> SyscallDispatcher::serve(ProcessState& state, Pid pid, const SyscallSpec& spec,
                                             const json& arguments,
                                             const syscalls::Authorization& authorization) {
  if (spec.server == Server::kernel) {
    if (spec.name == "clock.now") return dump(clock_now());
    return make_error(Errc::internal, "no in-kernel implementation");
  }
  if (state.workspace.empty())
    return make_error(Errc::internal, "the process has no workspace for its drivers");
  if (!state.drivers) {
    // The programs the process may run are made visible (read-only) to its exec driver.
    std::vector<fs::path> programs;
    for (const auto& t : store_->tokens_of(pid))
      if (t.capability.kind == syscalls::CapKind::exec && !t.revoked)
        programs.emplace_back(t.capability.target);
    state.drivers =
        std::make_unique<ProcessDrivers>(options_.driver_dir, state.workspace, std::move(programs));
  }
  sandbox::DriverClient* driver = ICAM_TRY(state.drivers->get(spec.server));

  // The driver is given what was checked: the canonical path or program, so a link swapped in
  // after the check cannot redirect it (the driver refuses anything outside the workspace too).
  json driver_args = arguments;
  std::string kv_namespace, kv_key;
  switch (spec.server) {
    case Server::fs_driver:
      driver_args["path"] = authorization.target;
      break;
    case Server::exec_driver:
      driver_args["argv"][0] = authorization.target;
      break;
    case Server::kv_driver:
      // One store per workspace; a namespace is a key prefix. Namespaces cannot hold ':', so
      // "NS:KEY" never collides across namespaces.
      kv_namespace = arguments["namespace"].get<std::string>();
      kv_key = arguments["key"].get<std::string>();
      driver_args = json{{"key", kv_namespace + ":" + kv_key}};
      if (arguments.contains("value")) driver_args["value"] = arguments["value"];
      break;
    case Server::kernel:
      break;
  }
  driver::ToolOutput output =
      ICAM_TRY(driver->call_tool(spec.driver_tool, driver_args, spec.timeout));
  if (output.is_error) {
    std::string text = output.joined_text();
    if (text.empty() && !output.structured.is_null()) text = dump(output.structured);
    return make_error(Errc::io, text);
  }
  if (spec.server == Server::kv_driver) {
    json result = {{"namespace", kv_namespace}, {"key", kv_key}};
    if (output.structured.contains("value")) result["value"] = output.structured["value"];
    if (output.structured.contains("stored")) result["stored"] = output.structured["stored"];
    return dump(result);
  }
  if (!output.structured.is_null()) return dump(output.structured);
  return output.joined_text();
}

Result<std::string> SyscallDispatcher::call(Process& process, const std::string& name,
                                            const json& arguments) {
  const SyscallSpec* spec = syscalls::find_syscall(name);
  // proc.exit is the agent loop's; it never reaches a handler.
  if (!spec || spec->name == syscalls::kSyscallProcExit)
    return make_error(Errc::not_found, "unknown tool '", name, "'");
  // A malformed call is refused before it is a syscall: nothing to authorize or audit.
  ICAM_TRY_CTX(syscalls::validate_syscall_arguments(*spec, arguments), name);
  auto it = processes_.find(process.pid);
  if (it == processes_.end())
    return make_error(Errc::internal, name, ": process ", process.pid,
                      " is unknown to the syscall layer");
  ProcessState& state = it->second;
  audit::AuditLog* log = ICAM_TRY_CTX(audit_log(), name + ": audit log (the call was not run)");

  const audit::SideEffect effect = audit_side_effect(spec->side_effect);
  const std::string args_text = dump(arguments);
  auto authorization = authorize(process, state, *spec, arguments);
  if (!authorization.ok()) {
    Error denied = std::move(authorization).error().with_context(name);
    if (log) {
      auto intent =
          log->append_intent(process.pid, name, args_text, "", audit::Decision::deny, effect);
      if (!intent.ok())
        return make_error(Errc::unavailable, denied.message(),
                          " (and the audit log failed: ", intent.error().message(), ")");
      auto done = log->append_completion(*intent, audit::CompletionStatus::denied,
                                         audit::result_digest(denied.message()));
      if (!done.ok()) log::warn("syscalls", "audit completion: ", done.error().message());
    }
    return denied;
  }

  // The intent is durable before anything happens; without it the call does not run.
  int64_t intent = 0;
  if (log)
    intent =
        ICAM_TRY_CTX(log->append_intent(process.pid, name, args_text, authorization->capability,
                                        audit::Decision::allow, effect),
                     name + ": audit log (the call was not run)");
  auto result = serve(state, process.pid, *spec, arguments, *authorization);
  if (log) {
    const auto status = result.ok() ? audit::CompletionStatus::ok : audit::CompletionStatus::error;
    const std::string& text = result.ok() ? *result : result.error().message();
    auto done = log->append_completion(intent, status, audit::result_digest(text));
    // The call happened; a missing completion is recovered as outcome_unknown at the next open.
    if (!done.ok()) log::warn("syscalls", "audit completion: ", done.error().message());
  }
  if (!result.ok()) return std::move(result).error().with_context(name);
  return result;
}

}  // namespace icam::kernel
