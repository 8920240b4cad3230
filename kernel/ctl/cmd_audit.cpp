// icamctl audit tail|query|export|verify: reads the syscall audit log (docs/audit.md) read-only,
// so it may run while the daemon appends. It opens the database file directly (with its key
// file, which verifying and reading both need: the log refuses to open with a key it was not
// written with), not through the daemon.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernel/audit/audit_log.h"
#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"
#include "kernel/kernel.h"
#include "syscalls/capability.h"

namespace icam::ctl {
namespace {

using nlohmann::json;
namespace audit = kernel::audit;

const std::vector<OptionSpec>& audit_specs() {
  static const std::vector<OptionSpec> specs = {
      {"db", "", true, false, "the audit database (default: $ICAM_HOME/audit.db)"},
      {"key", "", true, false, "its key file (default: the database path + .key)"},
      {"lines", "n", true, false, "tail: how many records (default 20)"},
      {"pid", "", true, false, "query: records of this process"},
      {"syscall", "", true, false, "query: records of this syscall (e.g. fs.read)"},
      {"decision", "", true, false, "query: allow or deny"},
      {"since", "", true, false, "query: from this time on (YYYY-MM-DDTHH:MM:SSZ or Unix seconds)"},
      {"until", "", true, false, "query: before this time (same forms)"},
      {"limit", "", true, false, "query: at most this many records (default 1000; 0 = all)"},
      {"json", "", false, false, "one JSON object per record (verify: the report as JSON)"},
      {"help", "h", false, false, "show this help"},
  };
  return specs;
}

constexpr const char* kAuditUsage =
    "usage: icamctl audit tail [-n N] [--json] [--db PATH]\n"
    "       icamctl audit query [--pid N] [--syscall NAME] [--decision allow|deny]\n"
    "                           [--since T] [--until T] [--limit N] [--json] [--db PATH]\n"
    "       icamctl audit export [--db PATH]     every record as JSON lines, to stdout\n"
    "       icamctl audit verify [--json] [--db PATH]\n\n"
    "Reads the syscall audit log (docs/audit.md). verify exits 0 when the chain is intact and 1\n"
    "naming the first bad record.\n\n";

// A time given as an ISO-8601 UTC second or as Unix seconds, in microseconds.
Result<int64_t> parse_time_us(const std::string& name, const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() <= 12)
    return std::stoll(text) * 1'000'000;
  auto seconds = syscalls::parse_utc(text);
  if (!seconds.ok())
    return make_error(Errc::invalid_argument, "--", name,
                      ": expected YYYY-MM-DDTHH:MM:SSZ or Unix seconds, got '", text, "'");
  return *seconds * 1'000'000;
}

Result<audit::AuditFilter> filter_from(const Args& args) {
  audit::AuditFilter filter;
  if (args.has("pid"))
    filter.pid = static_cast<uint64_t>(ICAM_TRY(args.get_int("pid", 0, 0, INT64_MAX)));
  if (auto s = args.get("syscall")) filter.syscall = *s;
  if (auto d = args.get("decision")) {
    auto decision = audit::parse_decision(*d);
    if (!decision.ok())
      return make_error(Errc::invalid_argument, "--decision: expected allow or deny, got '", *d,
                        "'");
    filter.decision = *decision;
  }
  if (auto s = args.get("since")) filter.since_us = ICAM_TRY(parse_time_us("since", *s));
  if (auto u = args.get("until")) filter.until_us = ICAM_TRY(parse_time_us("until", *u));
  filter.limit = ICAM_TRY(args.get_int("limit", 1000, 0, INT64_MAX));
  return filter;
}

void print_records(const std::vector<audit::AuditRecord>& records, bool as_json) {
  const std::string text =
      as_json ? audit::format_records_jsonl(records) : audit::format_records_table(records);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

int cmd_audit(const Config& config, const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    std::fputs(kAuditUsage, argv.empty() ? stderr : stdout);
    if (!argv.empty()) std::cout << usage_lines(audit_specs());
    return argv.empty() ? kExitUsage : kExitOk;
  }
  const std::string sub = argv[0];
  if (sub != "tail" && sub != "query" && sub != "export" && sub != "verify")
    return fail(kExitUsage,
                "audit: unknown subcommand '" + sub + "' (tail, query, export, verify)");
  auto args = Args::parse(std::vector<std::string>(argv.begin() + 1, argv.end()), audit_specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << kAuditUsage << usage_lines(audit_specs());
    return kExitOk;
  }
  if (!args->positional().empty())
    return fail(kExitUsage,
                "audit " + sub + ": unexpected argument '" + args->positional()[0] + "'");
  // Options that belong to another subcommand are mistakes, not silently ignored filters.
  for (const char* name : {"pid", "syscall", "decision", "since", "until", "limit"})
    if (sub != "query" && args->has(name))
      return fail(kExitUsage, str_cat("audit ", sub, ": --", name, " goes with query"));
  if (sub != "tail" && args->has("lines"))
    return fail(kExitUsage, "audit " + sub + ": --lines goes with tail");
  const bool as_json = args->has("json");
  if (sub == "export" && as_json) return fail(kExitUsage, "audit export always writes JSON lines");

  audit::AuditFilter filter;
  int64_t lines = 20;
  if (sub == "query") {
    auto f = filter_from(*args);
    if (!f.ok()) return fail(kExitUsage, f.error().message());
    filter = *f;
  }
  if (sub == "tail") {
    auto n = args->get_int("lines", 20, 1, 1'000'000);
    if (!n.ok()) return fail(kExitUsage, n.error().message());
    lines = *n;
  }

  audit::AuditOptions options;
  options.path = args->get("db").value_or(kernel::kernel_options(config).audit_path);
  options.key_path = args->get("key").value_or("");
  options.read_only = true;  // no recovery, no writes: the daemon may be appending
  auto log = audit::AuditLog::open(options);
  if (!log.ok()) return fail(kExitFailure, log.error().message());

  if (sub == "tail") {
    auto records = (*log)->tail(lines);
    if (!records.ok()) return fail(kExitFailure, records.error().message());
    print_records(*records, as_json);
  } else if (sub == "query") {
    auto records = (*log)->query(filter);
    if (!records.ok()) return fail(kExitFailure, records.error().message());
    print_records(*records, as_json);
  } else if (sub == "export") {
    auto count = (*log)->export_jsonl(std::cout);
    std::cout.flush();
    if (!count.ok()) return fail(kExitFailure, count.error().message());
  } else {
    auto report = (*log)->verify();
    if (!report.ok()) {
      if (as_json)
        std::cout << json{{"intact", false}, {"error", report.error().message()}}.dump() << "\n";
      return fail(kExitFailure, report.error().message());
    }
    if (as_json) {
      std::cout << json{{"intact", true},
                        {"records", report->records},
                        {"last_id", report->last_id},
                        {"last_hash", report->last_hash}}
                       .dump()
                << "\n";
    } else {
      std::cout << "intact: " << report->records << " records; head: record " << report->last_id
                << " hash " << report->last_hash << "\n";
    }
  }
  return kExitOk;
}

}  // namespace icam::ctl
