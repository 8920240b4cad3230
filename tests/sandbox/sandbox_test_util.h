// Shared pieces of the sandbox tests: a scratch tree with a workspace and a secret outside it,
// and the policies the tests start from.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sandbox/host_probe.h"
#include "sandbox/policy.h"

namespace icam::sandbox::testing {

// <tmp>/icam-sandbox-XXXXXX/{ws, outside/secret.txt}
class ScratchTree {
 public:
  ScratchTree() {
    std::string pattern = (std::filesystem::temp_directory_path() / "icam-sandbox-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root = std::filesystem::canonical(pattern);
    workspace = root / "ws";
    outside = root / "outside";
    std::filesystem::create_directories(workspace);
    std::filesystem::create_directories(outside);
    secret = outside / "secret.txt";
    std::ofstream(secret) << "top secret\n";
    std::ofstream(workspace / "hello.txt") << "hello from the workspace\n";
  }
  ~ScratchTree() {
    std::error_code error;
    std::filesystem::remove_all(root, error);
  }

  std::filesystem::path root;
  std::filesystem::path workspace;
  std::filesystem::path outside;
  std::filesystem::path secret;
};

inline bool sanitized_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

// For C++ drivers built like the tests: AddressSanitizer reserves terabytes of address space, so
// the sanitizer build cannot cap it.
inline SandboxPolicy driver_policy(const std::filesystem::path& workspace) {
  SandboxPolicy policy;
  policy.workspace = workspace;
  if (sanitized_build()) policy.limits.address_space_bytes = 0;
  return policy;
}

// For the hostile C helpers (built without sanitizers): every limit on.
inline SandboxPolicy hostile_policy(const std::filesystem::path& workspace) {
  SandboxPolicy policy;
  policy.workspace = workspace;
  policy.limits.address_space_bytes = uint64_t{256} << 20;
  policy.limits.max_processes = 32;
  policy.limits.cpu_seconds = 10;
  return policy;
}

}  // namespace icam::sandbox::testing
