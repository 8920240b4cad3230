#include "syscalls/path_glob.h"

#include <cstdint>
#include <vector>

namespace icam::syscalls {
namespace {

constexpr size_t kMaxSegmentBytes = 255;  // NAME_MAX

// The segments of an absolute path or glob: "/a/b" -> {"a", "b"}; "/" -> {}.
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;
  while (start <= path.size() && path.size() > 1) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool is_globstar(std::string_view segment) {
  return segment == "**";
}

// One segment against one segment pattern ('*' and '?'), by the usual greedy scan that backs up
// to the last '*' on a mismatch; linear in practice, quadratic at worst.
bool segment_matches(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Whether the language of `inner` lies within that of `outer`, for sequences of elements where a
// "star" element matches any run of elements and every other element matches exactly one. `outer`
// star may absorb any inner element (a star included); an outer single element covers only a
// single inner element it covers (never an inner star, which may stand for zero or several).
// Memoised over (i, j): O(|outer| * |inner|) calls of elem_covers.
template <typename Elem, typename IsStar, typename ElemCovers>
bool sequence_covers(const std::vector<Elem>& outer, const std::vector<Elem>& inner,
                     IsStar is_star, ElemCovers elem_covers) {
  const size_t rows = outer.size() + 1, cols = inner.size() + 1;
  std::vector<int8_t> memo(rows * cols, -1);
  // Iterative from the ends backwards, so no recursion depth to worry about.
  for (size_t i = rows; i-- > 0;) {
    for (size_t j = cols; j-- > 0;) {
      bool value;
      if (i == outer.size()) {
        value = j == inner.size();
      } else if (is_star(outer[i])) {
        value = memo[(i + 1) * cols + j] == 1 || (j < inner.size() && memo[i * cols + j + 1] == 1);
      } else {
        value = j < inner.size() && !is_star(inner[j]) && elem_covers(outer[i], inner[j]) &&
                memo[(i + 1) * cols + j + 1] == 1;
      }
      memo[i * cols + j] = value ? 1 : 0;
    }
  }
  return memo[0] == 1;
}

bool segment_covers(std::string_view outer, std::string_view inner) {
  const std::vector<char> o(outer.begin(), outer.end()), in(inner.begin(), inner.end());
  return sequence_covers(
      o, in, [](char c) { return c == '*'; },
      [](char a, char b) { return a == '?' ? true : a == b; });
}

}  // namespace

bool has_wildcard(std::string_view text) {
  return text.find_first_of("*?") != std::string_view::npos;
}

std::optional<GlobProblem> find_glob_problem(std::string_view glob) {
  auto bad = [](size_t offset, std::string why) {
    return std::optional<GlobProblem>(GlobProblem{offset, std::move(why)});
  };
  if (glob.empty()) return bad(0, "empty path");
  if (glob.size() > kMaxGlobBytes) return bad(kMaxGlobBytes, "longer than 1024 bytes");
  if (glob.front() != '/') return bad(0, "a path must be absolute (start with '/')");
  for (size_t i = 0; i < glob.size(); ++i) {
    const auto c = static_cast<unsigned char>(glob[i]);
    if (c < 0x20 || c == 0x7f) return bad(i, "control character in path");
  }
  if (glob == "/") return std::nullopt;
  size_t start = 1;
  while (start <= glob.size()) {
    size_t end = glob.find('/', start);
    if (end == std::string_view::npos) end = glob.size();
    const std::string_view seg = glob.substr(start, end - start);
    if (seg.empty())
      return bad(start, end == glob.size() ? "trailing '/'" : "empty segment ('//')");
    if (seg == "." || seg == "..")
      return bad(start, "'.' and '..' segments are not allowed; write the path they lead to");
    if (seg.size() > kMaxSegmentBytes) return bad(start, "segment longer than 255 bytes");
    const size_t globstar = seg.find("**");
    if (globstar != std::string_view::npos && seg != "**")
      return bad(start + globstar, "'**' must be a whole segment (write '/**/' or '*')");
    start = end + 1;
  }
  return std::nullopt;
}

Status validate_glob(std::string_view glob) {
  if (auto problem = find_glob_problem(glob))
    return make_error(Errc::invalid_argument, "at offset ", problem->offset, ": ", problem->why);
  return ok_status();
}

bool glob_matches(std::string_view glob, std::string_view path) {
  // The same greedy scan as segment_matches, one level up: "**" is the star and each other
  // segment pattern matches exactly one path segment.
  const auto pat = segments(glob);
  const auto name = segments(path);
  size_t p = 0, n = 0;
  size_t star = SIZE_MAX, star_n = 0;
  while (n < name.size()) {
    if (p < pat.size() && !is_globstar(pat[p]) && segment_matches(pat[p], name[n])) {
      ++p;
      ++n;
    } else if (p < pat.size() && is_globstar(pat[p])) {
      star = p++;
      star_n = n;
    } else if (star != SIZE_MAX) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pat.size() && is_globstar(pat[p])) ++p;
  return p == pat.size();
}

bool glob_covers(std::string_view outer, std::string_view inner) {
  return sequence_covers(segments(outer), segments(inner), is_globstar, segment_covers);
}

std::string glob_literal_prefix(std::string_view glob) {
  std::string prefix;
  for (std::string_view seg : segments(glob)) {
    if (has_wildcard(seg)) break;
    prefix += '/';
    prefix += seg;
  }
  return prefix.empty() ? std::string("/") : prefix;
}

}  // namespace icam::syscalls
