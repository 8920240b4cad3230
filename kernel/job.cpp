#include "kernel/job.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "sched/sequence.h"
#include "syscalls/capability.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

using nlohmann::json;

Error bad(std::string_view source, std::string_view path, std::string_view what) {
  return make_error(Errc::invalid_argument, source, ": ", path, ": ", what);
}

Result<std::string> get_string(const json& v, std::string_view source, std::string_view path,
                               bool allow_empty, size_t max_bytes) {
  if (!v.is_string()) return bad(source, path, "expected a string");
  std::string s = v.get<std::string>();
  if (!allow_empty && s.empty()) return bad(source, path, "expected a non-empty string");
  if (s.size() > max_bytes)
    return bad(source, path, str_cat("string longer than ", max_bytes, " bytes"));
  return s;
}

// An integer in [min, max]; `what` is the message for anything else.
Result<int64_t> get_int(const json& v, std::string_view source, std::string_view path, int64_t min,
                        int64_t max, std::string_view what) {
  if (!v.is_number_integer()) return bad(source, path, what);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max))
    return bad(source, path, what);
  const int64_t n = v.get<int64_t>();
  if (n < min || n > max) return bad(source, path, what);
  return n;
}

bool plain_name(std::string_view name, bool allow_dot) {
  if (name.empty()) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' &&
        !(allow_dot && c == '.'))
      return false;
  return true;
}

// An array of strings, each checked by `check` (which returns an error text or "").
template <typename Check>
Result<std::vector<std::string>> get_strings(const json& v, std::string_view source,
                                             const std::string& path, size_t max_items,
                                             size_t max_bytes, Check check) {
  if (!v.is_array()) return bad(source, path, "expected an array of strings");
  if (v.size() > max_items) return bad(source, path, str_cat("more than ", max_items, " items"));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string ipath = str_cat(path, "/", i);
    std::string item = ICAM_TRY(get_string(v[i], source, ipath, false, max_bytes));
    if (std::string why = check(item); !why.empty()) return bad(source, ipath, why);
    out.push_back(std::move(item));
  }
  return out;
}

Result<DriverSpec> driver_from_json(const json& v, std::string_view source,
                                    const std::string& path) {
  if (!v.is_object()) return bad(source, path, "expected an object with \"name\" and \"command\"");
  DriverSpec d;
  bool have_name = false, have_command = false;
  for (const auto& [key, value] : v.items()) {
    const std::string kpath = path + "/" + key;
    if (key == "name") {
      d.name = ICAM_TRY(get_string(value, source, kpath, false, 64));
      if (!plain_name(d.name, false))
        return bad(source, kpath, "a driver name is letters, digits, '_' and '-'");
      have_name = true;
    } else if (key == "command") {
      d.command = ICAM_TRY(get_strings(value, source, kpath, 256, 4096,
                                       [](const std::string&) { return std::string(); }));
      if (d.command.empty())
        return bad(source, kpath, "expected the program and its arguments (at least one string)");
      if (d.command[0].front() != '/')
        return bad(source, kpath + "/0", "the program must be an absolute path");
      have_command = true;
    } else if (key == "tools") {
      std::set<std::string> seen;
      d.tools = ICAM_TRY(get_strings(value, source, kpath, 256, 128, [&](const std::string& t) {
        return seen.insert(t).second ? std::string() : str_cat("tool '", t, "' listed twice");
      }));
      if (d.tools.empty())
        return bad(source, kpath, "empty; leave \"tools\" out to allow every tool of the driver");
    } else if (key == "read_only") {
      d.read_only = ICAM_TRY(get_strings(value, source, kpath, 64, 4096, [](const std::string& p) {
        return p.front() == '/' ? std::string() : std::string("expected an absolute path");
      }));
    } else if (key == "net") {
      if (!value.is_boolean()) return bad(source, kpath, "expected true or false");
      d.net = value.get<bool>();
    } else if (key == "timeout_ms") {
      d.timeout_ms =
          ICAM_TRY(get_int(value, source, kpath, 1, 600000, "expected an integer from 1 to 600000"));
    } else {
      return bad(source, kpath,
                 "unknown key (known: name, command, tools, read_only, net, timeout_ms)");
    }
  }
  if (!have_name) return bad(source, path + "/name", "missing");
  if (!have_command) return bad(source, path + "/command", "missing");
  return d;
}

}  // namespace

bool is_known_tool(std::string_view name) {
  return syscalls::find_syscall(name) != nullptr;
}

Result<JobSpec> job_from_json(const json& j, std::string_view source) {
  if (!j.is_object()) return bad(source, "/", "expected an object");
  JobSpec job;
  bool have_task = false;
  for (const auto& [key, v] : j.items()) {
    const std::string path = "/" + key;
    if (key == "name") {
      job.name = ICAM_TRY(get_string(v, source, path, false, 128));
    } else if (key == "system") {
      job.system = ICAM_TRY(get_string(v, source, path, true, 1 << 20));
    } else if (key == "task") {
      job.task = ICAM_TRY(get_string(v, source, path, false, 1 << 20));
      have_task = true;
    } else if (key == "history") {
      if (!v.is_array()) return bad(source, path, "expected an array of messages");
      if (v.size() > kMaxHistoryMessages)
        return bad(source, path, str_cat("more than ", kMaxHistoryMessages, " messages"));
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string mpath = str_cat(path, "/", i);
        const json& m = v[i];
        if (!m.is_object() || m.size() != 2 || !m.contains("role") || !m.contains("content"))
          return bad(source, mpath, "expected an object with exactly \"role\" and \"content\"");
        std::string role = ICAM_TRY(get_string(m["role"], source, mpath + "/role", false, 16));
        const char* expected = i % 2 == 0 ? "user" : "assistant";
        if (role != expected)
          return bad(source, mpath + "/role",
                     str_cat("expected \"", expected,
                             "\" (history alternates user and assistant, starting with user)"));
        std::string content =
            ICAM_TRY(get_string(m["content"], source, mpath + "/content", true, 1 << 20));
        job.history.push_back({std::move(role), std::move(content)});
      }
      if (!job.history.empty() && job.history.back().role != "assistant")
        return bad(source, path, "the last message must be the assistant's (the task follows it)");
    } else if (key == "model") {
      job.model = ICAM_TRY(get_string(v, source, path, true, 4096));
    } else if (key == "sampling") {
      auto s = llm::sampling_params_from_json(v);
      if (!s.ok()) return bad(source, path, s.error().message());
      job.sampling = std::move(*s);
    } else if (key == "priority") {
      job.priority = static_cast<int>(
          ICAM_TRY(get_int(v, source, path, sched::kMinPriority, sched::kMaxPriority,
                           "expected an integer from 1 to 100")));
    } else if (key == "budgets") {
      if (!v.is_object()) return bad(source, path, "expected an object");
      for (const auto& [bkey, b] : v.items()) {
        const std::string bpath = path + "/" + bkey;
        if (bkey == "tokens") {
          job.budgets.tokens =
              ICAM_TRY(get_int(b, source, bpath, 1, INT64_MAX, "expected a positive integer"));
        } else if (bkey == "wall_seconds") {
          if (!b.is_number() || !std::isfinite(b.get<double>()) || b.get<double>() <= 0)
            return bad(source, bpath, "expected a positive number");
          job.budgets.wall_seconds = b.get<double>();
        } else if (bkey == "syscalls") {
          job.budgets.syscalls =
              ICAM_TRY(get_int(b, source, bpath, 0, INT64_MAX, "expected a non-negative integer"));
        } else {
          return bad(source, bpath, "unknown key");
        }
      }
    } else if (key == "context_tokens") {
      job.context_tokens = ICAM_TRY(get_int(v, source, path, 0, kMaxContextTokens,
                                            str_cat("expected an integer from 0 to ",
                                                    kMaxContextTokens)));
    } else if (key == "tools") {
      if (!v.is_array()) return bad(source, path, "expected an array of tool names");
      std::set<std::string> seen;
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string tpath = str_cat(path, "/", i);
        std::string name = ICAM_TRY(get_string(v[i], source, tpath, false, 256));
        if (!is_known_tool(name))
          return bad(source, tpath,
                     str_cat("unknown tool '", name, "' (known: ", syscalls::syscall_names(), ")"));
        if (!seen.insert(name).second)
          return bad(source, tpath, str_cat("tool '", name, "' listed twice"));
        job.tools.push_back(std::move(name));
      }
    } else if (key == "capabilities") {
      if (!v.is_array()) return bad(source, path, "expected an array of capability strings");
      std::set<std::string> seen;
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string cpath = str_cat(path, "/", i);
        std::string text = ICAM_TRY(get_string(v[i], source, cpath, false, 2048));
        // Checked here with a stand-in workspace, so a malformed capability is a job error
        // naming its place rather than a failed spawn.
        std::string probe = text;
        for (size_t at = probe.find(kWorkspaceVariable); at != std::string::npos;
             at = probe.find(kWorkspaceVariable, at))
          probe.replace(at, kWorkspaceVariable.size(), "/workspace");
        auto parsed = syscalls::parse_capability(probe);
        if (!parsed.ok()) return bad(source, cpath, parsed.error().message());
        if (!seen.insert(text).second)
          return bad(source, cpath, str_cat("capability '", text, "' listed twice"));
        job.capabilities.push_back(std::move(text));
      }
    } else if (key == "drivers") {
      if (!v.is_array()) return bad(source, path, "expected an array of driver objects");
      if (v.size() > kMaxJobDrivers)
        return bad(source, path, str_cat("more than ", kMaxJobDrivers, " drivers"));
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string dpath = str_cat(path, "/", i);
        DriverSpec d = ICAM_TRY(driver_from_json(v[i], source, dpath));
        for (const auto& other : job.drivers)
          if (other.name == d.name)
            return bad(source, dpath + "/name", str_cat("driver '", d.name, "' declared twice"));
        job.drivers.push_back(std::move(d));
      }
    } else if (key == "workspace") {
      // "" is the default (to_json writes it), so a job survives a round trip.
      job.workspace = ICAM_TRY(get_string(v, source, path, true, 4096));
      if (!job.workspace.empty() && job.workspace.front() != '/')
        return bad(source, path, "expected an absolute path (or \"\" for the default)");
    } else {
      return bad(source, path, "unknown key");
    }
  }
  if (!have_task) return bad(source, "/task", "missing (the task for the agent is required)");
  // A declared driver is reached only through tool.call; declaring one without it is a mistake.
  if (!job.drivers.empty() &&
      std::find(job.tools.begin(), job.tools.end(), kToolCall) == job.tools.end())
    return bad(source, "/drivers",
               "external drivers are called with tool.call, which /tools does not list");
  return job;
}

Result<JobSpec> parse_job(std::string_view text, std::string_view source) {
  // nlohmann reports the position of a syntax error only through its exception; it is caught
  // here and turned into an error value.
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return make_error(Errc::invalid_argument, source, ": malformed JSON: ", e.what());
  }
  return job_from_json(j, source);
}

Result<JobSpec> load_job_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::not_found, path, ": cannot open the job file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return make_error(Errc::io, path, ": read failed");
  return parse_job(text, path);
}

nlohmann::json to_json(const JobSpec& job) {
  json history = json::array();
  for (const auto& m : job.history) history.push_back({{"role", m.role}, {"content", m.content}});
  json drivers = json::array();
  for (const auto& d : job.drivers) drivers.push_back(to_json(d));
  return json{{"name", job.name},
              {"system", job.system},
              {"task", job.task},
              {"history", std::move(history)},
              {"model", job.model},
              {"sampling", llm::to_json(job.sampling)},
              {"priority", job.priority},
              {"budgets",
               {{"tokens", job.budgets.tokens},
                {"wall_seconds", job.budgets.wall_seconds},
                {"syscalls", job.budgets.syscalls}}},
              {"tools", job.tools},
              {"capabilities", job.capabilities},
              {"workspace", job.workspace},
              {"drivers", std::move(drivers)},
              {"context_tokens", job.context_tokens}};
}

nlohmann::json to_json(const DriverSpec& d) {
  json entry = {{"name", d.name}, {"command", d.command}, {"read_only", d.read_only},
                {"net", d.net},   {"timeout_ms", d.timeout_ms}};
  if (!d.tools.empty()) entry["tools"] = d.tools;  // absent = every tool
  return entry;
}

}  // namespace icam::kernel
