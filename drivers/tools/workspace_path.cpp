#include "drivers/tools/workspace_path.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <vector>

namespace icam::tools {
namespace fs = std::filesystem;

namespace {

// realpath() that also resolves what does not exist yet and follows dangling symlinks by their
// text: a link to a path the sandbox hides still counts as pointing where it says.
Result<fs::path> resolve_links(const fs::path& start) {
  std::deque<std::string> parts;
  for (const fs::path& part : start) parts.push_back(part.string());
  fs::path current = "/";
  int hops = 0;
  while (!parts.empty()) {
    const std::string part = parts.front();
    parts.pop_front();
    if (part.empty() || part == "." || part == "/") continue;
    if (part == "..") {
      current = current.parent_path();
      continue;
    }
    const fs::path next = current / part;
    struct stat st;
    if (lstat(next.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
      current = next;
      continue;
    }
    if (++hops > 40) return make_error(Errc::invalid_argument, start.string(), ": too many symlinks");
    std::error_code error;
    const fs::path target = fs::read_symlink(next, error);
    if (error) return make_error(Errc::io, next.string(), ": ", error.message());
    if (target.is_absolute()) current = "/";
    std::vector<std::string> target_parts;
    for (const fs::path& piece : target) target_parts.push_back(piece.string());
    parts.insert(parts.begin(), target_parts.begin(), target_parts.end());
  }
  return current;
}

}  // namespace

Result<fs::path> resolve_in_workspace(const fs::path& workspace, const std::string& path) {
  if (path.empty()) return make_error(Errc::invalid_argument, "empty path");
  if (path.find('\0') != std::string::npos) return make_error(Errc::invalid_argument, "path contains NUL");
  const fs::path joined = fs::path(path).is_absolute() ? fs::path(path) : workspace / path;
  const fs::path resolved = ICAM_TRY(resolve_links(joined));
  auto [ws_end, path_end] = std::mismatch(workspace.begin(), workspace.end(), resolved.begin(), resolved.end());
  if (ws_end != workspace.end()) {
    return make_error(Errc::permission_denied, path, ": outside the workspace");
  }
  return resolved;
}

}  // namespace icam::tools
