// Capabilities: what a process may do, written as short strings (docs/capabilities.md).
//
//   capability := KIND ":" TARGET ( " " OPTION )*
//   KIND       := fs.read | fs.write | exec | net | tool | spawn | kv | msg
//   OPTION     := "uses=" N            at most N uses (1 <= N <= 1e9)
//               | "expires=" TIME      until TIME, "YYYY-MM-DDTHH:MM:SSZ" (UTC)
//
//   fs.read:GLOB   fs.write:GLOB   read / create-or-write files matching GLOB (path_glob.h)
//   exec:PATH      run the program at PATH (absolute, no wildcards)
//   net:none       no network (grants nothing; written so that "no network" is explicit)
//   net:HOST:PORT  connect to HOST (a name, "*.SUFFIX", an IPv4 address, "[IPv6]" or "*") on
//                  PORT (1..65535 or "*")
//   tool:NAME      call the in-kernel tool NAME ([A-Za-z0-9_.-]+), or every tool with "*";
//                  NAME an external driver (tool.call): every tool of that driver
//   tool:DRIVER/TOOL  call one tool of an external driver (both [A-Za-z0-9_.-]+)
//   spawn:N        have at most N child processes (0..1000000)
//   kv:NS          use the key-value namespace NS ([A-Za-z0-9_./-]+), or every namespace
//                  starting with P with "P*"
//   msg:CHANNEL    send to and receive from CHANNEL (same form as NS)
//
// TARGET runs to the first space, so targets hold no spaces. Parsing is strict and every error
// says which capability, the 1-based column and what was expected there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace icam::syscalls {

enum class CapKind { fs_read, fs_write, exec, net, tool, spawn, kv, msg };
std::string_view cap_kind_name(CapKind kind);  // "fs.read", ...

struct Capability {
  CapKind kind = CapKind::tool;
  // The target as written after "KIND:", normalised: host names are lower-cased, numbers have no
  // leading zeros. For net it is "none" or "HOST:PORT"; for spawn the decimal count.
  std::string target;
  std::string host;       // net only: "" for net:none
  int port = 0;           // net only: 0 means any port ("*")
  int64_t count = 0;      // spawn only
  std::optional<int64_t> uses;     // budget: how many checks it may pass; none = unlimited
  std::optional<int64_t> expires;  // Unix seconds (UTC) after which it is void; none = never

  bool is_net_none() const { return kind == CapKind::net && host.empty(); }

  // The canonical text, which parse_capability() reads back to an equal value: targets as
  // normalised, then " uses=N" and " expires=TIME" when set, in that order.
  std::string to_string() const;
  bool operator==(const Capability&) const = default;
};

Result<Capability> parse_capability(std::string_view text);
// Parses each string; the first error is returned, prefixed with the element's index.
Result<std::vector<Capability>> parse_capabilities(const std::vector<std::string>& texts);

// "2026-12-01T00:00:00Z" <-> Unix seconds.
std::string format_utc(int64_t unix_seconds);
Result<int64_t> parse_utc(std::string_view text);

// What a process asks to do, checked against its capabilities. Paths are canonicalised by the
// check (capability_store.h), not by the caller.
struct Request {
  CapKind kind = CapKind::tool;
  std::string target;  // fs/exec: a path; net: the host; tool: the name ("DRIVER/TOOL" for an
                       // external driver's tool); kv/msg: the name
  int port = 0;        // net
  int64_t count = 0;   // spawn: how many children the process would have after this spawn

  static Request fs_read(std::string path) { return {CapKind::fs_read, std::move(path)}; }
  static Request fs_write(std::string path) { return {CapKind::fs_write, std::move(path)}; }
  static Request exec(std::string path) { return {CapKind::exec, std::move(path)}; }
  static Request net(std::string host, int port) { return {CapKind::net, std::move(host), port}; }
  static Request tool(std::string name) { return {CapKind::tool, std::move(name)}; }
  static Request spawn(int64_t children) { return {CapKind::spawn, "", 0, children}; }
  static Request kv(std::string ns) { return {CapKind::kv, std::move(ns)}; }
  static Request msg(std::string channel) { return {CapKind::msg, std::move(channel)}; }

  std::string to_string() const;  // "fs.read /ws/a.txt", "net db.internal:5432", "spawn 3"
};

// Whether `cap` allows `request` at time `now` (Unix seconds), ignoring its use budget (which
// the store tracks). For fs and exec, `request.target` must already be canonical; `cap`'s target
// is matched as a glob (fs) or compared exactly (exec).
bool capability_matches(const Capability& cap, const Request& request, int64_t now);

// OK when `child` allows nothing that `parent` does not: the same kind, a target within the
// parent's (a narrower glob, a covered host and port, a lower spawn count, a namespace inside
// the prefix), an expiry no later than the parent's (required when the parent has one) and a
// budget no larger than `parent_uses_left` (required when that is set). Otherwise
// permission_denied saying which of these failed.
Status check_covers(const Capability& parent, const Capability& child,
                    std::optional<int64_t> parent_uses_left);

}  // namespace icam::syscalls
