// icamctl mem: reads tier T2 (docs/memory.md) read-only, straight from its SQLite files, so it
// works with or without a daemon and while one writes: the archival memory (namespaces, their
// entries, a recall as an agent would make it) and the process journal (per process: tokens,
// pages, tool results, checkpoints).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"
#include "kernel/ctl/daemon_commands.h"
#include "kernel/kernel.h"
#include "memory/archive_store.h"
#include "memory/process_journal.h"

namespace icam::ctl {
namespace {

using nlohmann::json;

const std::vector<OptionSpec>& mem_specs() {
  static const std::vector<OptionSpec> specs = {
      {"archive", "", true, false, "the archive database (default: $ICAM_HOME/archive.db)"},
      {"journal", "", true, false, "the process journal (default: $ICAM_HOME/journal.db)"},
      {"limit", "n", true, false, "archive NS / recall: at most this many entries (default 20)"},
      {"json", "", false, false, "JSON instead of a table"},
      {"socket", "", true, false, "the daemon's socket, for the T0/T1 figures (default: configured)"},
      {"help", "h", false, false, "show this help"},
  };
  return specs;
}

constexpr const char* kMemUsage =
    "usage: icamctl mem [--json]                 the tiers: KV pool and page store (from a running\n"
    "                                            icamd), archive namespaces, journaled processes\n"
    "       icamctl mem archive [NS] [-n N] [--json]   namespaces, or the newest entries of NS\n"
    "       icamctl mem recall NS QUERY... [-n N] [--json]  search NS as mem.recall does\n"
    "       icamctl mem journal [PID] [--json]   processes, or one process's record\n"
    "options --archive PATH and --journal PATH name the files (default under $ICAM_HOME).\n\n";

std::string one_line(std::string text, size_t max) {
  for (char& c : text)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

std::string utc(int64_t micros) {
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}

json tags_json(const std::vector<std::string>& tags) {
  return tags.empty() ? json::array() : json(tags);
}

Result<std::unique_ptr<memory::ArchiveStore>> open_archive(const std::string& path) {
  memory::ArchiveOptions o;
  o.read_only = true;
  return memory::ArchiveStore::open(path, o);
}

Result<std::unique_ptr<memory::ProcessJournal>> open_journal(const std::string& path) {
  memory::JournalOptions o;
  o.read_only = true;
  return memory::ProcessJournal::open(path, o);
}

std::string namespaces_table(const std::vector<memory::ArchiveNamespace>& spaces) {
  std::string out = str_cat("NAMESPACE                          ENTRIES       BYTES\n");
  char line[256];
  for (const auto& n : spaces) {
    std::snprintf(line, sizeof line, "%-32s %9lld %11lld\n", one_line(n.name, 32).c_str(),
                  static_cast<long long>(n.entries), static_cast<long long>(n.bytes));
    out += line;
  }
  return out;
}

std::string summaries_table(const std::vector<memory::JournalSummary>& rows) {
  std::string out =
      "   PID NAME             OWNER STATE      TOKENS  PAGES  TOOLS  CKPTS  UPDATED\n";
  char line[256];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%6llu %-16s %5u %-8s %8lld %6lld %6lld %6lld  %s\n",
                  static_cast<unsigned long long>(r.pid), one_line(r.name, 16).c_str(),
                  r.owner_uid, r.state.c_str(), static_cast<long long>(r.tokens),
                  static_cast<long long>(r.pages), static_cast<long long>(r.tool_results),
                  static_cast<long long>(r.checkpoints), utc(r.updated_us).c_str());
    out += line;
  }
  return out;
}

json namespaces_json(const std::vector<memory::ArchiveNamespace>& spaces) {
  json out = json::array();
  for (const auto& n : spaces)
    out.push_back({{"namespace", n.name}, {"entries", n.entries}, {"bytes", n.bytes}});
  return out;
}

json summaries_json(const std::vector<memory::JournalSummary>& rows) {
  json out = json::array();
  for (const auto& r : rows)
    out.push_back({{"pid", r.pid},
                   {"name", r.name},
                   {"owner", r.owner_uid},
                   {"state", r.state},
                   {"tokens", r.tokens},
                   {"pages", r.pages},
                   {"tool_results", r.tool_results},
                   {"checkpoints", r.checkpoints},
                   {"updated", utc(r.updated_us)}});
  return out;
}

// T0 and T1 as the running daemon sees them: the KV pool, the prefix index, the page store's
// traffic, and where each live process's context is. Empty text when no daemon runs.
std::string daemon_tiers(const Config& config, const std::string& socket, json& out) {
  auto c = connect_daemon(config, socket);
  if (!c.ok()) return "daemon: not reachable (" + c.error().message() + "); T0/T1 need icamd\n\n";
  auto stats = c->call("kernel.stats");
  auto list = c->call("proc.list", {{"all", false}});
  if (!stats.ok() || !list.ok())
    return "daemon: " + (stats.ok() ? list.error().message() : stats.error().message()) + "\n\n";
  const json& kv = stats->value("kv", json::object());
  const json& sc = stats->value("scheduler", json::object());
  const json& sw = stats->value("swap", json::object());
  const double page_bytes = kv.value("page_bytes", 0.0);
  const double mib = 1024.0 * 1024.0;
  auto rate = [&](const char* pages, const char* seconds) {
    const double s = sw.value(seconds, 0.0);
    return s > 0 ? sw.value(pages, 0.0) * page_bytes / mib / s : 0.0;
  };
  std::string text;
  text += str_cat("T0 KV pool    ", kv.value("pages_used", 0ll), " / ", kv.value("pages_total", 0ll),
                  " pages (", kv.value("page_tokens", 0ll), " tokens, ",
                  static_cast<int64_t>(page_bytes), " bytes each), peak ",
                  kv.value("pages_peak", 0ll), "; prefix index ", sc.value("prefix_hits", 0ll),
                  " hits of ", sc.value("prefix_lookups", 0ll), " lookups\n");
  const std::string store = sw.value("store", std::string());
  if (store.empty()) {
    text += "T1 page store none (" + sw.value("store_error", std::string("not configured")) +
            "): pages taken back are recomputed\n";
  } else {
    char line[512];
    std::snprintf(line, sizeof(line),
                  "T1 page store %s: %lld pages out (%.1f MiB; engine thread %.1f MiB/s), %lld in "
                  "(%.1f MiB, %.1f MiB/s; %lld prefetched), %lld errors\n",
                  store.c_str(), sw.value("pages_out", 0ll),
                  sw.value("pages_out", 0.0) * page_bytes / mib, rate("pages_out", "out_seconds"),
                  sw.value("pages_in", 0ll), sw.value("pages_in", 0.0) * page_bytes / mib,
                  rate("pages_in", "in_seconds"), sw.value("pages_in_prefetched", 0ll),
                  sw.value("errors", 0ll));
    text += line;
  }
  json processes = json::array();
  std::string table;
  char row[256];
  std::snprintf(row, sizeof(row), "%6s %-16s %-8s %8s %6s %6s %7s\n", "PID", "NAME", "STATE",
                "CONTEXT", "KV", "OUT", "SHARED");
  table += row;
  for (const json& p : (*list)["processes"]) {
    if (!p.contains("memory") || !p["memory"].is_object()) continue;
    const json& m = p["memory"];
    processes.push_back({{"pid", p.value("pid", 0ll)}, {"memory", m}});
    std::string name = p.value("name", std::string());
    if (name.size() > 16) name = name.substr(0, 15) + "~";
    std::snprintf(row, sizeof(row), "%6lld %-16s %-8s %8lld %6lld %6lld %7lld\n",
                  p.value("pid", 0ll), name.c_str(), p.value("state", std::string()).c_str(),
                  m.value("context_tokens", 0ll), m.value("resident_pages", 0ll),
                  m.value("out_pages", 0ll), m.value("shared_tokens", 0ll));
    table += row;
  }
  out["daemon"] = {{"kv", kv}, {"swap", sw}, {"processes", processes}};
  text += processes.empty() ? "no live processes\n" : table;
  return text + "\n";
}

// `icamctl mem`: the daemon's T0/T1 figures when one runs, then both T2 files, each reported as
// absent rather than failing when not written yet.
int overview(const Config& config, const std::string& socket, const std::string& archive_path,
             const std::string& journal_path, bool as_json) {
  json out = json::object();
  std::string text = daemon_tiers(config, socket, out);
  int status = kExitOk;
  auto archive = open_archive(archive_path);
  if (archive.ok()) {
    auto spaces = (*archive)->namespaces();
    if (!spaces.ok()) return fail(kExitFailure, spaces.error().message());
    out["archive"] = {{"path", archive_path}, {"namespaces", namespaces_json(*spaces)}};
    text += str_cat("archive ", archive_path, ": ", spaces->size(),
                    spaces->size() == 1 ? " namespace\n" : " namespaces\n",
                    namespaces_table(*spaces));
  } else if (archive.error().code() == Errc::not_found) {
    out["archive"] = {{"path", archive_path}, {"namespaces", json::array()}};
    text += str_cat("archive ", archive_path, ": none yet\n");
  } else {
    std::fprintf(stderr, "icamctl: %s\n", archive.error().message().c_str());
    status = kExitFailure;
  }
  text += "\n";
  auto journal = open_journal(journal_path);
  if (journal.ok()) {
    auto rows = (*journal)->summaries();
    auto stats = (*journal)->stats();
    if (!rows.ok()) return fail(kExitFailure, rows.error().message());
    if (!stats.ok()) return fail(kExitFailure, stats.error().message());
    out["journal"] = {{"path", journal_path},
                      {"processes", summaries_json(*rows)},
                      {"live", stats->live},
                      {"file_bytes", stats->file_bytes}};
    text += str_cat("journal ", journal_path, ": ", stats->processes, " processes (", stats->live,
                    " live), ", stats->tokens, " tokens, ", stats->file_bytes, " bytes\n",
                    summaries_table(*rows));
  } else if (journal.error().code() == Errc::not_found) {
    out["journal"] = {{"path", journal_path}, {"processes", json::array()}};
    text += str_cat("journal ", journal_path, ": none yet\n");
  } else {
    std::fprintf(stderr, "icamctl: %s\n", journal.error().message().c_str());
    status = kExitFailure;
  }
  print(as_json ? out.dump() + "\n" : text);
  return status;
}

int archive_command(const std::string& path, const std::vector<std::string>& pos, int64_t limit,
                    bool as_json) {
  if (pos.size() > 1) return fail(kExitUsage, "mem archive: unexpected argument '" + pos[1] + "'");
  auto archive = open_archive(path);
  if (!archive.ok()) return fail(kExitFailure, archive.error().message());
  if (pos.empty()) {
    auto spaces = (*archive)->namespaces();
    if (!spaces.ok()) return fail(kExitFailure, spaces.error().message());
    print(as_json ? namespaces_json(*spaces).dump() + "\n" : namespaces_table(*spaces));
    return kExitOk;
  }
  auto entries = (*archive)->entries(pos[0], static_cast<int>(limit));
  if (!entries.ok()) return fail(kExitFailure, entries.error().message());
  if (as_json) {
    json out = json::array();
    for (const auto& e : *entries)
      out.push_back({{"id", e.id},
                     {"text", e.text},
                     {"tags", tags_json(e.tags)},
                     {"created", utc(e.created_us)}});
    print(out.dump() + "\n");
    return kExitOk;
  }
  std::string text = "    ID CREATED              TAGS             TEXT\n";
  char line[512];
  for (const auto& e : *entries) {
    std::string tags;
    for (const auto& t : e.tags) tags += (tags.empty() ? "" : ",") + t;
    std::snprintf(line, sizeof line, "%6lld %s %-16s %s\n", static_cast<long long>(e.id),
                  utc(e.created_us).c_str(), one_line(tags.empty() ? "-" : tags, 16).c_str(),
                  one_line(e.text, 72).c_str());
    text += line;
  }
  print(text);
  return kExitOk;
}

int recall_command(const std::string& path, const std::vector<std::string>& pos, int64_t limit,
                   bool as_json) {
  if (pos.size() < 2) return fail(kExitUsage, "mem recall: expected NS QUERY...");
  std::string query;
  for (size_t i = 1; i < pos.size(); ++i) query += (i > 1 ? " " : "") + pos[i];
  auto archive = open_archive(path);
  if (!archive.ok()) return fail(kExitFailure, archive.error().message());
  const int64_t hits_max = (*archive)->limits().max_hits;
  auto hits = (*archive)->recall(pos[0], query, static_cast<int>(std::min(limit, hits_max)));
  if (!hits.ok()) return fail(kExitFailure, hits.error().message());
  if (as_json) {
    json out = json::array();
    for (const auto& h : *hits)
      out.push_back({{"id", h.id},
                     {"score", h.score},
                     {"text", h.text},
                     {"tags", tags_json(h.tags)},
                     {"snippet", h.snippet}});
    print(out.dump() + "\n");
    return kExitOk;
  }
  std::string text = "    ID      SCORE  SNIPPET\n";
  char line[512];
  for (const auto& h : *hits) {
    std::snprintf(line, sizeof line, "%6lld %10.4g  %s\n", static_cast<long long>(h.id), h.score,
                  one_line(h.snippet, 96).c_str());
    text += line;
  }
  print(text);
  return kExitOk;
}

int journal_command(const std::string& path, const std::vector<std::string>& pos, bool as_json) {
  if (pos.size() > 1) return fail(kExitUsage, "mem journal: unexpected argument '" + pos[1] + "'");
  auto journal = open_journal(path);
  if (!journal.ok()) return fail(kExitFailure, journal.error().message());
  if (pos.empty()) {
    auto rows = (*journal)->summaries();
    if (!rows.ok()) return fail(kExitFailure, rows.error().message());
    print(as_json ? summaries_json(*rows).dump() + "\n" : summaries_table(*rows));
    return kExitOk;
  }
  const std::string& text_pid = pos[0];
  if (text_pid.empty() || text_pid.size() > 18 ||
      text_pid.find_first_not_of("0123456789") != std::string::npos)
    return fail(kExitUsage, "mem journal: expected a pid, got '" + text_pid + "'");
  auto p = (*journal)->load(std::stoull(text_pid));
  if (!p.ok()) return fail(kExitFailure, p.error().message());
  json checkpoints = json::array();
  for (const auto& c : p->checkpoints)
    checkpoints.push_back({{"id", c.id},
                           {"label", c.label},
                           {"tokens", c.tokens},
                           {"tool_calls", c.tool_calls},
                           {"pages", c.page_table.size()},
                           {"created", utc(c.created_us)}});
  json tools = json::array();
  for (const auto& t : p->tool_results)
    tools.push_back({{"call", t.call_index},
                     {"name", t.name},
                     {"at_token", t.at_token},
                     {"result_bytes", t.result.size()}});
  if (as_json) {
    json pages = json::array();
    for (const auto& h : p->page_table) pages.push_back(memory::to_hex(h));
    print(json{{"pid", p->pid},
               {"job", json::parse(p->job, nullptr, false)},
               {"owner", p->owner_uid},
               {"state", p->state},
               {"exit", p->exit.empty() ? json() : json::parse(p->exit, nullptr, false)},
               {"tokens", p->transcript},
               {"page_table", pages},
               {"tool_results", tools},
               {"checkpoints", checkpoints},
               {"created", utc(p->created_us)},
               {"updated", utc(p->updated_us)}}
              .dump() +
          "\n");
    return kExitOk;
  }
  std::string text = str_cat("pid ", p->pid, ", owner ", p->owner_uid, ", ", p->state,
                             p->exit.empty() ? "" : " " + p->exit, "\n", "job: ",
                             one_line(p->job, 200), "\n", "tokens: ", p->transcript.size(),
                             ", pages: ", p->page_table.size(),
                             ", tool results: ", p->tool_results.size(), "\n");
  for (const auto& t : tools)
    text += str_cat("  call ", t["call"].get<int64_t>(), " ", t["name"].get<std::string>(),
                    " at token ", t["at_token"].get<int64_t>(), " (",
                    t["result_bytes"].get<size_t>(), " bytes of result)\n");
  text += str_cat("checkpoints: ", p->checkpoints.size(), "\n");
  for (const auto& c : p->checkpoints)
    text += str_cat("  ", c.id, " '", c.label, "' at token ", c.tokens, ", ", c.tool_calls,
                    " tool results, ", c.page_table.size(), " pages, ", utc(c.created_us), "\n");
  print(text);
  return kExitOk;
}

}  // namespace

int cmd_mem(const Config& config, const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, mem_specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << kMemUsage << usage_lines(mem_specs());
    return kExitOk;
  }
  const std::string archive_path =
      args->get("archive").value_or(kernel::kernel_options(config).archive_path);
  const std::string journal_path = args->get("journal").value_or(config.home + "/journal.db");
  auto limit = args->get_int("limit", 20, 1, 1000);
  if (!limit.ok()) return fail(kExitUsage, limit.error().message());
  const bool as_json = args->has("json");
  const std::vector<std::string>& pos = args->positional();
  if (pos.empty())
    return overview(config, args->get("socket").value_or(""), archive_path, journal_path, as_json);
  const std::string sub = pos[0];
  const std::vector<std::string> rest(pos.begin() + 1, pos.end());
  if (sub == "archive") return archive_command(archive_path, rest, *limit, as_json);
  if (sub == "recall") return recall_command(archive_path, rest, *limit, as_json);
  if (sub == "journal") return journal_command(journal_path, rest, as_json);
  return fail(kExitUsage, "mem: unknown subcommand '" + sub + "' (archive, recall, journal)");
}

}  // namespace icam::ctl
