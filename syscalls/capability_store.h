// The kernel-side capability store: every capability a process holds is a token in a tree. Roots
// are granted by a job (or the kernel); every other token is derived from a parent token, and
// holds no more than the parent (check_covers in capability.h). Each token carries a MAC
//
//   mac = HMAC-SHA256(kernel key, parent mac || canonical bytes of the token)
//
// (a root's parent mac is 32 zero bytes), so the derivation of any token can be verified back to
// its root, and a token presented from outside (by a driver, say) can be checked for alteration.
// The key never leaves the store. Revoking a token revokes its whole subtree at once.
//
// Budgets: a token's "uses=N" is how many checks it may pass. A check through a derived token
// also spends one use of every ancestor that has a budget, so a parent's budget bounds everything
// derived from it, together. Expiry: a token is void from its "expires" time on.
//
// Thread safety: every public method takes the store's mutex, so a store may be shared between the
// engine thread and driver threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "syscalls/capability.h"
#include "syscalls/crypto.h"

namespace icam::syscalls {

using TokenId = uint64_t;  // from 1; 0 means "none" (a root's parent)
using Pid = uint64_t;      // the kernel's process id (kernel::Pid)

struct Token {
  TokenId id = 0;
  TokenId parent = 0;  // 0 for a root
  Pid owner = 0;       // the process holding it
  Capability capability;  // as granted or derived: its uses and expires are the initial limits
  std::string origin;     // roots: who granted it, e.g. "job 'build'"; "" for derived tokens
  Digest mac{};

  // State, not covered by the MAC: it changes while the token lives.
  std::optional<int64_t> uses_left;  // set exactly when capability.uses is
  bool revoked = false;
};

// The bytes a token's MAC covers: a version tag, id, parent, owner, origin and the capability's
// canonical text (with its uses and expiry), newline-separated.
std::string token_canonical_bytes(const Token& token);

// Where one of a process's capabilities came from, for `icamctl caps PID`.
struct ProvenanceEntry {
  TokenId token = 0;
  std::string capability;  // canonical text
  std::string origin;      // "granted by job 'x'" or "derived from pid 3 token 7"
  std::string state;       // "active", "revoked", "expired" or "exhausted"
  std::optional<int64_t> uses_left;
};

// A successful check: the token that allowed the request, for the audit log.
struct Authorization {
  TokenId token = 0;
  std::string capability;  // the token's capability, canonical text
  std::string target;      // the request's target as checked (for fs and exec: canonical path)
};

class CapabilityStore {
 public:
  static constexpr size_t kMinKeyBytes = 32;

  // A store keyed with `key` (at least kMinKeyBytes), or with a fresh random key.
  static Result<std::unique_ptr<CapabilityStore>> create(std::vector<uint8_t> key);
  static Result<std::unique_ptr<CapabilityStore>> create_with_random_key();

  CapabilityStore(const CapabilityStore&) = delete;
  CapabilityStore& operator=(const CapabilityStore&) = delete;

  // A root token for `owner`. fs and exec targets are pinned at grant time: the leading literal
  // directories of a glob and an exec path are canonicalised (symbolic links resolved) once, here,
  // so "/ws/**" granted where /ws links to /data/ws is stored as "/data/ws/**".
  Result<TokenId> grant(Pid owner, const Capability& capability, std::string origin);

  // A child token for `owner` under `parent`, refused (permission_denied) unless the parent is
  // live (not revoked, expired or exhausted; its chain verifies) and covers `requested` after the
  // same pinning as grant(). Unset uses and expires are inherited from the parent (its uses left).
  Result<TokenId> derive(TokenId parent, Pid owner, const Capability& requested, int64_t now);
  Result<TokenId> derive(TokenId parent, Pid owner, const Capability& requested);

  // Derives each of `requested` for `child` from the first live token of `parent_pid` that covers
  // it. All or nothing: on a refusal no token is created, and the error names the capability.
  Result<std::vector<TokenId>> derive_for_child(Pid parent_pid, Pid child,
                                                const std::vector<Capability>& requested,
                                                int64_t now);

  // Recomputes the MAC chain of a stored token up to its root. corrupt names the first token
  // whose MAC does not match; not_found when the token or an ancestor is unknown.
  Status verify(TokenId id) const;
  // Checks a token presented from outside against the store: its parent chain must verify and
  // its own MAC must match its fields. Its state fields (uses_left, revoked) are not covered.
  Status verify(const Token& presented) const;

  // Revokes the token and all its descendants; returns how many were newly revoked.
  Result<size_t> revoke(TokenId id);
  // Revokes every token `owner` holds, with their descendants (when a process exits).
  size_t revoke_owner(Pid owner);

  // Finds a live token of `pid` allowing `request` (fs and exec paths canonicalised first) whose
  // chain verifies; permission_denied when there is none. check() spends nothing; authorize()
  // also spends one use of the token and of each budgeted ancestor.
  Result<Authorization> check(Pid pid, const Request& request, int64_t now) const;
  Result<Authorization> authorize(Pid pid, const Request& request, int64_t now);
  Result<Authorization> authorize(Pid pid, const Request& request);

  std::optional<Token> token(TokenId id) const;
  std::vector<Token> tokens_of(Pid owner) const;  // in id order, revoked ones included
  std::vector<ProvenanceEntry> provenance(Pid owner, int64_t now) const;

  // For tests that prove verify() notices tampering: direct access to a stored token.
  Token* mutable_token_for_testing(TokenId id);

 private:
  explicit CapabilityStore(std::vector<uint8_t> key) : key_(std::move(key)) {}

  Digest compute_mac(const Token& token, const Digest& parent_mac) const;
  Status verify_locked(TokenId id) const;
  // Why a stored token cannot be used now (revoked, expired, exhausted, itself or an ancestor),
  // or nullopt when it can.
  std::optional<std::string> unusable_locked(TokenId id, int64_t now) const;
  Result<Authorization> check_locked(Pid pid, const Request& request, int64_t now) const;
  Result<TokenId> derive_locked(TokenId parent, Pid owner, const Capability& requested,
                                int64_t now);
  size_t revoke_locked(TokenId id);
  void erase_locked(TokenId id);  // undo of a derive (all-or-nothing derive_for_child)

  const std::vector<uint8_t> key_;
  mutable std::mutex mutex_;
  std::map<TokenId, Token> tokens_;
  std::multimap<TokenId, TokenId> children_;  // parent -> child
  TokenId next_id_ = 1;
};

// Pins a capability's path target (see grant()); other kinds are returned unchanged.
Result<Capability> pin_capability(const Capability& capability);

// Seconds since the Unix epoch, now.
int64_t unix_now();

// A provenance entry as JSON ({token, capability, origin, state, uses_left: int or null}), as the
// daemon's proc.caps returns it, and back (invalid_argument naming the bad field).
nlohmann::json provenance_to_json(const ProvenanceEntry& entry);
Result<ProvenanceEntry> provenance_from_json(const nlohmann::json& j);

// `icamctl caps PID` output: a table for people and one JSON object per line.
std::string format_provenance_table(const std::vector<ProvenanceEntry>& entries);
std::string format_provenance_jsonl(const std::vector<ProvenanceEntry>& entries);

}  // namespace icam::syscalls
