#include "kernel/audit/audit_record.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "syscalls/crypto.h"

namespace icam::kernel::audit {
namespace {

using nlohmann::json;

template <typename Enum, size_t N>
Result<Enum> parse_enum(std::string_view text, const std::array<Enum, N>& values,
                        std::string_view what) {
  std::string accepted;
  for (Enum v : values) {
    if (name_of(v) == text) return v;
    accepted += str_cat(accepted.empty() ? "" : ", ", name_of(v));
  }
  return make_error(Errc::invalid_argument, "unknown ", what, " '", text, "'; expected ", accepted);
}

// Dumps with nlohmann's strict UTF-8 handling; its exception (invalid UTF-8) becomes an error.
Result<std::string> dump_strict(const json& value) {
  try {
    return value.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    return make_error(Errc::invalid_argument, "not valid UTF-8: ", e.what());
  }
}

std::string format_time_us(int64_t time_us) {
  const std::time_t seconds = static_cast<std::time_t>(time_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  std::array<char, 32> buffer{};
  std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::array<char, 8> micros{};
  std::snprintf(micros.data(), micros.size(), "%06lld",
                static_cast<long long>(time_us % 1'000'000));
  return str_cat(buffer.data(), ".", micros.data(), "Z");
}

}  // namespace

std::string_view name_of(RecordKind kind) {
  return kind == RecordKind::intent ? "intent" : "completion";
}
std::string_view name_of(Decision decision) {
  return decision == Decision::allow ? "allow" : "deny";
}
std::string_view name_of(SideEffect effect) {
  switch (effect) {
    case SideEffect::none:
      return "none";
    case SideEffect::reversible:
      return "reversible";
    case SideEffect::irreversible:
      return "irreversible";
  }
  return "?";
}
std::string_view name_of(CompletionStatus status) {
  switch (status) {
    case CompletionStatus::ok:
      return "ok";
    case CompletionStatus::error:
      return "error";
    case CompletionStatus::denied:
      return "denied";
    case CompletionStatus::outcome_unknown:
      return "outcome_unknown";
  }
  return "?";
}

Result<RecordKind> parse_record_kind(std::string_view text) {
  return parse_enum(text, std::array{RecordKind::intent, RecordKind::completion}, "record kind");
}
Result<Decision> parse_decision(std::string_view text) {
  return parse_enum(text, std::array{Decision::allow, Decision::deny}, "decision");
}
Result<SideEffect> parse_side_effect(std::string_view text) {
  return parse_enum(text,
                    std::array{SideEffect::none, SideEffect::reversible, SideEffect::irreversible},
                    "side-effect class");
}
Result<CompletionStatus> parse_completion_status(std::string_view text) {
  return parse_enum(text,
                    std::array{CompletionStatus::ok, CompletionStatus::error,
                               CompletionStatus::denied, CompletionStatus::outcome_unknown},
                    "completion status");
}

std::string AuditRecord::canonical_bytes() const {
  // Every string here was checked to be valid UTF-8 when the record was appended; "replace"
  // keeps this function total for rows edited behind the log's back (their hash then differs).
  const json object = {
      {"v", 1},
      {"id", id},
      {"kind", name_of(kind)},
      {"time_us", time_us},
      {"pid", pid},
      {"syscall", syscall},
      {"args", args},
      {"capability", capability},
      {"decision", name_of(decision)},
      {"side_effect", name_of(side_effect)},
      {"intent_id", intent_id},
      {"status", status ? name_of(*status) : std::string_view()},
      {"result_digest", result_digest},
      {"never_replay", never_replay},
  };
  return object.dump(-1, ' ', false, json::error_handler_t::replace);
}

json to_json(const AuditRecord& r) {
  json j = json::parse(r.canonical_bytes());
  j.erase("v");
  j["time"] = format_time_us(r.time_us);
  j["prev_hash"] = r.prev_hash;
  j["hash"] = r.hash;
  return j;
}

Result<std::string> canonical_json(std::string_view text) {
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return make_error(Errc::invalid_argument, "arguments: malformed JSON");
  if (!value.is_object())
    return make_error(Errc::invalid_argument, "arguments: expected a JSON object, got ",
                      value.type_name());
  return ICAM_TRY_CTX(dump_strict(value), "arguments");
}

std::string result_digest(std::string_view result) {
  return "sha256:" + syscalls::to_hex(syscalls::sha256(result));
}

std::string format_records_table(const std::vector<AuditRecord>& records) {
  std::ostringstream out;
  out << "ID      TIME                         PID    KIND        SYSCALL          DECISION  "
         "DETAIL\n";
  auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text + " ";
  };
  for (const auto& r : records) {
    std::string detail;
    if (r.kind == RecordKind::intent) {
      detail = r.args;
      if (!r.capability.empty()) detail += str_cat("  via ", r.capability);
      if (r.side_effect != SideEffect::none) detail += str_cat("  [", name_of(r.side_effect), "]");
    } else {
      detail = str_cat("of ", r.intent_id, ": ", r.status ? name_of(*r.status) : "?");
      if (!r.result_digest.empty()) {
        detail += ' ';
        detail += std::string_view(r.result_digest).substr(0, 19);
      }
      if (r.never_replay) detail += "  NEVER REPLAY";
    }
    out << pad(std::to_string(r.id), 7) << pad(format_time_us(r.time_us), 28)
        << pad(std::to_string(r.pid), 6) << pad(std::string(name_of(r.kind)), 11)
        << pad(r.syscall, 16) << pad(std::string(name_of(r.decision)), 9) << detail << '\n';
  }
  return out.str();
}

std::string format_records_jsonl(const std::vector<AuditRecord>& records) {
  std::string out;
  for (const auto& r : records) {
    out += to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

}  // namespace icam::kernel::audit
