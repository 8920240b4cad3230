// One record of the audit log (audit_log.h) and its canonical form.
//
// Every syscall leaves two records: an intent, written before any side effect (what was asked,
// by whom, under which capability, and whether it was allowed), and a completion, written after
// (how it ended and a digest of the result). A completion repeats its intent's pid, syscall,
// capability, decision and side-effect class, so that a query by any of them finds both halves.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace icam::kernel::audit {

enum class RecordKind { intent, completion };
enum class Decision { allow, deny };
// What running the syscall may change: nothing (reads), something that can be undone, or
// something that cannot (a message sent, a file overwritten). Recovery never replays the last.
enum class SideEffect { none, reversible, irreversible };
// ok: done; error: ran and failed; denied: refused, never ran; outcome_unknown: the kernel stopped
// between intent and completion (written by recovery).
enum class CompletionStatus { ok, error, denied, outcome_unknown };

std::string_view name_of(RecordKind kind);
std::string_view name_of(Decision decision);
std::string_view name_of(SideEffect effect);
std::string_view name_of(CompletionStatus status);
// The inverse of name_of; invalid_argument naming the accepted values otherwise.
Result<RecordKind> parse_record_kind(std::string_view text);
Result<Decision> parse_decision(std::string_view text);
Result<SideEffect> parse_side_effect(std::string_view text);
Result<CompletionStatus> parse_completion_status(std::string_view text);

// 64 hex zeros: the prev_hash of record 1.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct AuditRecord {
  int64_t id = 0;  // 1, 2, 3, ... without gaps: the position in the chain
  RecordKind kind = RecordKind::intent;
  int64_t time_us = 0;  // Unix time in microseconds when the record was written
  uint64_t pid = 0;
  std::string syscall;     // e.g. "fs.read"
  std::string args;        // intents: canonical JSON of the arguments; completions: ""
  std::string capability;  // the capability that allowed it; "" when denied
  Decision decision = Decision::allow;
  SideEffect side_effect = SideEffect::none;
  // Completions only (intents: 0, nullopt, "", false).
  int64_t intent_id = 0;
  std::optional<CompletionStatus> status;
  std::string result_digest;  // e.g. "sha256:<hex>" of the result text; "" if none
  bool never_replay = false;  // recovery: an irreversible call whose outcome is unknown
  // The chain.
  std::string prev_hash;  // hex; the previous record's hash, kGenesisHash for record 1
  std::string hash;       // hex; HMAC-SHA256(key, prev_hash hex text || canonical_bytes())

  // The bytes the hash covers: every field above except prev_hash and hash, as a JSON object
  // with sorted keys and no whitespace, plus "v" (the record format, 1).
  std::string canonical_bytes() const;
};

// The record as one JSON object (all fields, prev_hash and hash included), as exported.
nlohmann::json to_json(const AuditRecord& record);

// Canonical JSON of a JSON text: parsed and written back with sorted keys and no whitespace
// (nlohmann::json keeps object keys in a std::map, so dump() sorts them bytewise). Must be an
// object. invalid_argument for malformed JSON, another type, or invalid UTF-8. A key given twice
// keeps its last value.
Result<std::string> canonical_json(std::string_view text);

// "sha256:<64 hex>" of a syscall's result, for append_completion.
std::string result_digest(std::string_view result);

// `icamctl audit tail|query` output: a table for people, or one exported object per line.
std::string format_records_table(const std::vector<AuditRecord>& records);
std::string format_records_jsonl(const std::vector<AuditRecord>& records);

}  // namespace icam::kernel::audit
