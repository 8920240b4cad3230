#include "shell/session.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "kernel/ctl/daemon_commands.h"
#include "syscalls/capability_store.h"

namespace icam::shell {
namespace {

using nlohmann::json;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Model output shown on a terminal: control characters (escape sequences above all) could move
// the cursor, retitle the window or worse, so all but newline and tab are shown as U+FFFD.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
      out += "\xEF\xBF\xBD";
    } else {
      out += ch;
    }
  }
  return out;
}

Result<uint64_t> parse_pid(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 18)
    return make_error(Errc::invalid_argument, "expected a process id, got '", t, "'");
  return std::stoull(t);
}

}  // namespace

Session::Session(SessionOptions options, std::atomic<bool>* interrupt)
    : options_(std::move(options)), interrupt_(interrupt) {}

std::string Session::help() {
  return "Type a message to talk to the agent; its answer streams back. Ctrl-C stops a turn.\n"
         "  /ps [all]           list processes\n"
         "  /spawn TASK         start a background agent process with TASK\n"
         "  /run JOB.json       start a background process from a job file\n"
         "  /kill PID           cancel a process\n"
         "  /approve PID [TEXT] answer a process's question (human.ask, shown by /ps): yes\n"
         "  /deny PID [TEXT]    answer a process's question: no, with TEXT as the reason\n"
         "  /info PID           a process's record\n"
         "  /caps PID           a process's capabilities and where each came from\n"
         "  /logs PID           a process's output so far\n"
         "  /wait PID           wait for a process to exit\n"
         "  /stats              the daemon's counters\n"
         "  /system [TEXT]      show or set the system message\n"
         "  /tokens [N]         show or set the most tokens per answer\n"
         "  /reset              forget the conversation\n"
         "  /history            show the conversation\n"
         "  /help, /quit        this help; leave (also Ctrl-D)\n";
}

Result<client::DaemonClient*> Session::client() {
  if (!client_) {
    client_.emplace(ICAM_TRY(client::DaemonClient::connect(options_.socket)));
    client_->set_interrupt(interrupt_);
  }
  return &*client_;
}

void Session::print_error(const Error& error) {
  // A lost or interrupted connection is closed; the next command opens a new one.
  if (error.code() == Errc::unavailable || error.code() == Errc::cancelled) client_.reset();
  std::cout << "error: " << error.message() << "\n" << std::flush;
}

bool Session::handle(const std::string& raw) {
  const std::string line = trim(raw);
  if (line.empty()) return true;
  if (line[0] != '/') {
    turn(line);
    return true;
  }
  const size_t space = line.find(' ');
  const std::string name = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
  const std::string rest = space == std::string::npos ? "" : trim(line.substr(space + 1));
  if (name == "quit" || name == "exit" || name == "q") return false;
  command(name, rest);
  return true;
}

void Session::turn(const std::string& text) {
  auto c = client();
  if (!c.ok()) return print_error(c.error());
  json history = json::array();
  for (const auto& m : history_) history.push_back({{"role", m.role}, {"content", m.content}});
  json job = {{"name", "icamsh"},
              {"system", options_.system},
              {"task", text},
              {"history", history},
              {"priority", options_.priority},
              {"sampling", {{"temperature", options_.temperature},
                            {"max_tokens", options_.max_tokens}}},
              {"budgets", {{"tokens", options_.max_tokens}}}};
  // The spawn itself is not interrupted: a Ctrl-C during it would lose the new process's pid
  // and leave the turn running unseen. It takes effect as soon as the pid is known.
  (*c)->set_interrupt(nullptr);
  auto spawned = (*c)->call("proc.run", {{"job", job}});
  (*c)->set_interrupt(interrupt_);
  if (!spawned.ok()) return print_error(spawned.error());
  const uint64_t pid = (*spawned)["pid"].get<uint64_t>();
  if (interrupt_->load()) return stop_turn(pid);
  auto followed = (*c)->call_streaming("proc.logs", {{"pid", pid}, {"follow", true}},
                                       [](const std::string& method, const json& params) {
                                         if (method != "proc.output") return;
                                         std::cout << printable(params.value("text", ""))
                                                   << std::flush;
                                       });
  if (!followed.ok()) {
    client_.reset();
    if (followed.error().code() != Errc::cancelled) return print_error(followed.error());
    return stop_turn(pid);
  }
  const json& record = (*followed)["process"];
  std::cout << "\n";
  const std::string reason = record["exit"].value("reason", "");
  if (reason != "completed") std::cout << "[" << reason << "]\n";
  std::cout << std::flush;
  if (reason == "completed" || reason == "budget_tokens") {
    history_.push_back({"user", text});
    history_.push_back({"assistant", record["exit"].value("answer", "")});
  }
}

// Ctrl-C during a turn: stop the turn's process; the shell goes on.
void Session::stop_turn(uint64_t pid) {
  interrupt_->store(false);
  auto c = client();
  if (c.ok()) (void)(*c)->call("proc.kill", {{"pid", pid}});
  std::cout << "\n[interrupted: process " << pid << " killed]\n" << std::flush;
}

void Session::command(const std::string& name, const std::string& rest) {
  if (name == "help" || name == "?") {
    std::cout << help() << std::flush;
    return;
  }
  if (name == "system") {
    if (!rest.empty()) options_.system = rest;
    std::cout << "system: " << (options_.system.empty() ? "(none)" : options_.system) << "\n";
    return;
  }
  if (name == "tokens") {
    if (!rest.empty()) {
      auto n = parse_pid(rest);  // a positive integer, like a pid
      if (!n.ok() || *n > (1u << 30))
        return print_error(make_error(Errc::invalid_argument, "usage: /tokens N (1 to 2^30)"));
      options_.max_tokens = static_cast<int64_t>(*n);
    }
    std::cout << "tokens per answer: " << options_.max_tokens << "\n";
    return;
  }
  if (name == "reset") {
    history_.clear();
    std::cout << "conversation cleared\n";
    return;
  }
  if (name == "history") {
    for (const auto& m : history_) std::cout << m.role << ": " << m.content << "\n";
    if (history_.empty()) std::cout << "(no conversation yet)\n";
    return;
  }
  auto c = client();
  if (!c.ok()) return print_error(c.error());
  client::DaemonClient& d = **c;
  auto need_pid = [&]() -> Result<uint64_t> { return parse_pid(rest); };

  if (name == "ps") {
    auto list = d.call("proc.list", {{"all", rest == "all"}});
    if (!list.ok()) return print_error(list.error());
    std::vector<json> records((*list)["processes"].begin(), (*list)["processes"].end());
    std::cout << ctl::process_table(records) << std::flush;
  } else if (name == "spawn" || name == "run") {
    json job;
    if (name == "spawn") {
      if (rest.empty()) return print_error(make_error(Errc::invalid_argument, "usage: /spawn TASK"));
      job = {{"name", "spawned"}, {"task", rest}, {"budgets", {{"tokens", options_.max_tokens}}}};
    } else {
      std::ifstream in(rest);
      if (!in) return print_error(make_error(Errc::not_found, rest, ": cannot open the job file"));
      job = json::parse(std::string(std::istreambuf_iterator<char>(in), {}), nullptr, false);
      if (job.is_discarded())
        return print_error(make_error(Errc::invalid_argument, rest, ": malformed JSON"));
    }
    auto r = d.call("proc.run", {{"job", job}});
    if (!r.ok()) return print_error(r.error());
    std::cout << "started process " << (*r)["pid"] << "\n";
  } else if (name == "kill" || name == "info" || name == "logs" || name == "wait" ||
             name == "caps") {
    auto pid = need_pid();
    if (!pid.ok()) return print_error(pid.error());
    if (name == "kill") {
      auto r = d.call("proc.kill", {{"pid", *pid}});
      if (!r.ok()) return print_error(r.error());
      std::cout << "killed " << *pid << "\n";
    } else if (name == "caps") {
      auto r = d.call("proc.caps", {{"pid", *pid}});
      if (!r.ok()) return print_error(r.error());
      std::vector<syscalls::ProvenanceEntry> entries;
      for (const json& j : (*r)["capabilities"]) {
        auto entry = syscalls::provenance_from_json(j);
        if (!entry.ok()) return print_error(entry.error());
        entries.push_back(std::move(*entry));
      }
      if (entries.empty()) {
        std::cout << "process " << *pid << " holds no capabilities\n";
      } else {
        std::cout << printable(syscalls::format_provenance_table(entries));
      }
    } else if (name == "info") {
      auto r = d.call("proc.get", {{"pid", *pid}});
      if (!r.ok()) return print_error(r.error());
      std::cout << (*r)["process"].dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else if (name == "logs") {
      auto r = d.call("proc.logs", {{"pid", *pid}});
      if (!r.ok()) return print_error(r.error());
      std::cout << printable((*r)["text"].get<std::string>()) << "\n";
    } else {
      auto r = d.call("proc.wait", {{"pid", *pid}});
      if (!r.ok()) {
        client_.reset();
        return print_error(r.error());
      }
      std::cout << ctl::summary_line((*r)["process"]) << "\n";
    }
  } else if (name == "approve" || name == "deny") {
    // "/approve PID [ANSWER...]": the pid, then the rest of the line as the answer or reason.
    const size_t gap = rest.find(' ');
    auto pid = parse_pid(rest.substr(0, gap));
    if (!pid.ok())
      return print_error(make_error(Errc::invalid_argument, "usage: /", name, " PID [TEXT]"));
    json params = {{"pid", *pid}};
    if (gap != std::string::npos && !trim(rest.substr(gap)).empty())
      params[name == "approve" ? "answer" : "reason"] = trim(rest.substr(gap));
    auto r = d.call(name == "approve" ? "proc.approve" : "proc.deny", params);
    if (!r.ok()) return print_error(r.error());
    std::cout << (name == "approve" ? "approved " : "denied ") << *pid << "\n";
  } else if (name == "stats") {
    auto s = d.call("kernel.stats");
    if (!s.ok()) return print_error(s.error());
    const json& sc = (*s)["scheduler"];
    const json& kv = (*s)["kv"];
    std::printf("%lld live processes | %.1f tok/s | %lld steps, mean batch %.2f | kv %lld/%lld pages\n",
                (*s)["processes"].value("live", 0ll), s->value("tokens_per_s", 0.0),
                sc.value("steps", 0ll), sc.value("mean_batch", 0.0), kv.value("pages_used", 0ll),
                kv.value("pages_total", 0ll));
  } else {
    print_error(make_error(Errc::invalid_argument, "unknown command '/", name, "' (try /help)"));
  }
  std::cout << std::flush;
}

}  // namespace icam::shell
