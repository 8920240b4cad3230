#include "syscalls/canonical_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

namespace icam::syscalls {
namespace {

// Appends the '/'-separated components of `path` to the front of `todo`, keeping their order.
void push_front_components(std::string_view path, std::deque<std::string>& todo) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  todo.insert(todo.begin(), parts.begin(), parts.end());
}

Result<std::string> read_link(const std::string& path, size_t size_hint) {
  std::string target(size_hint + 1, '\0');
  for (;;) {
    const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0)
      return make_error(Errc::io, "cannot read symbolic link '", path, "': ", std::strerror(errno));
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    // The link grew between lstat and readlink; try again with room to spare.
    if (target.size() > kMaxPathBytes)
      return make_error(Errc::invalid_argument, "symbolic link '", path, "' is too long");
    target.resize(target.size() * 2);
  }
}

}  // namespace

Result<std::string> canonicalize_path(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return make_error(Errc::invalid_argument, "path '", path, "': ", why);
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxPathBytes) return bad(str_cat("longer than ", kMaxPathBytes, " bytes"));
  if (path.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  if (path.front() != '/') return bad("not absolute (must start with '/')");

  std::deque<std::string> todo;
  push_front_components(path, todo);
  std::string resolved;  // "" is the root; otherwise "/a/b" with every component resolved
  bool missing = false;  // a component did not exist: the rest is appended as written
  int hops = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (missing) return bad("'..' after a component that does not exist");
      const size_t slash = resolved.rfind('/');  // "/.." stays at the root
      if (slash != std::string::npos) resolved.erase(slash);
      continue;
    }
    std::string candidate = resolved + "/" + name;
    if (missing) {
      resolved = std::move(candidate);
      continue;
    }
    struct stat st {};
    if (::lstat(candidate.c_str(), &st) != 0) {
      // ENOTDIR: a component above is a regular file, so this one cannot exist either.
      if (errno != ENOENT && errno != ENOTDIR)
        return make_error(Errc::io, "path '", path, "': cannot examine '", candidate,
                          "': ", std::strerror(errno));
      missing = true;
      resolved = std::move(candidate);
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++hops > kMaxSymlinkHops)
        return bad(str_cat("more than ", kMaxSymlinkHops, " symbolic links (a loop?)"));
      const std::string target = ICAM_TRY(read_link(candidate, static_cast<size_t>(st.st_size)));
      if (target.empty()) return bad(str_cat("symbolic link '", candidate, "' is empty"));
      if (target.front() == '/') resolved.clear();  // absolute target: start again at the root
      push_front_components(target, todo);
      continue;
    }
    resolved = std::move(candidate);
  }
  if (resolved.size() > kMaxPathBytes) return bad("resolves to a path that is too long");
  return resolved.empty() ? std::string("/") : resolved;
}

}  // namespace icam::syscalls
