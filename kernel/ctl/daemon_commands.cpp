// icamctl's commands that talk to a running daemon: ps, kill, wait, logs, top, stats, daemon.
#include "kernel/ctl/daemon_commands.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"
#include "kernel/daemon/protocol.h"
#include "syscalls/capability_store.h"

namespace icam::ctl {
namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) {
  g_interrupted.store(true);
}

// Ctrl-C sets g_interrupted (blocked calls notice within 100 ms) instead of killing icamctl, so
// commands can end cleanly.
void catch_interrupts(client::DaemonClient& c) {
  g_interrupted.store(false);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigaction(SIGINT, &action, nullptr);
  c.set_interrupt(&g_interrupted);
}

OptionSpec socket_spec() {
  return {"socket", "", true, false, "daemon socket (default: configured socket)"};
}
OptionSpec json_spec() {
  return {"json", "", false, false, "print JSON instead of a table"};
}
OptionSpec help_spec() {
  return {"help", "h", false, false, "show this help"};
}

Result<uint64_t> parse_pid(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v == 0 || text[0] == '-')
    return make_error(Errc::invalid_argument, "'", text, "' is not a process id");
  return static_cast<uint64_t>(v);
}

std::string seconds_text(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%dh%02dm", static_cast<int>(s) / 3600,
                  (static_cast<int>(s) / 60) % 60);
  }
  return buf;
}

std::string bytes_text(double b) {
  char buf[32];
  if (b >= 1 << 30) {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", b / (1 << 30));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", b / (1 << 20));
  }
  return buf;
}

// Parses the command line; prints help and returns an exit status when there is nothing to do.
struct Parsed {
  Args args;
  std::optional<int> done;
};
Parsed parse_or_help(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs,
                     const char* usage, const char* about) {
  auto args = Args::parse(argv, specs);
  if (!args.ok()) return {Args{}, fail(kExitUsage, args.error().message())};
  if (args->has("help")) {
    std::cout << "usage: " << usage << "\n\n" << about << "\n\n" << usage_lines(specs);
    return {*args, kExitOk};
  }
  return {*args, std::nullopt};
}

}  // namespace

int fail(int status, const std::string& message) {
  std::fprintf(stderr, "icamctl: %s\n", message.c_str());
  return status;
}

Result<client::DaemonClient> connect_daemon(const Config& config, const std::string& socket) {
  client::DaemonClient c = ICAM_TRY(client::DaemonClient::connect(socket.empty() ? config.socket
                                                                                 : socket));
  json info = ICAM_TRY(c.call("daemon.info"));
  const int version = info.value("api_version", 0);
  if (version != daemon::kApiVersion)
    return make_error(Errc::unsupported, "the daemon speaks API version ", version,
                      ", this icamctl speaks ", daemon::kApiVersion);
  return c;
}

int fail_with(const Error& error) {
  switch (error.code()) {
    case Errc::unavailable:
      return fail(kExitNoDaemon, error.message());
    case Errc::not_found:
      return fail(kExitNoProcess, error.message());
    case Errc::invalid_argument:
      return fail(kExitUsage, error.message());
    case Errc::cancelled:
      return fail(kExitInterrupted, error.message());
    default:
      return fail(kExitFailure, error.message());
  }
}

int exit_status_for(const json& record) {
  const json& exit = record.value("exit", json(nullptr));
  if (!exit.is_object()) return kExitFailure;
  const std::string reason = exit.value("reason", "");
  if (reason == "completed") return kExitOk;
  if (reason.rfind("budget_", 0) == 0) return kExitBudget;
  if (reason == "cancelled") return kExitInterrupted;
  return kExitFailure;
}

std::string summary_line(const json& p) {
  const json& a = p["accounting"];
  const double running = a["state_seconds"].value("running", 0.0);
  const double generated = a.value("generated_tokens", 0.0);
  // A rate over fewer than two tokens says nothing.
  const double tps = running > 0 && generated > 1 ? generated / running : 0;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "pid %llu (%s): exit %s | prompt %lld tokens, generated %lld tokens, %.1f tokens/s "
                "| %d turns, %lld syscalls | %.2f s",
                p.value("pid", 0ull), p.value("name", std::string()).c_str(),
                p["exit"].is_object() ? p["exit"].value("reason", std::string()).c_str() : "none",
                a.value("prompt_tokens", 0ll), a.value("generated_tokens", 0ll), tps,
                a.value("turns", 0), a.value("syscalls", 0ll), a.value("wall_seconds", 0.0));
  std::string line = buf;
  if (p["exit"].is_object() && p["exit"].contains("error"))
    line += "\nerror: " + p["exit"]["error"].get<std::string>();
  return line;
}

std::string process_table(const std::vector<json>& records, bool memory) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%6s %6s %-16s %-8s %4s %7s %7s %5s %8s", "PID", "PPID", "NAME",
                "STATE", "PRIO", "PROMPT", "GEN", "SYSC", "TIME");
  out += buf;
  // top's memory columns: KV pages resident in the pool, pages taken back (swapped out, or to be
  // recomputed without a page store), and prompt tokens attached from other processes' pages.
  if (memory) {
    std::snprintf(buf, sizeof(buf), " %6s %6s %7s", "KV", "OUT", "SHARED");
    out += buf;
  }
  out += "  EXIT\n";
  for (const json& p : records) {
    const json& a = p["accounting"];
    std::string name = p.value("name", std::string());
    if (name.size() > 16) name = name.substr(0, 15) + "~";
    const std::string exit =
        p["exit"].is_object() ? p["exit"].value("reason", std::string()) : std::string("-");
    std::snprintf(buf, sizeof(buf), "%6llu %6llu %-16s %-8s %4d %7lld %7lld %5lld %8s",
                  p.value("pid", 0ull), p.value("parent", 0ull), name.c_str(),
                  p.value("state", std::string()).c_str(), p.value("priority", 0),
                  a.value("prompt_tokens", 0ll), a.value("generated_tokens", 0ll),
                  a.value("syscalls", 0ll), seconds_text(a.value("wall_seconds", 0.0)).c_str());
    out += buf;
    if (memory) {
      if (p.contains("memory") && p["memory"].is_object()) {
        const json& m = p["memory"];
        std::snprintf(buf, sizeof(buf), " %6lld %6lld %7lld", m.value("resident_pages", 0ll),
                      m.value("out_pages", 0ll), m.value("shared_tokens", 0ll));
      } else {
        std::snprintf(buf, sizeof(buf), " %6s %6s %7s", "-", "-", "-");
      }
      out += buf;
    }
    out += "  " + exit + "\n";
    // What a blocked process waits on (a question for its owner shows here), on one line.
    if (p.contains("blocked_on") && p["blocked_on"].is_string()) {
      std::string on = p["blocked_on"].get<std::string>();
      for (char& ch : on)
        if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
      if (on.size() > 100) on = on.substr(0, 99) + "~";
      out.pop_back();
      out += "  on " + on + "\n";
    }
  }
  return out;
}

int cmd_ps(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"all", "a", false, false, "every user's processes (root only)"},
      {"live", "l", false, false, "only processes that have not exited"},
      socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(argv, specs, "icamctl ps [OPTIONS]",
                                    "Lists your processes, live and recently exited.");
  if (done) return *done;
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto result = c->call("proc.list", {{"all", args.has("all")}});
  if (!result.ok()) return fail_with(result.error());
  std::vector<json> records;
  for (const json& p : (*result)["processes"])
    if (!args.has("live") || p["state"] != "exited") records.push_back(p);
  if (args.has("json")) {
    std::cout << json(records).dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::cout << process_table(records);
  }
  return kExitOk;
}

int cmd_caps(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl caps PID [--json]",
      "Shows the capabilities a process holds, their state and uses left, and where each came\n"
      "from. --json prints one JSON object per capability and line.");
  if (done) return *done;
  if (args.positional().size() != 1) return fail(kExitUsage, "usage: icamctl caps PID");
  auto pid = parse_pid(args.positional()[0]);
  if (!pid.ok()) return fail(kExitUsage, pid.error().message());
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto result = c->call("proc.caps", {{"pid", *pid}});
  if (!result.ok()) return fail_with(result.error());
  std::vector<syscalls::ProvenanceEntry> entries;
  for (const json& j : (*result)["capabilities"]) {
    auto entry = syscalls::provenance_from_json(j);
    if (!entry.ok()) return fail(kExitFailure, "the daemon's answer: " + entry.error().message());
    entries.push_back(std::move(*entry));
  }
  if (args.has("json")) {
    std::cout << syscalls::format_provenance_jsonl(entries);
  } else if (entries.empty()) {
    std::cout << "process " << *pid << " holds no capabilities\n";
  } else {
    std::cout << syscalls::format_provenance_table(entries);
  }
  return kExitOk;
}

int cmd_kill(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {socket_spec(), help_spec()};
  auto [args, done] = parse_or_help(argv, specs, "icamctl kill PID...",
                                    "Cancels processes: each exits with reason 'cancelled'.");
  if (done) return *done;
  if (args.positional().empty()) return fail(kExitUsage, "usage: icamctl kill PID...");
  std::vector<uint64_t> pids;
  for (const auto& text : args.positional()) {
    auto pid = parse_pid(text);
    if (!pid.ok()) return fail(kExitUsage, pid.error().message());
    pids.push_back(*pid);
  }
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  int status = kExitOk;
  for (uint64_t pid : pids) {
    auto result = c->call("proc.kill", {{"pid", pid}});
    if (!result.ok()) {
      status = fail_with(result.error());
      continue;
    }
    std::cout << "killed " << pid << "\n";
  }
  return status;
}

int cmd_checkpoint(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"label", "", true, false, "a name for it (default: checkpoint)"}, socket_spec(),
      json_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl checkpoint PID [--label L] [--json]",
      "Records a process as it is now (its context to its last committed token, its tool\n"
      "results) in the daemon's process journal; prints the checkpoint's id, which\n"
      "`icamctl restore` starts a new process from.");
  if (done) return *done;
  if (args.positional().size() != 1)
    return fail(kExitUsage, "usage: icamctl checkpoint PID [--label L]");
  auto pid = parse_pid(args.positional()[0]);
  if (!pid.ok()) return fail(kExitUsage, pid.error().message());
  json params = {{"pid", *pid}};
  if (auto label = args.get("label")) params["label"] = *label;
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto result = c->call("proc.checkpoint", params);
  if (!result.ok()) return fail_with(result.error());
  const json& cp = (*result)["checkpoint"];
  if (args.has("json")) {
    std::cout << result->dump() << "\n";
  } else {
    std::cout << cp["id"].get<int64_t>() << "\n";
    std::cerr << "checkpoint " << cp["id"].get<int64_t>() << " of process " << *pid << " ('"
              << cp["label"].get<std::string>() << "'): " << cp["tokens"].get<int64_t>()
              << " tokens, " << cp["tool_calls"].get<int64_t>() << " tool results\n";
  }
  return kExitOk;
}

int cmd_restore(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"label", "", true, false, "with PID: the newest checkpoint of PID with this label"},
      socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl restore CHECKPOINT_ID | PID --label L [--json]",
      "Starts a new process from a checkpoint (icamctl checkpoint): the same job, owner and\n"
      "capabilities, its context the checkpoint's; prints the new pid.");
  if (done) return *done;
  if (args.positional().size() != 1)
    return fail(kExitUsage, "usage: icamctl restore CHECKPOINT_ID | PID --label L");
  auto number = parse_pid(args.positional()[0]);
  if (!number.ok()) return fail(kExitUsage, number.error().message());
  json params;
  if (auto label = args.get("label")) {
    params = {{"pid", *number}, {"label", *label}};
  } else {
    params = {{"checkpoint", *number}};
  }
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto result = c->call("proc.restore", params);
  if (!result.ok()) return fail_with(result.error());
  if (args.has("json")) {
    std::cout << result->dump() << "\n";
  } else {
    std::cout << (*result)["pid"].get<uint64_t>() << "\n";
  }
  return kExitOk;
}

int cmd_answer(const Config& config, const std::vector<std::string>& argv, bool approve) {
  const char* key = approve ? "answer" : "reason";
  const std::vector<OptionSpec> specs = {
      {key, "", true, false, approve ? "the answer (default: yes)" : "why (default: no)"},
      socket_spec(), help_spec()};
  const char* usage = approve ? "icamctl approve PID [--answer TEXT]"
                              : "icamctl deny PID [--reason TEXT]";
  auto [args, done] = parse_or_help(
      argv, specs, usage,
      approve ? "Answers the question a process asked with human.ask, approving it; the process\n"
                "resumes with {answer, approved: true}. `icamctl ps` shows pending questions."
              : "Refuses what a process asked with human.ask; the process resumes with\n"
                "{answer: REASON, approved: false}.");
  if (done) return *done;
  if (args.positional().size() != 1) return fail(kExitUsage, std::string("usage: ") + usage);
  auto pid = parse_pid(args.positional()[0]);
  if (!pid.ok()) return fail(kExitUsage, pid.error().message());
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  json params = {{"pid", *pid}};
  if (auto text = args.get(key)) params[key] = *text;
  auto result = c->call(approve ? "proc.approve" : "proc.deny", params);
  if (!result.ok()) return fail_with(result.error());
  std::cout << (approve ? "approved " : "denied ") << *pid << "\n";
  return kExitOk;
}

int cmd_wait(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"timeout", "", true, false, "give up after this many seconds (exit 1)"},
      socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl wait PID [--timeout S] [--json]",
      "Waits for a process to exit; the exit status reflects how it ended\n"
      "(0 completed, 3 a budget ran out, 130 cancelled, 1 error).");
  if (done) return *done;
  if (args.positional().size() != 1) return fail(kExitUsage, "usage: icamctl wait PID");
  auto pid = parse_pid(args.positional()[0]);
  if (!pid.ok()) return fail(kExitUsage, pid.error().message());
  json params = {{"pid", *pid}};
  if (args.has("timeout")) {
    auto t = args.get_double("timeout", 0);
    if (!t.ok() || *t < 0) return fail(kExitUsage, "--timeout: expected seconds >= 0");
    params["timeout_s"] = *t;
  }
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  catch_interrupts(*c);
  auto result = c->call("proc.wait", params);
  if (!result.ok()) return fail_with(result.error());
  const json& record = (*result)["process"];
  if (args.has("json")) {
    std::cout << record.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::cerr << summary_line(record) << "\n";
  }
  return exit_status_for(record);
}

int cmd_logs(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"follow", "f", false, false, "keep printing output until the process exits"},
      socket_spec(), help_spec()};
  auto [args, done] = parse_or_help(argv, specs, "icamctl logs PID [-f]",
                                    "Prints a process's output (the last 4 MiB).");
  if (done) return *done;
  if (args.positional().size() != 1) return fail(kExitUsage, "usage: icamctl logs PID [-f]");
  auto pid = parse_pid(args.positional()[0]);
  if (!pid.ok()) return fail(kExitUsage, pid.error().message());
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  if (!args.has("follow")) {
    auto result = c->call("proc.logs", {{"pid", *pid}});
    if (!result.ok()) return fail_with(result.error());
    std::cout << (*result)["text"].get<std::string>();
    return kExitOk;
  }
  catch_interrupts(*c);
  auto result = c->call_streaming("proc.logs", {{"pid", *pid}, {"follow", true}},
                                  [](const std::string& method, const json& params) {
                                    if (method != "proc.output") return;
                                    const std::string text = params.value("text", "");
                                    std::fwrite(text.data(), 1, text.size(), stdout);
                                    std::fflush(stdout);
                                  });
  if (!result.ok()) {
    // Ctrl-C stops following; the process carries on.
    if (result.error().code() == Errc::cancelled) return kExitOk;
    return fail_with(result.error());
  }
  std::fputs("\n", stdout);
  std::cerr << summary_line((*result)["process"]) << "\n";
  return kExitOk;
}

int cmd_stats(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(argv, specs, "icamctl stats [--json]",
                                    "Prints the daemon's counters: processes, scheduler, KV pool.");
  if (done) return *done;
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto info = c->call("daemon.info");
  if (!info.ok()) return fail_with(info.error());
  auto stats = c->call("kernel.stats");
  if (!stats.ok()) return fail_with(stats.error());
  if (args.has("json")) {
    std::cout << json{{"daemon", *info}, {"stats", *stats}}.dump(2) << "\n";
    return kExitOk;
  }
  const json& s = *stats;
  const json& sc = s.value("scheduler", json::object());
  const json& kv = s.value("kv", json::object());
  const json& procs = s.value("processes", json::object());
  std::printf("daemon      pid %lld, uptime %s, model %s, backend %s, %d threads%s\n",
              info->value("pid", 0ll), seconds_text(info->value("uptime_s", 0.0)).c_str(),
              (*info)["model"].value("path", std::string()).c_str(),
              info->value("backend", std::string()).c_str(), info->value("threads", 0),
              info->value("draining", false) ? ", draining" : "");
  std::printf("processes   %lld live, %lld exited (kept)\n", procs.value("live", 0ll),
              procs.value("exited", 0ll));
  std::printf("throughput  %.1f tokens/s now\n", s.value("tokens_per_s", 0.0));
  std::printf("scheduler   %s: %lld steps, batch last %lld / mean %.2f / max %lld, "
              "%lld preemptions\n",
              sc.value("policy", std::string()).c_str(), sc.value("steps", 0ll),
              sc.value("last_batch", 0ll), sc.value("mean_batch", 0.0), sc.value("max_batch", 0ll),
              sc.value("preemptions", 0ll));
  std::printf("tokens      %lld fed (%lld prefill, %lld decode), %lld sampled, %lld recomputed\n",
              sc.value("tokens", 0ll), sc.value("prefill_tokens", 0ll),
              sc.value("decode_tokens", 0ll), sc.value("sampled_tokens", 0ll),
              sc.value("recomputed_tokens", 0ll));
  std::printf("time        %.2f s in steps: %.2f s forward, %.2f s sampling, scheduler %.2f%%\n",
              sc.value("step_seconds", 0.0), sc.value("forward_seconds", 0.0),
              sc.value("sample_seconds", 0.0), 100 * sc.value("scheduler_share", 0.0));
  std::printf("prefixes    %lld of %lld prompt pages found computed, %lld prompt tokens shared\n",
              sc.value("prefix_hits", 0ll), sc.value("prefix_lookups", 0ll),
              sc.value("shared_tokens", 0ll));
  const double page_bytes = kv.value("page_bytes", 0.0);
  std::printf("kv pool     %lld / %lld pages used (%s of %s, %lld tokens a page), peak %lld\n",
              kv.value("pages_used", 0ll), kv.value("pages_total", 0ll),
              bytes_text(page_bytes * kv.value("pages_used", 0.0)).c_str(),
              bytes_text(kv.value("bytes", 0.0)).c_str(), kv.value("page_tokens", 0ll),
              kv.value("pages_peak", 0ll));
  if (s.contains("swap") && s["swap"].is_object()) {
    const json& sw = s["swap"];
    const std::string store = sw.value("store", std::string());
    if (store.empty()) {
      const std::string why = sw.value("store_error", std::string());
      std::printf("swap        no page store%s%s: preempted contexts are recomputed\n",
                  why.empty() ? "" : ": ", why.c_str());
    } else {
      std::printf("swap        %lld pages out (%s, %.2f s), %lld in (%s, %.2f s; %lld "
                  "prefetched), %lld errors; store %s\n",
                  sw.value("pages_out", 0ll),
                  bytes_text(page_bytes * sw.value("pages_out", 0.0)).c_str(),
                  sw.value("out_seconds", 0.0), sw.value("pages_in", 0ll),
                  bytes_text(page_bytes * sw.value("pages_in", 0.0)).c_str(),
                  sw.value("in_seconds", 0.0), sw.value("pages_in_prefetched", 0ll),
                  sw.value("errors", 0ll), store.c_str());
    }
  }
  return kExitOk;
}

int cmd_top(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {
      {"interval", "d", true, false, "seconds between refreshes (default 1)"},
      {"iterations", "n", true, false, "refresh this many times, then exit (default: until Ctrl-C)"},
      {"all", "a", false, false, "every user's processes (root only)"},
      socket_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl top [-d SECONDS] [-n COUNT]",
      "A live view of the daemon: throughput, batch size, KV pool use and processes.");
  if (done) return *done;
  auto interval = args.get_double("interval", 1.0);
  if (!interval.ok() || *interval < 0.05 || *interval > 3600)
    return fail(kExitUsage, "--interval: expected seconds from 0.05 to 3600");
  auto iterations = args.get_int("iterations", 0, 0, INT64_MAX);
  if (!iterations.ok()) return fail(kExitUsage, iterations.error().message());
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  catch_interrupts(*c);
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  for (int64_t i = 0; *iterations == 0 || i < *iterations; ++i) {
    auto stats = c->call("kernel.stats");
    if (!stats.ok()) return stats.error().code() == Errc::cancelled ? kExitOk : fail_with(stats.error());
    auto list = c->call("proc.list", {{"all", args.has("all")}});
    if (!list.ok()) return list.error().code() == Errc::cancelled ? kExitOk : fail_with(list.error());
    const json& s = *stats;
    const json& sc = s.value("scheduler", json::object());
    const json& kv = s.value("kv", json::object());
    std::vector<json> live, exited;
    for (const json& p : (*list)["processes"]) (p["state"] == "exited" ? exited : live).push_back(p);
    // Live processes first, then the most recently exited that still fit a screen.
    std::vector<json> shown = live;
    for (size_t k = exited.size(); k > 0 && shown.size() < 30; --k) shown.push_back(exited[k - 1]);
    std::ostringstream frame;
    if (tty) frame << "\x1b[H\x1b[2J";
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "icam top  up %s | %zu live | %.1f tok/s | batch %lld (mean %.2f) | "
                  "kv %lld/%lld pages | scheduler %.2f%%%s\n\n",
                  seconds_text(s.value("uptime_s", 0.0)).c_str(), live.size(),
                  s.value("tokens_per_s", 0.0), sc.value("last_batch", 0ll),
                  sc.value("mean_batch", 0.0), kv.value("pages_used", 0ll),
                  kv.value("pages_total", 0ll), 100 * sc.value("scheduler_share", 0.0),
                  s.value("draining", false) ? " | draining" : "");
    frame << buf << process_table(shown, /*memory=*/true);
    std::cout << frame.str() << std::flush;
    if (*iterations != 0 && i + 1 >= *iterations) break;
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(*interval));
    while (std::chrono::steady_clock::now() < until) {
      if (g_interrupted.load()) return kExitOk;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return kExitOk;
}

int cmd_daemon(const Config& config, const std::vector<std::string>& argv) {
  const std::vector<OptionSpec> specs = {socket_spec(), json_spec(), help_spec()};
  auto [args, done] = parse_or_help(
      argv, specs, "icamctl daemon info|stop",
      "info: what the daemon serves. stop: drain and stop it (as SIGTERM does).");
  if (done) return *done;
  if (args.positional().size() != 1) return fail(kExitUsage, "usage: icamctl daemon info|stop");
  const std::string what = args.positional()[0];
  if (what != "info" && what != "stop")
    return fail(kExitUsage, "unknown daemon command '" + what + "' (info or stop)");
  auto c = connect_daemon(config, args.get("socket").value_or(""));
  if (!c.ok()) return fail_with(c.error());
  auto result = c->call(what == "info" ? "daemon.info" : "daemon.shutdown");
  if (!result.ok()) return fail_with(result.error());
  if (what == "stop") {
    std::cout << "draining\n";
  } else {
    std::cout << result->dump(2) << "\n";
  }
  return kExitOk;
}

}  // namespace icam::ctl
