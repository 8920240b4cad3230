#include "sandbox/policy.h"

#include <system_error>

namespace icam::sandbox {
namespace fs = std::filesystem;

std::vector<fs::path> SandboxPolicy::default_system_paths() {
  return {"/usr",          "/bin",          "/sbin",           "/lib",
          "/lib64",        "/lib32",        "/libx32",         "/etc/ld.so.cache",
          "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf",
          "/etc/passwd",   "/etc/group",    "/etc/alternatives"};
}

namespace {

Result<fs::path> canonical_existing(const fs::path& path, std::string_view what) {
  if (path.empty()) return make_error(Errc::invalid_argument, "sandbox policy: ", what, " is empty");
  if (!path.is_absolute()) {
    return make_error(Errc::invalid_argument, "sandbox policy: ", what, " ", path.string(),
                      " is not an absolute path");
  }
  std::error_code error;
  fs::path canonical = fs::canonical(path, error);
  if (error) {
    return make_error(Errc::not_found, "sandbox policy: ", what, " ", path.string(), ": ",
                      error.message());
  }
  return canonical;
}

}  // namespace

Result<SandboxPolicy> normalize_policy(const SandboxPolicy& policy) {
  SandboxPolicy out = policy;
  out.workspace = ICAM_TRY(canonical_existing(policy.workspace, "workspace"));
  std::error_code error;
  if (!fs::is_directory(out.workspace, error)) {
    return make_error(Errc::invalid_argument, "sandbox policy: workspace ",
                      out.workspace.string(), " is not a directory");
  }
  if (out.workspace == "/") {
    return make_error(Errc::invalid_argument, "sandbox policy: the workspace cannot be /");
  }
  out.read_only_paths.clear();
  for (const fs::path& path : policy.read_only_paths) {
    out.read_only_paths.push_back(ICAM_TRY(canonical_existing(path, "read-only path")));
  }
  out.writable_paths.clear();
  for (const fs::path& path : policy.writable_paths) {
    out.writable_paths.push_back(ICAM_TRY(canonical_existing(path, "writable path")));
  }
  // System paths are a best-effort list: a host without /lib32 simply has none to share. They
  // keep their own spelling (a symlink such as /bin -> usr/bin is recreated, not followed).
  for (const fs::path& path : policy.system_paths) {
    if (!path.is_absolute()) {
      return make_error(Errc::invalid_argument, "sandbox policy: system path ", path.string(),
                        " is not an absolute path");
    }
  }
  return out;
}

}  // namespace icam::sandbox
