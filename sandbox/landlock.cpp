#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

namespace icam::sandbox {
namespace {

// The kernel's structures, spelled out to cover fields newer than the installed headers.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

constexpr int kRulePathBeneath = 1;
constexpr unsigned kCreateRulesetVersion = 1u << 0;

}  // namespace

int landlock_abi() {
  const long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

uint64_t landlock::handled_fs(int abi) {
  if (abi <= 0) return 0;
  uint64_t rights = (kMakeSym << 1) - 1;  // ABI 1: bits 0..12
  if (abi >= 2) rights |= kRefer;
  if (abi >= 3) rights |= kTruncate;
  if (abi >= 5) rights |= kIoctlDev;
  return rights;
}

int apply_landlock(const LandlockPlan& plan, int* failed_rule) {
  RulesetAttr attr{plan.handled_fs, plan.handled_net, plan.scoped};
  // The size tells the kernel which fields this caller knows.
  const size_t size = plan.abi >= 6 ? sizeof(RulesetAttr) : plan.abi >= 4 ? 16 : 8;
  const int ruleset = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return errno;
  for (int i = 0; i < plan.n_rules; ++i) {
    const int fd = open(plan.rules[i].path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // an optional system path this host lacks
      *failed_rule = i;
      const int error = errno;
      close(ruleset);
      return error;
    }
    struct stat st;
    uint64_t rights = plan.rules[i].rights & plan.handled_fs;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) rights &= landlock::kFileRights;
    PathBeneathAttr rule{rights, fd};
    const long rc = rights == 0 ? 0 : syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0);
    const int error = errno;
    close(fd);
    if (rc != 0) {
      *failed_rule = i;
      close(ruleset);
      return error;
    }
  }
  const long rc = syscall(SYS_landlock_restrict_self, ruleset, 0);
  const int error = errno;
  close(ruleset);
  return rc == 0 ? 0 : error;
}

}  // namespace icam::sandbox
