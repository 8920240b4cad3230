#include "syscalls/capability.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <ctime>

#include "syscalls/path_glob.h"

namespace icam::syscalls {
namespace {

constexpr int64_t kMaxUses = 1'000'000'000;
constexpr int64_t kMaxSpawn = 1'000'000;
constexpr size_t kMaxNameBytes = 256;

constexpr std::array<std::pair<CapKind, std::string_view>, 8> kKindNames = {{
    {CapKind::fs_read, "fs.read"},
    {CapKind::fs_write, "fs.write"},
    {CapKind::exec, "exec"},
    {CapKind::net, "net"},
    {CapKind::tool, "tool"},
    {CapKind::spawn, "spawn"},
    {CapKind::kv, "kv"},
    {CapKind::msg, "msg"},
}};

// A problem found in part of the text: where it starts (0-based, relative to the part) and why.
struct Problem {
  size_t offset = 0;
  std::string why;
};
using Check = std::optional<Problem>;

Check problem(size_t offset, std::string why) {
  return Problem{offset, std::move(why)};
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// A decimal in [min, max], all digits.
Check parse_number(std::string_view text, int64_t min, int64_t max, int64_t& out) {
  if (text.empty()) return problem(0, "expected a number");
  for (size_t i = 0; i < text.size(); ++i)
    if (!is_digit(text[i])) return problem(i, "expected a digit");
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end != text.data() + text.size() || out < min || out > max)
    return problem(0, str_cat("expected a number from ", min, " to ", max));
  return std::nullopt;
}

// [A-Za-z0-9_.-] plus `extra`; "*" alone, or a trailing "*" where `allow_prefix`.
Check parse_name(std::string_view text, std::string_view extra, bool allow_prefix,
                 std::string_view what) {
  if (text.empty()) return problem(0, str_cat("expected ", what));
  if (text.size() > kMaxNameBytes) return problem(kMaxNameBytes, "name longer than 256 bytes");
  if (text == "*") return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                       c == '_' || c == '.' || c == '-' || extra.find(c) != std::string_view::npos;
    if (plain) continue;
    if (c == '*' && allow_prefix && i + 1 == text.size()) continue;
    if (c == '*')
      return problem(i, allow_prefix ? "'*' is allowed only at the end (a prefix)"
                                     : "'*' is allowed only alone (every name)");
    return problem(i, str_cat("unexpected character '", c, "' in ", what));
  }
  return std::nullopt;
}

// A DNS name, "*.SUFFIX", "*", or an IPv4 address (which has the form of a name); lower-cased.
Check parse_host_name(std::string_view text, std::string& host) {
  if (text == "*") {
    host.assign(text);  // not `host = "*"`, which trips GCC 12's -Wrestrict false positive
    return std::nullopt;
  }
  size_t start = 0;
  if (text.starts_with("*.")) start = 2;
  if (text.size() > 253) return problem(253, "host name longer than 253 bytes");
  if (start == text.size()) return problem(start, "expected a host name after '*.'");
  size_t label = 0;
  for (size_t i = start; i < text.size(); ++i) {
    const char c = lower(text[i]);
    if (c == '.') {
      if (label == 0) return problem(i, "empty label in host name");
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || is_digit(c) || c == '-') {
      if (++label > 63) return problem(i, "host name label longer than 63 bytes");
    } else if (c == '*') {
      return problem(i, "'*' is allowed only as a whole host or a leading '*.'");
    } else {
      return problem(i, str_cat("unexpected character '", text[i], "' in host name"));
    }
  }
  if (label == 0) return problem(text.size(), "host name ends with '.'");
  host.clear();
  for (char c : text) host += lower(c);
  return std::nullopt;
}

Check parse_net(std::string_view text, Capability& cap) {
  if (text == "none") {
    cap.target = "none";
    return std::nullopt;
  }
  std::string_view host_text, port_text;
  size_t port_offset = 0;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return problem(0, "'[' without a closing ']'");
    const std::string address(text.substr(1, close - 1));
    in6_addr parsed{};
    if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1)
      return problem(1, "not an IPv6 address");
    std::array<char, INET6_ADDRSTRLEN> buffer{};
    inet_ntop(AF_INET6, &parsed, buffer.data(), buffer.size());
    cap.host = str_cat("[", buffer.data(), "]");
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return problem(close + 1, "expected ':PORT' after the address");
    port_offset = close + 2;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return problem(text.size(), "expected net:none or net:HOST:PORT");
    host_text = text.substr(0, colon);
    if (host_text.find(':') != std::string_view::npos)
      return problem(host_text.find(':'), "an IPv6 address goes in brackets: net:[::1]:PORT");
    if (auto p = parse_host_name(host_text, cap.host)) return p;
    port_offset = colon + 1;
  }
  port_text = text.substr(port_offset);
  if (port_text == "*") {
    cap.port = 0;
  } else {
    int64_t port = 0;
    if (auto p = parse_number(port_text, 1, 65535, port)) {
      p->offset += port_offset;
      p->why = "port: " + p->why + " or '*'";
      return p;
    }
    cap.port = static_cast<int>(port);
  }
  cap.target = str_cat(cap.host, ":", cap.port == 0 ? std::string("*") : std::to_string(cap.port));
  return std::nullopt;
}

Check parse_target(std::string_view text, Capability& cap) {
  switch (cap.kind) {
    case CapKind::fs_read:
    case CapKind::fs_write:
      if (auto p = find_glob_problem(text)) return problem(p->offset, p->why);
      cap.target = text;
      return std::nullopt;
    case CapKind::exec:
      if (auto p = find_glob_problem(text)) return problem(p->offset, p->why);
      if (text.find_first_of("*?") != std::string_view::npos)
        return problem(text.find_first_of("*?"), "exec takes one program path, not a pattern");
      if (text == "/") return problem(0, "expected a program path");
      cap.target = text;
      return std::nullopt;
    case CapKind::net:
      return parse_net(text, cap);
    case CapKind::tool: {
      // NAME (an in-kernel tool, or every tool of the external driver NAME), DRIVER/TOOL (one
      // tool of an external driver), or "*".
      const size_t slash = text.find('/');
      if (slash == std::string_view::npos) {
        if (auto p = parse_name(text, "", false, "a tool name")) return p;
      } else {
        const std::string_view driver = text.substr(0, slash);
        const std::string_view tool = text.substr(slash + 1);
        if (driver == "*") return problem(0, "'*' is allowed only alone (every tool)");
        if (auto p = parse_name(driver, "", false, "a driver name")) return p;
        if (tool == "*")
          return problem(slash + 1, str_cat("write tool:", driver, " for every tool of a driver"));
        if (auto p = parse_name(tool, "", false, "a tool name")) {
          p->offset += slash + 1;
          return p;
        }
      }
      cap.target = text;
      return std::nullopt;
    }
    case CapKind::spawn:
      if (auto p = parse_number(text, 0, kMaxSpawn, cap.count)) return p;
      cap.target = std::to_string(cap.count);
      return std::nullopt;
    case CapKind::kv:
    case CapKind::msg:
      if (auto p = parse_name(text, "/", true,
                              cap.kind == CapKind::kv ? "a namespace" : "a channel"))
        return p;
      cap.target = text;
      return std::nullopt;
  }
  return problem(0, "unknown kind");
}

Check parse_option(std::string_view text, Capability& cap) {
  if (text.starts_with("uses=")) {
    if (cap.uses) return problem(0, "'uses' given twice");
    int64_t uses = 0;
    if (auto p = parse_number(text.substr(5), 1, kMaxUses, uses)) {
      p->offset += 5;
      return p;
    }
    cap.uses = uses;
    return std::nullopt;
  }
  if (text.starts_with("expires=")) {
    if (cap.expires) return problem(0, "'expires' given twice");
    auto time = parse_utc(text.substr(8));
    if (!time.ok()) return problem(8, time.error().message());
    cap.expires = *time;
    return std::nullopt;
  }
  return problem(0, "unknown option; expected uses=N or expires=YYYY-MM-DDTHH:MM:SSZ");
}

bool host_matches(const std::string& pattern, const std::string& host) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = std::string_view(pattern).substr(1);  // ".example"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return pattern == host;
}

// tool:NAME allows the tool NAME and, when NAME is an external driver, each of its tools
// ("NAME/TOOL"); tool:DRIVER/TOOL allows that one tool; tool:* everything. In-kernel tool names
// hold no '/' and driver names no '.', so the two never collide.
bool tool_matches(const std::string& pattern, std::string_view name) {
  if (pattern == "*" || pattern == name) return true;
  return pattern.find('/') == std::string::npos && name.size() > pattern.size() + 1 &&
         name.starts_with(pattern) && name[pattern.size()] == '/';
}

bool name_matches(const std::string& pattern, std::string_view name) {
  if (pattern.ends_with('*'))
    return name.starts_with(std::string_view(pattern).substr(0, pattern.size() - 1));
  return pattern == name;
}

// The host of a request as the parser would normalise it: lower case, IPv6 in brackets.
std::string normal_host(std::string_view host) {
  std::string out;
  for (char c : host) out += lower(c);
  if (out.find(':') != std::string::npos && !out.starts_with('[')) {
    in6_addr parsed{};
    std::array<char, INET6_ADDRSTRLEN> buffer{};
    if (inet_pton(AF_INET6, out.c_str(), &parsed) == 1 &&
        inet_ntop(AF_INET6, &parsed, buffer.data(), buffer.size()) != nullptr)
      return str_cat("[", buffer.data(), "]");
  }
  return out;
}

// Whether a host pattern of a parent covers that of a child.
bool host_covers(const std::string& parent, const std::string& child) {
  if (parent == "*") return true;
  if (child == "*") return false;
  if (child.starts_with("*.")) {
    if (!parent.starts_with("*.")) return false;
    const std::string_view suffix = std::string_view(parent).substr(1);
    return child == parent || child.ends_with(suffix);
  }
  return host_matches(parent, child);
}

bool target_covers(const Capability& parent, const Capability& child) {
  switch (parent.kind) {
    case CapKind::fs_read:
    case CapKind::fs_write:
      return glob_covers(parent.target, child.target);
    case CapKind::exec:
      return parent.target == child.target;
    case CapKind::net:
      if (child.is_net_none()) return true;  // grants nothing
      if (parent.is_net_none()) return false;
      return host_covers(parent.host, child.host) && (parent.port == 0 || parent.port == child.port);
    case CapKind::tool:
      // A driver covers its tools; a tool covers only itself.
      return tool_matches(parent.target, child.target);
    case CapKind::spawn:
      return child.count <= parent.count;
    case CapKind::kv:
    case CapKind::msg:
      // A parent prefix "ab*" covers "abc" and "abc*"; an exact parent covers only itself.
      return parent.target == child.target ||
             (parent.target.ends_with('*') && name_matches(parent.target, child.target));
  }
  return false;
}

}  // namespace

std::string_view cap_kind_name(CapKind kind) {
  for (const auto& [k, name] : kKindNames)
    if (k == kind) return name;
  return "?";
}

std::string format_utc(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buffer{};
  std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer.data();
}

Result<int64_t> parse_utc(std::string_view text) {
  auto bad = [&] {
    return make_error(Errc::invalid_argument, "expected a UTC time YYYY-MM-DDTHH:MM:SSZ, got '",
                      text, "'");
  };
  // Positions of the separators in "YYYY-MM-DDTHH:MM:SSZ"; every other position is a digit.
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
  if (text.size() != kShape.size()) return bad();
  for (size_t i = 0; i < kShape.size(); ++i)
    if (kShape[i] == 'd' ? !is_digit(text[i]) : text[i] != kShape[i]) return bad();
  auto field = [&](size_t at, size_t n) {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) v = v * 10 + (text[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = field(0, 4) - 1900;
  tm.tm_mon = field(5, 2) - 1;
  tm.tm_mday = field(8, 2);
  tm.tm_hour = field(11, 2);
  tm.tm_min = field(14, 2);
  tm.tm_sec = field(17, 2);
  const std::tm asked = tm;
  const int64_t seconds = timegm(&tm);
  // timegm normalises out-of-range fields (February 30 becomes March 2); refuse those.
  if (tm.tm_year != asked.tm_year || tm.tm_mon != asked.tm_mon || tm.tm_mday != asked.tm_mday ||
      tm.tm_hour != asked.tm_hour || tm.tm_min != asked.tm_min || tm.tm_sec != asked.tm_sec)
    return make_error(Errc::invalid_argument, "'", text, "' is not a valid date and time");
  return seconds;
}

std::string Capability::to_string() const {
  std::string out = str_cat(cap_kind_name(kind), ":", target);
  if (uses) out += str_cat(" uses=", *uses);
  if (expires) out += str_cat(" expires=", format_utc(*expires));
  return out;
}

Result<Capability> parse_capability(std::string_view text) {
  auto bad = [&](size_t offset, std::string_view why) {
    return make_error(Errc::invalid_argument, "capability \"", text, "\": column ", offset + 1,
                      ": ", why);
  };
  if (text.empty()) return bad(0, "empty; expected KIND:TARGET, e.g. fs.read:/ws/**");
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return bad(i, "control character (tabs and newlines included)");
  }
  const size_t colon = text.find(':');
  const size_t first_space = text.find(' ');
  if (colon == std::string_view::npos || colon > first_space)
    return bad(std::min(text.size(), first_space), "expected ':' after the kind, e.g. tool:calc");
  Capability cap;
  const std::string_view kind = text.substr(0, colon);
  bool known = false;
  for (const auto& [k, name] : kKindNames) {
    if (name == kind) {
      cap.kind = k;
      known = true;
    }
  }
  if (!known)
    return bad(0, str_cat("unknown kind '", kind,
                          "'; expected fs.read, fs.write, exec, net, tool, spawn, kv or msg"));

  const size_t target_start = colon + 1;
  const size_t target_end = std::min(text.size(), text.find(' ', target_start));
  const std::string_view target = text.substr(target_start, target_end - target_start);
  if (target.empty()) return bad(target_start, "expected a target after ':'");
  if (auto p = parse_target(target, cap)) return bad(target_start + p->offset, p->why);

  size_t at = target_end;
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    const size_t end = std::min(text.size(), text.find(' ', at));
    if (auto p = parse_option(text.substr(at, end - at), cap)) return bad(at + p->offset, p->why);
    at = end;
  }
  return cap;
}

Result<std::vector<Capability>> parse_capabilities(const std::vector<std::string>& texts) {
  std::vector<Capability> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(ICAM_TRY_CTX(parse_capability(texts[i]), str_cat("capabilities[", i, "]")));
  return out;
}

std::string Request::to_string() const {
  switch (kind) {
    case CapKind::net:
      return str_cat("net ", normal_host(target), ":", port);
    case CapKind::spawn:
      return str_cat("spawn ", count);
    default:
      return str_cat(cap_kind_name(kind), " ", target);
  }
}

bool capability_matches(const Capability& cap, const Request& request, int64_t now) {
  if (cap.kind != request.kind) return false;
  if (cap.expires && now >= *cap.expires) return false;
  switch (cap.kind) {
    case CapKind::fs_read:
    case CapKind::fs_write:
      return glob_matches(cap.target, request.target);
    case CapKind::exec:
      return cap.target == request.target;
    case CapKind::net:
      return !cap.is_net_none() && host_matches(cap.host, normal_host(request.target)) &&
             request.port >= 1 && request.port <= 65535 &&
             (cap.port == 0 || cap.port == request.port);
    case CapKind::tool:
      return tool_matches(cap.target, request.target);
    case CapKind::spawn:
      return request.count >= 0 && request.count <= cap.count;
    case CapKind::kv:
    case CapKind::msg:
      return cap.target == "*" || name_matches(cap.target, request.target);
  }
  return false;
}

Status check_covers(const Capability& parent, const Capability& child,
                    std::optional<int64_t> parent_uses_left) {
  auto refuse = [&](std::string_view why) {
    return make_error(Errc::permission_denied, "cannot derive \"", child.to_string(),
                      "\" from \"", parent.to_string(), "\": ", why);
  };
  if (parent.kind != child.kind) return refuse("a different kind");
  if (!target_covers(parent, child)) return refuse("the target is not within the parent's");
  if (parent.expires) {
    if (!child.expires) return refuse("the parent expires, so the child must expire too");
    if (*child.expires > *parent.expires) return refuse("expires later than the parent");
  }
  if (parent_uses_left) {
    if (!child.uses) return refuse("the parent has a use budget, so the child needs one too");
    if (*child.uses > *parent_uses_left)
      return refuse(str_cat("asks for ", *child.uses, " uses; the parent has ",
                            *parent_uses_left, " left"));
  }
  return ok_status();
}

}  // namespace icam::syscalls
