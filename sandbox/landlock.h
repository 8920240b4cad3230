// The Landlock layer: filesystem (and, from ABI 4, TCP) access rules the kernel enforces on the
// driver and everything it starts, whatever its uid. The host process decides the rules; the
// child opens the paths and installs them after its mounts, so rules bind the objects the driver
// will actually see.
#pragma once

#include <cstdint>

namespace icam::sandbox {

// The Landlock ABI version the kernel offers, 0 when it has none (or it is disabled).
int landlock_abi();

// Access bits, from the kernel's ABI (defined here because older headers lack the newer ones).
namespace landlock {
inline constexpr uint64_t kExecute = 1ull << 0;
inline constexpr uint64_t kWriteFile = 1ull << 1;
inline constexpr uint64_t kReadFile = 1ull << 2;
inline constexpr uint64_t kReadDir = 1ull << 3;
inline constexpr uint64_t kRemoveDir = 1ull << 4;
inline constexpr uint64_t kRemoveFile = 1ull << 5;
inline constexpr uint64_t kMakeChar = 1ull << 6;
inline constexpr uint64_t kMakeDir = 1ull << 7;
inline constexpr uint64_t kMakeReg = 1ull << 8;
inline constexpr uint64_t kMakeSock = 1ull << 9;
inline constexpr uint64_t kMakeFifo = 1ull << 10;
inline constexpr uint64_t kMakeBlock = 1ull << 11;
inline constexpr uint64_t kMakeSym = 1ull << 12;
inline constexpr uint64_t kRefer = 1ull << 13;     // ABI 2
inline constexpr uint64_t kTruncate = 1ull << 14;  // ABI 3
inline constexpr uint64_t kIoctlDev = 1ull << 15;  // ABI 5
inline constexpr uint64_t kNetBindTcp = 1ull << 0;     // ABI 4
inline constexpr uint64_t kNetConnectTcp = 1ull << 1;  // ABI 4
inline constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
inline constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6

// Rights that apply to a regular file (a rule on a file may hold only these).
inline constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

// Every filesystem right the given ABI knows.
uint64_t handled_fs(int abi);

// Grants for the three kinds of path a policy names.
inline constexpr uint64_t kReadExec = kExecute | kReadFile | kReadDir;
inline constexpr uint64_t kReadWrite = ~0ull;  // everything handled
inline constexpr uint64_t kDevice = kReadFile | kWriteFile | kIoctlDev;
}  // namespace landlock

// One rule for the child to install: a path (inside the sandbox's view) and the rights on it.
struct LandlockRule {
  const char* path;
  uint64_t rights;
};

struct LandlockPlan {
  int abi = 0;
  uint64_t handled_fs = 0;
  uint64_t handled_net = 0;  // TCP bind/connect refused when the driver lacks `net`
  uint64_t scoped = 0;       // abstract unix sockets and signals confined to the sandbox
  const LandlockRule* rules = nullptr;
  int n_rules = 0;
};

// Child side: creates the ruleset, adds every rule whose path exists, restricts the calling
// thread. Raw syscalls only. Returns 0 or an errno value; `failed_rule` is set to the index of a
// rule the kernel refused.
int apply_landlock(const LandlockPlan& plan, int* failed_rule);

}  // namespace icam::sandbox
