#include "kernel/syscall_dispatcher.h"

#include <signal.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <system_error>

#include "common/log.h"
#include "kernel/audit/audit_record.h"
#include "memory/archive_syscalls.h"
#include "syscalls/arg_schema.h"
#include "syscalls/capability.h"

namespace icam::kernel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using syscalls::Server;
using syscalls::SideEffectClass;
using syscalls::SyscallSpec;
using syscalls::TargetRule;

// The calls served by kernel events (a child's exit, a message, a person's answer): their intent
// stays open while the process waits.
bool waits_for_kernel_events(const SyscallSpec& spec) {
  return spec.server == Server::kernel &&
         (spec.name.starts_with("proc.") || spec.name.starts_with("msg.") ||
          spec.name == "human.ask");
}

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
  return !job.drivers.empty();
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

SyscallDispatcher::~SyscallDispatcher() {
  // Workers first: they use the drivers and the audit log, which go with the members below.
  for (auto& [pid, state] : processes_) cancel_worker(state);
}

void SyscallDispatcher::attach(std::shared_ptr<CompletionSink> sink, ProcessControl* control) {
  sink_ = std::move(sink);
  control_ = control;
}

Result<audit::AuditLog*> SyscallDispatcher::audit_log() {
  if (options_.audit_path.empty()) return nullptr;
  std::lock_guard lock(audit_mutex_);
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

Result<memory::ArchiveStore*> SyscallDispatcher::archive() {
  if (options_.archive_path.empty())
    return make_error(Errc::unavailable, "this kernel has no archival memory configured");
  if (!archive_) {
    std::error_code error;
    const fs::path parent = fs::path(options_.archive_path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, error);
    archive_ = ICAM_TRY(memory::ArchiveStore::open(options_.archive_path));
  }
  return archive_.get();
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

  state.parent = processes_.count(process.parent) ? process.parent : 0;
  state.owner = process.owner_uid;
  state.tools = job.tools;
  // Archival memory: a child shares its parent's namespace, as it shares its workspace (a child
  // named after another job must not reach that job's memory).
  state.archive_namespace = state.parent != 0
                                ? processes_.at(state.parent).archive_namespace
                                : memory::process_archive_namespace(process.owner_uid, process.name);
  if (state.parent != 0) {
    // A child of one of our processes (proc.spawn): its capabilities are derived from its
    // parent's, all or nothing, never granted.
    std::vector<syscalls::Capability> requested;
    for (size_t i = 0; i < job.capabilities.size(); ++i) {
      auto cap = syscalls::parse_capability(expand_workspace(job.capabilities[i], state.workspace));
      if (!cap.ok()) return std::move(cap).error().with_context(str_cat("capabilities/", i));
      requested.push_back(std::move(*cap));
    }
    const std::vector<syscalls::TokenId> ids = ICAM_TRY(
        store_->derive_for_child(state.parent, process.pid, requested, syscalls::unix_now()));
    std::vector<std::string> derived;
    for (syscalls::TokenId id : ids) derived.push_back(store_->token(id)->capability.to_string());
    process.capabilities = std::move(derived);
    ICAM_TRY(start_external_drivers(process, state, job));
    // (proc.spawn records it too; a child revived after a restart is recorded only here.)
    processes_.at(state.parent).children.insert(process.pid);
    processes_[process.pid] = std::move(state);
    return ok_status();
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
  ICAM_TRY(start_external_drivers(process, state, job));
  processes_[process.pid] = std::move(state);
  return ok_status();
}

Status SyscallDispatcher::start_external_drivers(const Process& process, ProcessState& state,
                                                 const JobSpec& job) {
  if (job.drivers.empty()) return ok_status();
  auto refuse = [&](Error error) -> Status {
    // Undo the spawn so far: nothing of this process stays running or granted.
    if (state.drivers) state.drivers->stop_all();
    state.drivers.reset();
    store_->revoke_owner(process.pid);
    std::error_code ignored;
    if (job.workspace.empty() && !state.workspace.empty()) fs::remove_all(state.workspace, ignored);
    return error;
  };
  const int64_t now = syscalls::unix_now();
  for (size_t i = 0; i < job.drivers.size(); ++i) {
    const DriverSpec& d = job.drivers[i];
    // Starting a program is what exec: capabilities are for: the job that declares a driver must
    // also grant its program, so `icamctl caps` shows every program the process can make run.
    auto allowed = store_->check(process.pid, syscalls::Request::exec(d.command[0]), now);
    if (!allowed.ok())
      return refuse(std::move(allowed).error().with_context(str_cat(
          "drivers/", i, "/command/0: the program needs an exec: capability")));
    ExternalDriverSetup setup{d, fs::path(allowed->target)};
    if (d.net) {
      // The sandbox gives a driver the whole network or none, so only a capability for every
      // host and port can let it have the network.
      bool any_host = false;
      for (const auto& t : store_->tokens_of(process.pid))
        if (!t.revoked && t.capability.kind == syscalls::CapKind::net &&
            t.capability.host == "*" && t.capability.port == 0 &&
            (!t.capability.expires || *t.capability.expires > now))
          any_host = true;
      if (!any_host)
        return refuse(make_error(Errc::permission_denied, "drivers/", i,
                                 "/net: a driver gets the network only with the capability "
                                 "net:*:* (the sandbox cannot limit it to some hosts)"));
    }
    state.external_setups.push_back(std::move(setup));
  }
  state.external_drivers = job.drivers;
  // Started now, so the model is told their tools (external_tools()) before its first turn.
  ProcessDrivers& drivers = drivers_of(state, process.pid);
  for (size_t i = 0; i < job.drivers.size(); ++i) {
    auto started = drivers.external(job.drivers[i].name);
    if (!started.ok()) return refuse(std::move(started).error().with_context(str_cat("drivers/", i)));
  }
  return ok_status();
}

std::vector<ExternalTool> SyscallDispatcher::external_tools(const JobSpec& job) {
  std::vector<ExternalTool> out;
  for (const DriverSpec& d : job.drivers) {
    const std::string key = to_json(d).dump();
    auto cached = listed_tools_.find(key);
    if (cached == listed_tools_.end()) {
      auto listed = probe_driver_tools(job, d);
      if (!listed.ok()) {
        // on_spawn starts it for real and says why it cannot run.
        log::info("syscalls", "driver '", d.name, "': tools not listed for the prompt: ",
                  listed.error().message());
        continue;
      }
      cached = listed_tools_.emplace(key, std::move(*listed)).first;
    }
    out.insert(out.end(), cached->second.begin(), cached->second.end());
  }
  return out;
}

Result<std::vector<ExternalTool>> SyscallDispatcher::probe_driver_tools(const JobSpec& job,
                                                                        const DriverSpec& d) {
  // The same rule as on_spawn, on the job's own capabilities (not yet granted): a program no
  // exec: capability names is not started, not even to list its tools.
  std::error_code error;
  const fs::path program = fs::canonical(d.command[0], error);
  if (error) return make_error(Errc::not_found, d.command[0], ": ", error.message());
  bool allowed = false;
  for (const auto& text : job.capabilities) {
    auto cap = syscalls::parse_capability(text);
    if (!cap.ok() || cap->kind != syscalls::CapKind::exec) continue;
    const fs::path granted = fs::canonical(cap->target, error);
    if (!error && granted == program) allowed = true;
  }
  if (!allowed) return make_error(Errc::permission_denied, "no exec: capability for ", program.string());
  const fs::path scratch = ICAM_TRY(make_default_workspace(options_.workspace_root, 0));
  std::vector<ExternalTool> tools;
  Status listed = ok_status();
  {
    ProcessDrivers drivers(options_.driver_dir, scratch, {}, {ExternalDriverSetup{d, program}});
    auto started = drivers.external(d.name);
    if (started.ok()) tools = *started->tools;
    else listed = std::move(started).error();
  }  // stopped here
  fs::remove_all(scratch, error);
  ICAM_TRY(std::move(listed));
  return tools;
}

std::vector<ExternalTool> SyscallDispatcher::external_tools(Pid pid) const {
  auto it = processes_.find(pid);
  if (it == processes_.end() || !it->second.drivers) return {};
  return it->second.drivers->external_tools();
}

void SyscallDispatcher::cancel_worker(ProcessState& state) {
  if (state.in_flight) {
    std::lock_guard lock(state.in_flight->mutex);
    state.in_flight->cancelled = true;
    // Killing the driver closes its reply pipe, so the worker's exchange fails at once. The
    // pidfd names that very process even if the worker has just reaped it (a failed exchange
    // reaps), so the signal can never reach a process that reused its pid.
    if (state.in_flight->driver_pidfd >= 0) {
      (void)::syscall(SYS_pidfd_send_signal, state.in_flight->driver_pidfd, SIGKILL, nullptr, 0);
    } else if (state.in_flight->driver_pid > 0) {
      ::kill(state.in_flight->driver_pid, SIGKILL);  // a kernel without pidfds (before 5.3)
    }
  }
  if (state.worker.joinable()) state.worker.join();
  state.in_flight.reset();
}

Status SyscallDispatcher::archive_context(const Process& process, std::string_view text) {
  auto it = processes_.find(process.pid);
  if (it == processes_.end()) return make_error(Errc::not_found, "no process ", process.pid);
  memory::ArchiveStore* store = ICAM_TRY(archive());
  // Entries are cut below the archive's bound on one entry, never inside a UTF-8 character.
  const size_t max = std::max<size_t>(store->limits().max_text_bytes, 4);
  const std::vector<std::string> tags = {"context"};
  while (!text.empty()) {
    size_t n = std::min(text.size(), max);
    while (n < text.size() && n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    if (n == 0) n = std::min(text.size(), max);
    ICAM_TRY(store->store(it->second.archive_namespace, text.substr(0, n), tags));
    text.remove_prefix(n);
  }
  return ok_status();
}

void SyscallDispatcher::on_exit(const Process& process) {
  auto it = processes_.find(process.pid);
  if (it == processes_.end()) return;
  ProcessState& state = it->second;
  // A pending call ends with the process: a driver mid-call is killed (its worker records the
  // outcome), a waiting kernel call gets its audit completion here. Nothing reaches the loop.
  cancel_worker(state);
  if (state.waiting) {
    const Waiting w = std::move(*state.waiting);
    state.waiting.reset();
    (void)finish(audit_.get(), w.intent, w.syscall,
                 make_error(Errc::cancelled, "the process exited while it waited"));
  }
  if (state.drivers) state.drivers->stop_all();
  store_->revoke_owner(process.pid);
  // Its mailbox goes with it (an exited process receives nothing more).
  if (mailboxes_) {
    if (Status st = mailboxes_->remove_to(process.pid); !st.ok())
      log::warn("syscalls", "process ", process.pid, ": its stored messages not forgotten: ",
                st.error().message());
  }
  // Its parent hears how it ended: proc.wait answers from this.
  if (auto parent = processes_.find(state.parent); parent != processes_.end() && process.exit)
    child_exited(parent->first, parent->second, process.pid, *process.exit);
  processes_.erase(it);
}

void SyscallDispatcher::child_exited(Pid parent, ProcessState& ps, Pid child,
                                     const ExitStatus& exit) {
  ps.children.erase(child);
  json status = {{"pid", child}, {"reason", exit_reason_name(exit.reason)}, {"answer", exit.answer}};
  if (!exit.error.empty()) status["error"] = exit.error;
  if (ps.waiting && ps.waiting->kind == Waiting::Kind::child && ps.waiting->child == child) {
    complete_waiting(parent, ps, dump(status));
    return;
  }
  // Kept until waited for; a parent that never waits keeps the newest few.
  constexpr size_t kMaxExitedChildren = 256;
  if (ps.exited_children.size() >= kMaxExitedChildren)
    ps.exited_children.erase(ps.exited_children.begin());
  ps.exited_children[child] = std::move(status);
}

Status SyscallDispatcher::restore_exited_child(Pid parent, Pid child, const ExitStatus& status) {
  auto it = processes_.find(parent);
  if (it == processes_.end()) return make_error(Errc::not_found, "no live process ", parent);
  child_exited(parent, it->second, child, status);
  return ok_status();
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
  if (spec.target == TargetRule::children)
    return store_->authorize(process.pid,
                             syscalls::Request::spawn(static_cast<int64_t>(state.children.size()) + 1));
  if (spec.target == TargetRule::recipient) {
    const Pid to = arguments.at(json::json_pointer(spec.target_argument)).get<Pid>();
    const std::string channel = to == state.parent && to != 0 ? "parent"
                                : state.children.count(to)    ? "children"
                                                              : "pid/" + std::to_string(to);
    return store_->authorize(process.pid, syscalls::Request::msg(channel));
  }
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
    case TargetRule::constant:
    case TargetRule::children:
    case TargetRule::recipient:
    case TargetRule::driver_tool:  // "DRIVER/TOOL", the driver declared (checked in begin())
      break;
  }
  return store_->authorize(process.pid, syscalls::Request{*spec.capability, target});
}

Result<std::string> SyscallDispatcher::serve(ProcessState& state, Pid pid, const SyscallSpec& spec,
                                             const json& arguments,
                                             const syscalls::Authorization& authorization) {
  if (spec.server == Server::kernel) {
    if (spec.name == "clock.now") return dump(clock_now());
    if (spec.name == "mem.store" || spec.name == "mem.recall") {
      memory::ArchiveStore* store = ICAM_TRY(archive());
      return spec.name == "mem.store"
                 ? memory::serve_mem_store(*store, state.archive_namespace, arguments)
                 : memory::serve_mem_recall(*store, state.archive_namespace, arguments);
    }
    return make_error(Errc::internal, "no in-kernel implementation");
  }
  if (state.workspace.empty())
    return make_error(Errc::internal, "the process has no workspace for its drivers");
  return serve_driver(drivers_of(state, pid), spec, arguments, authorization, nullptr);
}

ProcessDrivers& SyscallDispatcher::drivers_of(ProcessState& state, Pid pid) {
  if (!state.drivers) {
    // The programs the process may run are made visible (read-only) to its exec driver.
    std::vector<fs::path> programs;
    for (const auto& t : store_->tokens_of(pid))
      if (t.capability.kind == syscalls::CapKind::exec && !t.revoked)
        programs.emplace_back(t.capability.target);
    state.drivers = std::make_unique<ProcessDrivers>(options_.driver_dir, state.workspace,
                                                     std::move(programs), state.external_setups);
  }
  return *state.drivers;
}

Result<std::string> SyscallDispatcher::serve_driver(ProcessDrivers& drivers,
                                                    const SyscallSpec& spec, const json& arguments,
                                                    const syscalls::Authorization& authorization,
                                                    InFlight* flight) {
  if (spec.server == Server::external) return serve_external(drivers, arguments, flight);
  sandbox::DriverClient* driver = ICAM_TRY(drivers.get(spec.server));
  if (flight) {
    std::lock_guard lock(flight->mutex);
    if (flight->cancelled) return make_error(Errc::cancelled, "the process exited");
    flight->driver_pid = driver->process().pid();
    flight->driver_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, flight->driver_pid, 0));
  }

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
    case Server::external:
      break;
  }
  auto called = driver->call_tool(spec.driver_tool, driver_args, spec.timeout);
  if (flight) {
    std::lock_guard lock(flight->mutex);
    flight->driver_pid = 0;
    if (flight->driver_pidfd >= 0) ::close(flight->driver_pidfd);
    flight->driver_pidfd = -1;
    if (flight->cancelled && !called.ok())
      return make_error(Errc::cancelled, "the process exited during the call");
  }
  driver::ToolOutput output = ICAM_TRY(std::move(called));
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

Result<std::string> SyscallDispatcher::serve_external(ProcessDrivers& drivers,
                                                      const json& arguments, InFlight* flight) {
  const std::string driver_name = arguments["driver"].get<std::string>();
  const std::string tool_name = arguments["tool"].get<std::string>();
  const std::string where = driver_name + "/" + tool_name;
  const json tool_args = arguments.value("arguments", json::object());
  // Started (again, if it died) and listed; its tools are those it listed and the job allows.
  ExternalDriver driver = ICAM_TRY(drivers.external(driver_name));
  const ExternalTool* tool = nullptr;
  std::string names;
  for (const auto& t : *driver.tools) {
    if (t.name == tool_name) tool = &t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  if (!tool)
    return make_error(Errc::not_found, "driver '", driver_name, "' has no tool '", tool_name,
                      "' (its tools: ", names.empty() ? "none" : names, ")");
  // A schema within the supported subset is enforced here; any other reaches the driver, which
  // checks its own arguments (they are an object: the table's schema says so).
  if (tool->checked_schema.is_object())
    ICAM_TRY_CTX(syscalls::validate_arguments(tool->checked_schema, tool_args, "/arguments/arguments"),
                 where);
  if (flight) {
    std::lock_guard lock(flight->mutex);
    if (flight->cancelled) return make_error(Errc::cancelled, "the process exited");
    flight->driver_pid = driver.client->process().pid();
    flight->driver_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, flight->driver_pid, 0));
  }
  auto called = driver.client->call_tool(tool_name, tool_args,
                                         std::chrono::milliseconds(driver.spec->timeout_ms));
  if (flight) {
    std::lock_guard lock(flight->mutex);
    flight->driver_pid = 0;
    if (flight->driver_pidfd >= 0) ::close(flight->driver_pidfd);
    flight->driver_pidfd = -1;
    if (flight->cancelled && !called.ok())
      return make_error(Errc::cancelled, "the process exited during the call");
  }
  // A broken driver (garbage, an overlong line, no answer, death mid-call) was killed by the
  // client; the next call starts it afresh.
  driver::ToolOutput output = ICAM_TRY_CTX(std::move(called), where);
  std::string text = output.joined_text();
  if (text.empty() && !output.structured.is_null()) text = dump(output.structured);
  if (text.size() > kMaxToolResultBytes) {
    size_t cut = kMaxToolResultBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = str_cat(text.substr(0, cut), "\n... (truncated: ", text.size(), " bytes in all)");
  }
  // The tool's own failure is information for the model, given as the error it sees.
  if (output.is_error) return make_error(Errc::io, where, ": ", text.empty() ? "failed" : text);
  return text;
}

Result<SyscallDispatcher::Begun> SyscallDispatcher::begin(const Process& process,
                                                          const std::string& name,
                                                          const json& arguments) {
  // A process making a call has been given the results of its earlier ones, and its journal
  // holds them: the messages those gave it need not be kept any longer.
  if (auto it = processes_.find(process.pid); it != processes_.end())
    forget_delivered(process.pid, it->second);
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
  if (spec->target == TargetRule::driver_tool) {
    // Like an unknown syscall, a driver the job never declared is not a call to audit.
    const std::string driver = arguments["driver"].get<std::string>();
    std::string declared;
    bool found = false;
    for (const auto& d : state.external_drivers) {
      declared += (declared.empty() ? "" : ", ") + d.name;
      found = found || d.name == driver;
    }
    if (!found)
      return make_error(Errc::not_found, name, ": unknown driver '", driver,
                        "' (declared: ", declared.empty() ? "none" : declared, ")");
  }
  audit::AuditLog* log = ICAM_TRY_CTX(audit_log(), name + ": audit log (the call was not run)");

  const audit::SideEffect effect = audit_side_effect(spec->side_effect);
  const std::string args_text = dump(arguments);
  auto authorization = authorize(process, state, *spec, arguments);
  if (!authorization.ok()) {
    Error denied = std::move(authorization).error().with_context(name);
    if (log) {
      // A denial has no side effect: intent and completion go in one transaction.
      std::lock_guard lock(audit_mutex_);
      auto recorded = log->append_call(process.pid, name, args_text, "", audit::Decision::deny,
                                       effect, 0, audit::CompletionStatus::denied,
                                       audit::result_digest(denied.message()));
      if (!recorded.ok())
        return make_error(Errc::unavailable, denied.message(),
                          " (and the audit log failed: ", recorded.error().message(), ")");
    }
    return denied;
  }

  Begun begun{spec, &state, log, 0, std::move(*authorization), std::nullopt};
  // A call without side effects is audited when it has run (DeferredIntent); calls that wait on
  // kernel events keep their intent open meanwhile, like the others.
  if (log && effect == audit::SideEffect::none && !waits_for_kernel_events(*spec)) {
    begun.deferred = DeferredIntent{process.pid, args_text, begun.authorization.capability,
                                    log->now_us()};
    return begun;
  }
  // The intent is durable before anything happens; without it the call does not run.
  if (log) {
    std::lock_guard lock(audit_mutex_);
    begun.intent = ICAM_TRY_CTX(
        log->append_intent(process.pid, name, args_text, begun.authorization.capability,
                           audit::Decision::allow, effect),
        name + ": audit log (the call was not run)");
  }
  return begun;
}

Result<std::string> SyscallDispatcher::finish(audit::AuditLog* log, int64_t intent,
                                              const std::string& name,
                                              Result<std::string> result,
                                              const std::optional<DeferredIntent>& deferred) {
  if (log && deferred) {
    const auto status = result.ok() ? audit::CompletionStatus::ok : audit::CompletionStatus::error;
    const std::string& text = result.ok() ? *result : result.error().message();
    const syscalls::SyscallSpec* spec = syscalls::find_syscall(name);
    const audit::SideEffect effect =
        spec ? audit_side_effect(spec->side_effect) : audit::SideEffect::none;
    std::lock_guard lock(audit_mutex_);
    auto recorded = log->append_call(deferred->pid, name, deferred->args, deferred->capability,
                                     audit::Decision::allow, effect, deferred->began_us, status,
                                     audit::result_digest(text));
    // Unaudited, the result is not released: the model gets the audit failure instead.
    if (!recorded.ok())
      return make_error(Errc::unavailable, name, ": audit log (the result was withheld): ",
                        recorded.error().message());
  } else if (log) {
    const auto status = result.ok() ? audit::CompletionStatus::ok : audit::CompletionStatus::error;
    const std::string& text = result.ok() ? *result : result.error().message();
    std::lock_guard lock(audit_mutex_);
    auto done = log->append_completion(intent, status, audit::result_digest(text));
    // The call happened; a missing completion is recovered as outcome_unknown at the next open.
    if (!done.ok()) log::warn("syscalls", "audit completion: ", done.error().message());
  }
  if (!result.ok()) return std::move(result).error().with_context(name);
  return result;
}

Result<std::string> SyscallDispatcher::call(Process& process, const std::string& name,
                                            const json& arguments) {
  if (const SyscallSpec* spec = syscalls::find_syscall(name);
      spec && waits_for_kernel_events(*spec))
    return make_error(Errc::unsupported, name,
                      ": it may block, so it is served only through the agent loop (start())");
  Begun begun = ICAM_TRY(begin(process, name, arguments));
  auto result = serve(*begun.state, process.pid, *begun.spec, arguments, begun.authorization);
  return finish(begun.log, begun.intent, name, std::move(result), begun.deferred);
}

CallStart SyscallDispatcher::start(Process& process, const std::string& name,
                                   const json& arguments) {
  auto begun = begin(process, name, arguments);
  if (!begun.ok()) return Result<std::string>(std::move(begun).error());
  const SyscallSpec& spec = *begun->spec;
  ProcessState& state = *begun->state;
  if (waits_for_kernel_events(spec)) return serve_process_call(process, *begun, arguments);
  // In-kernel calls are quick: served now. So is everything when no loop listens for
  // completions.
  if (spec.server == Server::kernel || !sink_ || state.workspace.empty()) {
    auto result = serve(state, process.pid, spec, arguments, begun->authorization);
    return finish(begun->log, begun->intent, name, std::move(result), begun->deferred);
  }
  // A driver call: on a worker thread, so the engine steps the other processes meanwhile. The
  // previous worker of this process has finished (the process waited for its completion).
  if (state.worker.joinable()) state.worker.join();
  auto flight = std::make_shared<InFlight>();
  state.in_flight = flight;
  ProcessDrivers* drivers = &drivers_of(state, process.pid);
  const CallTicket ticket = next_ticket_++;
  state.worker = std::thread([this, flight, drivers, spec = &spec, arguments,
                              authorization = begun->authorization, log = begun->log,
                              intent = begun->intent, deferred = begun->deferred,
                              pid = process.pid, ticket, sink = sink_] {
    auto result = serve_driver(*drivers, *spec, arguments, authorization, flight.get());
    sink->complete(pid, ticket, finish(log, intent, spec->name, std::move(result), deferred));
  });
  return PendingCall{ticket, spec.name};
}

PendingCall SyscallDispatcher::wait_for(ProcessState& state, Waiting waiting,
                                        std::string waiting_on) {
  waiting.ticket = next_ticket_++;
  const CallTicket ticket = waiting.ticket;
  state.waiting = std::move(waiting);
  return PendingCall{ticket, std::move(waiting_on)};
}

void SyscallDispatcher::complete_waiting(Pid pid, ProcessState& state,
                                         Result<std::string> result) {
  if (!state.waiting) return;
  const Waiting w = std::move(*state.waiting);
  state.waiting.reset();
  auto finished = finish(audit_.get(), w.intent, w.syscall, std::move(result));
  if (sink_) sink_->complete(pid, w.ticket, std::move(finished));
}

CallStart SyscallDispatcher::serve_process_call(Process& process, Begun& begun,
                                                const json& arguments) {
  const SyscallSpec& spec = *begun.spec;
  ProcessState& state = *begun.state;
  const std::string& name = spec.name;
  auto now_result = [&](Result<std::string> result) -> CallStart {
    return finish(begun.log, begun.intent, name, std::move(result));
  };
  auto wait_ms = [&](const char* key) {
    return std::chrono::milliseconds(arguments.contains(key) ? arguments[key].get<int64_t>()
                                                             : spec.timeout.count());
  };
  Waiting waiting;
  waiting.syscall = name;
  waiting.intent = begun.intent;
  if (!sink_)
    return now_result(make_error(Errc::unsupported, "it blocks, and nothing listens for its "
                                                    "completion"));

  if (name == "human.ask") {
    if (!options_.human_answers)
      return now_result(make_error(Errc::unavailable,
                                   "no person can answer in this kernel (run the job under icamd "
                                   "and answer with `icamctl approve` or `icamctl deny`)"));
    waiting.kind = Waiting::Kind::human;
    waiting.question = arguments["question"].get<std::string>();
    waiting.deadline = Clock::now() + spec.timeout;
    return wait_for(state, std::move(waiting), "human.ask: " + waiting.question);
  }
  if (name == "proc.spawn") return now_result(spawn_child(process, state, arguments));
  if (name == "proc.kill") return now_result(kill_descendant(process, arguments));
  if (name == "msg.send") return now_result(send_message(process, state, arguments));
  if (name == "proc.wait") {
    const Pid child = arguments["pid"].get<Pid>();
    if (auto done = state.exited_children.find(child); done != state.exited_children.end()) {
      std::string status = dump(done->second);
      state.exited_children.erase(done);
      return now_result(status);
    }
    if (!state.children.count(child))
      return now_result(make_error(Errc::not_found, "process ", child, " is not a child of process ",
                                   process.pid, " (or was waited for already)"));
    waiting.kind = Waiting::Kind::child;
    waiting.child = child;
    waiting.deadline = Clock::now() + wait_ms("timeout_ms");
    return wait_for(state, std::move(waiting), "proc.wait " + std::to_string(child));
  }
  if (name == "msg.recv") {
    if (!state.mailbox.empty()) {
      Message m = std::move(state.mailbox.front());
      state.mailbox.pop_front();
      state.mailbox_bytes -= m.body.size();
      if (mailboxes_) state.delivered.push_back(m.id);
      return now_result(dump(json{{"from", m.from}, {"body", m.body}, {"id", m.id}}));
    }
    waiting.kind = Waiting::Kind::message;
    waiting.deadline = Clock::now() + wait_ms("timeout_ms");
    return wait_for(state, std::move(waiting), "msg.recv");
  }
  return now_result(make_error(Errc::internal, "no in-kernel implementation"));
}

Result<std::string> SyscallDispatcher::spawn_child(Process& process, ProcessState& state,
                                                   const json& arguments) {
  if (!control_) return make_error(Errc::unsupported, "this kernel cannot spawn processes");
  JobSpec job;
  job.name = arguments["name"].get<std::string>();
  job.task = arguments["task"].get<std::string>();
  if (job.name.empty()) return make_error(Errc::invalid_argument, "/arguments/name: empty");
  if (job.task.empty()) return make_error(Errc::invalid_argument, "/arguments/task: empty");
  job.system = arguments.value("system", std::string());
  // A child can call no tool its parent cannot (proc.exit is everyone's).
  for (const auto& t : arguments.value("tools", json::array())) {
    const std::string tool = t.get<std::string>();
    if (tool == kToolProcExit) continue;
    if (std::find(state.tools.begin(), state.tools.end(), tool) == state.tools.end())
      return make_error(Errc::permission_denied, "/arguments/tools: '", tool,
                        "' is not one of this process's tools");
    if (std::find(job.tools.begin(), job.tools.end(), tool) == job.tools.end())
      job.tools.push_back(tool);
  }
  // Capabilities are derived from the parent's in on_spawn (refused if they ask for more).
  for (const auto& c : arguments.value("capabilities", json::array()))
    job.capabilities.push_back(c.get<std::string>());
  // The child works in its parent's workspace, so what it produces is where the parent looks,
  // and "${workspace}" means the same directory to both.
  job.workspace = state.workspace.string();
  // With tool.call the child reaches its parent's external drivers: instances of its own, started
  // only if its derived capabilities allow their programs.
  if (std::find(job.tools.begin(), job.tools.end(), kToolCall) != job.tools.end())
    job.drivers = state.external_drivers;
  job.sampling = process.sampling;
  job.priority = process.priority;
  job.budgets = process.budgets;
  const Pid child = ICAM_TRY(control_->spawn_child(job, process.pid));
  // The map may have grown: find the parent again.
  processes_.at(process.pid).children.insert(child);
  return dump(json{{"pid", child}});
}

bool SyscallDispatcher::is_descendant(Pid pid, Pid ancestor) const {
  for (int depth = 0; depth < 1'000'000; ++depth) {
    auto it = processes_.find(pid);
    if (it == processes_.end() || it->second.parent == 0) return false;
    if (it->second.parent == ancestor) return true;
    pid = it->second.parent;
  }
  return false;
}

Result<std::string> SyscallDispatcher::kill_descendant(const Process& process,
                                                       const json& arguments) {
  if (!control_) return make_error(Errc::unsupported, "this kernel cannot kill processes");
  const Pid target = arguments["pid"].get<Pid>();
  if (!is_descendant(target, process.pid))
    return make_error(Errc::permission_denied, "process ", target,
                      " is not a live descendant of process ", process.pid);
  ICAM_TRY(control_->kill(target));
  return dump(json{{"pid", target}, {"killed", true}});
}

Result<std::string> SyscallDispatcher::send_message(const Process& process, ProcessState&,
                                                    const json& arguments) {
  const Pid to = arguments["to"].get<Pid>();
  auto it = processes_.find(to);
  // Another user's processes are not there, as far as this one can tell.
  if (it == processes_.end() || it->second.owner != process.owner_uid)
    return make_error(Errc::not_found, "no live process ", to);
  ProcessState& receiver = it->second;
  std::string body = arguments["body"].get<std::string>();
  const bool handed_over = receiver.waiting && receiver.waiting->kind == Waiting::Kind::message;
  if (!handed_over && (receiver.mailbox.size() >= kMailboxMessages ||
                       receiver.mailbox_bytes + body.size() > kMailboxBytes))
    return make_error(Errc::resource_exhausted, "the mailbox of process ", to, " is full (",
                      receiver.mailbox.size(), " messages, ", receiver.mailbox_bytes,
                      " bytes; at most ", kMailboxMessages, " and ", kMailboxBytes,
                      " bytes): try again after it receives");
  // Stored before the sender hears it went out, so a restart cannot lose it.
  int64_t id = next_message_id_;
  if (mailboxes_) {
    auto stored = mailboxes_->put(to, process.pid, body);
    if (!stored.ok()) return std::move(stored).error().with_context("the message was not sent");
    id = *stored;
  } else {
    ++next_message_id_;
  }
  if (handed_over) {
    if (mailboxes_) receiver.delivered.push_back(id);
    complete_waiting(to, receiver, dump(json{{"from", process.pid}, {"body", body}, {"id", id}}));
    return dump(json{{"to", to}, {"queued", 0}});
  }
  receiver.mailbox_bytes += body.size();
  receiver.mailbox.push_back(Message{process.pid, std::move(body), id});
  return dump(json{{"to", to}, {"queued", receiver.mailbox.size()}});
}

void SyscallDispatcher::forget_delivered(Pid pid, ProcessState& state) {
  if (!mailboxes_ || state.delivered.empty()) return;
  if (Status st = mailboxes_->remove(state.delivered); !st.ok()) {
    // Kept for the next call to try again; a restart would forget them too (its results hold them).
    log::warn("syscalls", "process ", pid, ": delivered messages not forgotten: ",
              st.error().message());
    return;
  }
  state.delivered.clear();
}

Status SyscallDispatcher::restore_message(Pid to, Pid from, std::string body, int64_t id) {
  auto it = processes_.find(to);
  if (it == processes_.end()) return make_error(Errc::not_found, "no live process ", to);
  ProcessState& receiver = it->second;
  receiver.mailbox_bytes += body.size();
  receiver.mailbox.push_back(Message{from, std::move(body), id});
  return ok_status();
}

void SyscallDispatcher::tick(Clock::time_point now) {
  for (auto& [pid, state] : processes_) {
    if (!state.waiting || state.waiting->deadline > now) continue;
    const std::string what = state.waiting->kind == Waiting::Kind::human ? "no answer"
                             : state.waiting->kind == Waiting::Kind::child
                                 ? str_cat("process ", state.waiting->child, " has not exited")
                                 : std::string("no message");
    complete_waiting(pid, state, make_error(Errc::timed_out, what, " before the timeout"));
  }
}

Status SyscallDispatcher::answer_human(Pid pid, bool approved, const std::string& text) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || !it->second.waiting ||
      it->second.waiting->kind != Waiting::Kind::human)
    return make_error(Errc::not_found, "process ", pid, " is not waiting for an answer");
  complete_waiting(pid, it->second, dump(json{{"answer", text}, {"approved", approved}}));
  return ok_status();
}

std::string SyscallDispatcher::pending_question(Pid pid) const {
  auto it = processes_.find(pid);
  if (it == processes_.end() || !it->second.waiting ||
      it->second.waiting->kind != Waiting::Kind::human)
    return {};
  return it->second.waiting->question;
}

}  // namespace icam::kernel
