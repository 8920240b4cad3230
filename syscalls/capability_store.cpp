#include "syscalls/capability_store.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>

#include "syscalls/canonical_path.h"
#include "syscalls/path_glob.h"

namespace icam::syscalls {
namespace {

constexpr Digest kRootParentMac{};  // a root's "parent mac": 32 zero bytes

bool is_path_kind(CapKind kind) {
  return kind == CapKind::fs_read || kind == CapKind::fs_write || kind == CapKind::exec;
}

}  // namespace

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string token_canonical_bytes(const Token& token) {
  // Free-form strings are length-prefixed so that no choice of origin text can make two
  // different tokens serialise to the same bytes.
  const std::string cap = token.capability.to_string();
  return str_cat("icam-capability-v1\nid=", token.id, "\nparent=", token.parent,
                 "\nowner=", token.owner, "\norigin=", token.origin.size(), ":", token.origin,
                 "\ncapability=", cap.size(), ":", cap, "\n");
}

Result<Capability> pin_capability(const Capability& capability) {
  if (!is_path_kind(capability.kind)) return capability;
  Capability pinned = capability;
  const std::string prefix = capability.kind == CapKind::exec
                                 ? capability.target
                                 : glob_literal_prefix(capability.target);
  if (prefix == "/") return pinned;
  const std::string resolved =
      ICAM_TRY_CTX(canonicalize_path(prefix), str_cat("capability \"", capability.to_string(), "\""));
  if (has_wildcard(resolved))
    return make_error(Errc::invalid_argument, "capability \"", capability.to_string(),
                      "\": '", prefix, "' resolves to '", resolved,
                      "', which holds wildcard characters");
  const std::string rest = capability.target.substr(prefix.size());
  pinned.target = resolved == "/" ? (rest.empty() ? std::string("/") : rest) : resolved + rest;
  if (auto problem = find_glob_problem(pinned.target))
    return make_error(Errc::invalid_argument, "capability \"", capability.to_string(),
                      "\": resolved to '", pinned.target, "', which is not valid: ",
                      problem->why);
  return pinned;
}

Result<std::unique_ptr<CapabilityStore>> CapabilityStore::create(std::vector<uint8_t> key) {
  if (key.size() < kMinKeyBytes)
    return make_error(Errc::invalid_argument, "capability store key: ", key.size(),
                      " bytes; at least ", kMinKeyBytes, " are needed");
  return std::unique_ptr<CapabilityStore>(new CapabilityStore(std::move(key)));
}

Result<std::unique_ptr<CapabilityStore>> CapabilityStore::create_with_random_key() {
  return create(ICAM_TRY(random_bytes(kMinKeyBytes)));
}

Digest CapabilityStore::compute_mac(const Token& token, const Digest& parent_mac) const {
  std::string message(parent_mac.begin(), parent_mac.end());
  message += token_canonical_bytes(token);
  return hmac_sha256(key_, message);
}

Result<TokenId> CapabilityStore::grant(Pid owner, const Capability& capability,
                                       std::string origin) {
  const Capability pinned = ICAM_TRY(pin_capability(capability));
  std::lock_guard lock(mutex_);
  Token token;
  token.id = next_id_++;
  token.owner = owner;
  token.capability = pinned;
  token.origin = std::move(origin);
  token.uses_left = pinned.uses;
  token.mac = compute_mac(token, kRootParentMac);
  tokens_.emplace(token.id, token);
  return token.id;
}

std::optional<std::string> CapabilityStore::unusable_locked(TokenId id, int64_t now) const {
  for (auto it = tokens_.find(id); it != tokens_.end(); it = tokens_.find(it->second.parent)) {
    const Token& t = it->second;
    if (t.revoked) return str_cat("token ", t.id, " is revoked");
    if (t.capability.expires && now >= *t.capability.expires)
      return str_cat("token ", t.id, " expired at ", format_utc(*t.capability.expires));
    if (t.uses_left && *t.uses_left <= 0) return str_cat("token ", t.id, " has no uses left");
    if (t.parent == 0) break;
  }
  return std::nullopt;
}

Status CapabilityStore::verify_locked(TokenId id) const {
  // The chain from the token up to its root, then checked from the root down, so that the error
  // names the first altered token of the derivation.
  std::vector<const Token*> chain;
  for (TokenId at = id; at != 0;) {
    const auto it = tokens_.find(at);
    if (it == tokens_.end())
      return make_error(Errc::not_found, "token ", at, chain.empty() ? "" : " (an ancestor of token ",
                        chain.empty() ? std::string() : str_cat(id, ")"), " does not exist");
    if (chain.size() > tokens_.size())
      return make_error(Errc::corrupt, "token ", id, ": its parents form a cycle");
    chain.push_back(&it->second);
    at = it->second.parent;
  }
  Digest parent_mac = kRootParentMac;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const Token& t = **it;
    if (!digests_equal(compute_mac(t, parent_mac), t.mac))
      return make_error(Errc::corrupt, "token ", t.id,
                        ": MAC mismatch (altered, or not issued by this kernel)");
    parent_mac = t.mac;
  }
  return ok_status();
}

Status CapabilityStore::verify(TokenId id) const {
  std::lock_guard lock(mutex_);
  return verify_locked(id);
}

Status CapabilityStore::verify(const Token& presented) const {
  std::lock_guard lock(mutex_);
  if (tokens_.find(presented.id) == tokens_.end())
    return make_error(Errc::not_found, "token ", presented.id, " was not issued by this store");
  Digest parent_mac = kRootParentMac;
  if (presented.parent != 0) {
    ICAM_TRY(verify_locked(presented.parent));
    parent_mac = tokens_.at(presented.parent).mac;
  }
  if (!digests_equal(compute_mac(presented, parent_mac), presented.mac))
    return make_error(Errc::corrupt, "token ", presented.id,
                      ": MAC mismatch (altered, or not issued by this kernel)");
  return ok_status();
}

Result<TokenId> CapabilityStore::derive_locked(TokenId parent_id, Pid owner,
                                               const Capability& requested, int64_t now) {
  const auto it = tokens_.find(parent_id);
  if (it == tokens_.end()) return make_error(Errc::not_found, "token ", parent_id, " does not exist");
  if (auto why = unusable_locked(parent_id, now))
    return make_error(Errc::permission_denied, "cannot derive from token ", parent_id, ": ", *why);
  ICAM_TRY(verify_locked(parent_id));
  const Token& parent = it->second;

  // What the parent can still give: the smallest budget left along its chain.
  std::optional<int64_t> uses_left;
  for (auto at = it; at != tokens_.end(); at = tokens_.find(at->second.parent)) {
    if (at->second.uses_left) uses_left = std::min(uses_left.value_or(INT64_MAX), *at->second.uses_left);
    if (at->second.parent == 0) break;
  }

  Capability child = ICAM_TRY(pin_capability(requested));
  if (!child.expires) child.expires = parent.capability.expires;
  if (!child.uses) child.uses = uses_left;
  ICAM_TRY(check_covers(parent.capability, child, uses_left));

  Token token;
  token.id = next_id_++;
  token.parent = parent_id;
  token.owner = owner;
  token.capability = child;
  token.uses_left = child.uses;
  token.mac = compute_mac(token, parent.mac);
  tokens_.emplace(token.id, token);
  children_.emplace(parent_id, token.id);
  return token.id;
}

Result<TokenId> CapabilityStore::derive(TokenId parent, Pid owner, const Capability& requested,
                                        int64_t now) {
  std::lock_guard lock(mutex_);
  return derive_locked(parent, owner, requested, now);
}

Result<TokenId> CapabilityStore::derive(TokenId parent, Pid owner, const Capability& requested) {
  return derive(parent, owner, requested, unix_now());
}

void CapabilityStore::erase_locked(TokenId id) {
  const auto it = tokens_.find(id);
  if (it == tokens_.end()) return;
  auto [first, last] = children_.equal_range(it->second.parent);
  for (auto c = first; c != last; ++c) {
    if (c->second == id) {
      children_.erase(c);
      break;
    }
  }
  tokens_.erase(it);
}

Result<std::vector<TokenId>> CapabilityStore::derive_for_child(
    Pid parent_pid, Pid child, const std::vector<Capability>& requested, int64_t now) {
  std::lock_guard lock(mutex_);
  std::vector<TokenId> created;
  auto fail = [&](Error error) {
    for (TokenId id : created) erase_locked(id);
    return error;
  };
  for (size_t i = 0; i < requested.size(); ++i) {
    std::optional<Error> refusal;
    std::optional<TokenId> made;
    std::vector<TokenId> candidates;
    for (const auto& [id, t] : tokens_)
      if (t.owner == parent_pid && t.capability.kind == requested[i].kind) candidates.push_back(id);
    for (TokenId id : candidates) {
      auto derived = derive_locked(id, child, requested[i], now);
      if (derived.ok()) {
        made = *derived;
        break;
      }
      if (derived.error().code() != Errc::permission_denied) return fail(std::move(derived).error());
      refusal = std::move(derived).error();
    }
    if (!made) {
      return fail(make_error(
          Errc::permission_denied, "capability \"", requested[i].to_string(), "\" for pid ", child,
          ": ", refusal ? refusal->message() : str_cat("pid ", parent_pid, " holds no ",
                                                        cap_kind_name(requested[i].kind),
                                                        " capability")));
    }
    created.push_back(*made);
  }
  return created;
}

size_t CapabilityStore::revoke_locked(TokenId id) {
  size_t count = 0;
  std::vector<TokenId> todo{id};
  while (!todo.empty()) {
    const TokenId at = todo.back();
    todo.pop_back();
    const auto it = tokens_.find(at);
    if (it == tokens_.end()) continue;
    if (!it->second.revoked) {
      it->second.revoked = true;
      ++count;
    }
    auto [first, last] = children_.equal_range(at);
    for (auto c = first; c != last; ++c) todo.push_back(c->second);
  }
  return count;
}

Result<size_t> CapabilityStore::revoke(TokenId id) {
  std::lock_guard lock(mutex_);
  if (tokens_.find(id) == tokens_.end())
    return make_error(Errc::not_found, "token ", id, " does not exist");
  return revoke_locked(id);
}

size_t CapabilityStore::revoke_owner(Pid owner) {
  std::lock_guard lock(mutex_);
  std::vector<TokenId> owned;
  for (const auto& [id, t] : tokens_)
    if (t.owner == owner) owned.push_back(id);
  size_t count = 0;
  for (TokenId id : owned) count += revoke_locked(id);
  return count;
}

Result<Authorization> CapabilityStore::check_locked(Pid pid, const Request& request,
                                                    int64_t now) const {
  Request resolved = request;
  if (is_path_kind(request.kind)) {
    auto path = canonicalize_path(request.target);
    if (!path.ok())
      return make_error(Errc::permission_denied, "pid ", pid, " may not ", request.to_string(),
                        ": ", path.error().message());
    resolved.target = std::move(*path);
  }
  std::optional<std::string> unusable;
  for (const auto& [id, t] : tokens_) {
    if (t.owner != pid || !capability_matches(t.capability, resolved, now)) continue;
    if (auto why = unusable_locked(id, now)) {
      if (!unusable) unusable = *why;
      continue;
    }
    ICAM_TRY(verify_locked(id));
    return Authorization{id, t.capability.to_string(), resolved.target};
  }
  std::string message = str_cat("pid ", pid, " may not ", resolved.to_string());
  if (resolved.target != request.target) message += str_cat(" (resolved from '", request.target, "')");
  message += unusable ? str_cat(": the capability that allows it is void (", *unusable, ")")
                      : std::string(": no capability allows it");
  return Error(Errc::permission_denied, std::move(message));
}

Result<Authorization> CapabilityStore::check(Pid pid, const Request& request, int64_t now) const {
  std::lock_guard lock(mutex_);
  return check_locked(pid, request, now);
}

Result<Authorization> CapabilityStore::authorize(Pid pid, const Request& request, int64_t now) {
  std::lock_guard lock(mutex_);
  Authorization allowed = ICAM_TRY(check_locked(pid, request, now));
  // One use of the token and of every ancestor with a budget (check_locked found them all > 0).
  for (auto it = tokens_.find(allowed.token); it != tokens_.end();
       it = tokens_.find(it->second.parent)) {
    if (it->second.uses_left) --*it->second.uses_left;
    if (it->second.parent == 0) break;
  }
  return allowed;
}

Result<Authorization> CapabilityStore::authorize(Pid pid, const Request& request) {
  return authorize(pid, request, unix_now());
}

std::optional<Token> CapabilityStore::token(TokenId id) const {
  std::lock_guard lock(mutex_);
  const auto it = tokens_.find(id);
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

std::vector<Token> CapabilityStore::tokens_of(Pid owner) const {
  std::lock_guard lock(mutex_);
  std::vector<Token> out;
  for (const auto& [id, t] : tokens_)
    if (t.owner == owner) out.push_back(t);
  return out;
}

std::vector<ProvenanceEntry> CapabilityStore::provenance(Pid owner, int64_t now) const {
  std::lock_guard lock(mutex_);
  std::vector<ProvenanceEntry> out;
  for (const auto& [id, t] : tokens_) {
    if (t.owner != owner) continue;
    ProvenanceEntry entry;
    entry.token = id;
    entry.capability = t.capability.to_string();
    entry.uses_left = t.uses_left;
    if (t.parent == 0) {
      entry.origin = str_cat("granted by ", t.origin);
    } else {
      const auto parent = tokens_.find(t.parent);
      entry.origin = str_cat("derived from pid ",
                             parent == tokens_.end() ? std::string("?")
                                                     : std::to_string(parent->second.owner),
                             " token ", t.parent);
    }
    const auto why = unusable_locked(id, now);
    if (t.revoked) {
      entry.state = "revoked";
    } else if (t.capability.expires && now >= *t.capability.expires) {
      entry.state = "expired";
    } else if (why && why->find("no uses left") != std::string::npos) {
      entry.state = "exhausted";
    } else {
      entry.state = why ? "void" : "active";
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Token* CapabilityStore::mutable_token_for_testing(TokenId id) {
  std::lock_guard lock(mutex_);
  const auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

std::string format_provenance_table(const std::vector<ProvenanceEntry>& entries) {
  size_t cap_width = std::string_view("CAPABILITY").size();
  for (const auto& e : entries) cap_width = std::max(cap_width, e.capability.size());
  std::ostringstream out;
  auto row = [&](std::string_view token, std::string_view cap, std::string_view state,
                 std::string_view uses, std::string_view origin) {
    out << token << std::string(token.size() < 7 ? 7 - token.size() : 1, ' ') << cap
        << std::string(cap_width + 2 - cap.size(), ' ') << state
        << std::string(state.size() < 11 ? 11 - state.size() : 1, ' ') << uses
        << std::string(uses.size() < 6 ? 6 - uses.size() : 1, ' ') << origin << '\n';
  };
  row("TOKEN", "CAPABILITY", "STATE", "USES", "ORIGIN");
  for (const auto& e : entries)
    row(std::to_string(e.token), e.capability, e.state,
        e.uses_left ? std::to_string(*e.uses_left) : std::string("-"), e.origin);
  return out.str();
}

nlohmann::json provenance_to_json(const ProvenanceEntry& e) {
  return {{"token", e.token},
          {"capability", e.capability},
          {"origin", e.origin},
          {"state", e.state},
          {"uses_left", e.uses_left ? nlohmann::json(*e.uses_left) : nlohmann::json()}};
}

Result<ProvenanceEntry> provenance_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error(Errc::invalid_argument, "capability entry: not an object");
  ProvenanceEntry e;
  if (!j.contains("token") || !j["token"].is_number_unsigned())
    return make_error(Errc::invalid_argument, "capability entry: /token: expected a token id");
  e.token = j["token"].get<TokenId>();
  for (auto [key, field] : {std::pair{"capability", &e.capability}, std::pair{"origin", &e.origin},
                            std::pair{"state", &e.state}}) {
    if (!j.contains(key) || !j[key].is_string())
      return make_error(Errc::invalid_argument, "capability entry: /", key, ": expected a string");
    *field = j[key].get<std::string>();
  }
  if (j.contains("uses_left") && !j["uses_left"].is_null()) {
    if (!j["uses_left"].is_number_integer())
      return make_error(Errc::invalid_argument, "capability entry: /uses_left: expected an integer");
    e.uses_left = j["uses_left"].get<int64_t>();
  }
  return e;
}

std::string format_provenance_jsonl(const std::vector<ProvenanceEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    out += provenance_to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

}  // namespace icam::syscalls
