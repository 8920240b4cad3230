#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace icam::sandbox {
namespace {

namespace fs = std::filesystem;

Errc errno_code(int error) {
  switch (error) {
    case ENOENT: return Errc::not_found;
    case EACCES:
    case EPERM: return Errc::permission_denied;
    case EBUSY: return Errc::unavailable;
    case ENOSPC: return Errc::resource_exhausted;
    default: return Errc::io;
  }
}

// Control files take one write(2) each; a refusal comes back as that write's errno.
Status write_control(const fs::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(errno_code(errno), "cgroup: ", file.string(), ": ", std::strerror(errno));
  ssize_t n;
  do {
    n = ::write(fd, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  const int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return make_error(errno_code(error), "cgroup: writing '", text, "' to ", file.string(), ": ",
                      n < 0 ? std::strerror(error) : "short write");
  return ok_status();
}

Result<std::string> read_control(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return make_error(errno_code(errno), "cgroup: ", file.string(), ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool has_word(const std::string& text, std::string_view word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

// The number after `key` in a flat keyed file ("populated 1", "oom_kill 0"); 0 when absent.
uint64_t keyed_value(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

bool is_cgroup2(const fs::path& dir) {
  struct statfs st;
  return ::statfs(dir.c_str(), &st) == 0 && static_cast<long>(st.f_type) == CGROUP2_SUPER_MAGIC;
}

std::string human(uint64_t bytes) {
  if (bytes % (1ull << 30) == 0) return str_cat(bytes >> 30, " GiB");
  if (bytes % (1ull << 20) == 0) return str_cat(bytes >> 20, " MiB");
  return str_cat(bytes, " bytes");
}

void kill_members(const fs::path& dir) {
  // cgroup.kill (Linux 5.14) kills atomically, forks in flight included; before it, each member
  // is killed in turn, a few rounds to catch what forked meanwhile.
  if (write_control(dir / "cgroup.kill", "1").ok()) return;
  for (int round = 0; round < 8; ++round) {
    auto procs = read_control(dir / "cgroup.procs");
    if (!procs.ok() || procs->empty()) return;
    std::istringstream in(*procs);
    pid_t pid;
    while (in >> pid) ::kill(pid, SIGKILL);
  }
}

bool populated(const fs::path& dir) {
  auto events = read_control(dir / "cgroup.events");
  return events.ok() && keyed_value(*events, "populated") != 0;
}

// Kills what is left in a leaf, waits (briefly) for it to empty and removes it.
bool remove_leaf(const fs::path& dir) {
  kill_members(dir);
  for (int i = 0; i < 500; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace

DriverCgroup::~DriverCgroup() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
  // A cgroup still busy after the wait stays behind; the next tree opened over it removes it.
  if (!path_.empty()) (void)remove_leaf(path_);
}

void DriverCgroup::kill() const { kill_members(path_); }

uint64_t DriverCgroup::oom_kills() const {
  auto events = read_control(path_ / "memory.events");
  return events.ok() ? keyed_value(*events, "oom_kill") : 0;
}

bool DriverCgroup::populated() const { return sandbox::populated(path_); }

Result<std::unique_ptr<CgroupTree>> CgroupTree::open(const fs::path& base) {
  if (!is_cgroup2(base))
    return make_error(Errc::invalid_argument, "cgroup: ", base.string(),
                      " is not a directory of a cgroup v2 hierarchy");
  const std::string offered = ICAM_TRY(read_control(base / "cgroup.controllers"));
  // BASE hands memory and pids to its children (needs BASE empty of processes, or the root).
  for (const char* controller : {"memory", "pids"}) {
    if (!has_word(offered, controller)) continue;
    Status enabled = write_control(base / "cgroup.subtree_control", str_cat("+", controller));
    if (!enabled.ok() && enabled.error().code() == Errc::unavailable)
      return make_error(Errc::unavailable, "cgroup: ", base.string(),
                        " holds processes, and cgroup v2 hands controllers down only from a "
                        "cgroup that holds none (give icam an empty one, or run it as the only "
                        "process of a delegated cgroup)");
    ICAM_TRY(std::move(enabled));
  }
  std::unique_ptr<CgroupTree> tree(new CgroupTree());
  tree->path_ = base / "icam-drivers";
  if (::mkdir(tree->path_.c_str(), 0755) != 0) {
    if (errno != EEXIST)
      return make_error(errno_code(errno), "cgroup: creating ", tree->path_.string(), ": ",
                        std::strerror(errno));
    // Left by a daemon that was killed: its drivers' cgroups go (their drivers died with it, or
    // are killed now). Leaves of a daemon still running (d<pid>-<n>) are its own business.
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(tree->path_, error)) {
      if (!entry.is_directory()) continue;
      const std::string name = entry.path().filename().string();
      pid_t owner = 0;
      if (std::sscanf(name.c_str(), "d%d-", &owner) == 1 && owner > 0 && owner != ::getpid() &&
          (::kill(owner, 0) == 0 || errno == EPERM))
        continue;
      (void)remove_leaf(entry.path());
    }
  }
  const std::string enabled = ICAM_TRY(read_control(base / "cgroup.subtree_control"));
  for (const char* controller : {"memory", "pids"}) {
    if (!has_word(enabled, controller)) continue;
    ICAM_TRY(write_control(tree->path_ / "cgroup.subtree_control", str_cat("+", controller)));
    (std::string_view(controller) == "memory" ? tree->memory_ : tree->pids_) = true;
  }
  return tree;
}

CgroupTree::~CgroupTree() {
  if (!path_.empty()) ::rmdir(path_.c_str());  // EBUSY while a driver cgroup is left: kept
}

std::string CgroupTree::describe() const {
  std::string controllers = memory_ && pids_ ? "memory, pids"
                            : memory_        ? "memory; no pids controller"
                            : pids_          ? "pids; no memory controller"
                                             : "no memory or pids controller";
  return str_cat("cgroup v2 tree ", path_.string(), " (", controllers, ")");
}

Result<std::unique_ptr<DriverCgroup>> CgroupTree::create(const CgroupLimits& limits) {
  std::unique_ptr<DriverCgroup> cg(new DriverCgroup());
  {
    std::lock_guard lock(mutex_);
    cg->path_ = path_ / str_cat("d", ::getpid(), "-", next_++);
  }
  if (::mkdir(cg->path_.c_str(), 0755) != 0) {
    const int error = errno;
    cg->path_.clear();  // not ours: nothing to remove
    return make_error(errno_code(error), "cgroup: creating a driver cgroup in ", path_.string(),
                      ": ", std::strerror(error));
  }
  std::vector<std::string> text;
  if (memory_ && limits.memory_bytes > 0) {
    ICAM_TRY(write_control(cg->path_ / "memory.max", std::to_string(limits.memory_bytes)));
    // Swap would let it run past the limit slowly instead of being stopped.
    (void)write_control(cg->path_ / "memory.swap.max", "0");
    // An out-of-memory kill takes the whole driver, not one of its processes.
    (void)write_control(cg->path_ / "memory.oom.group", "1");
    cg->memory_limited_ = true;
    text.push_back("memory.max " + human(limits.memory_bytes));
  }
  if (pids_ && limits.max_processes > 0) {
    ICAM_TRY(write_control(cg->path_ / "pids.max", std::to_string(limits.max_processes)));
    cg->processes_limited_ = true;
    text.push_back(str_cat("pids.max ", limits.max_processes));
  }
  for (size_t i = 0; i < text.size(); ++i) cg->limits_text_ += (i ? ", " : "") + text[i];
  cg->dir_fd_ = ::open(cg->path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cg->dir_fd_ < 0)
    return make_error(errno_code(errno), "cgroup: ", cg->path_.string(), ": ", std::strerror(errno));
  return cg;
}

Result<fs::path> own_cgroup() {
  const fs::path mount = "/sys/fs/cgroup";
  if (!is_cgroup2(mount))
    return make_error(Errc::unavailable, mount.string(),
                      " is not a cgroup v2 hierarchy (a v1 or hybrid host)");
  std::ifstream self("/proc/self/cgroup");
  std::string line;
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0) return mount / fs::path(line.substr(3)).relative_path();
  return make_error(Errc::unavailable, "/proc/self/cgroup has no cgroup v2 entry");
}

namespace {

struct Configured {
  std::mutex mutex;
  std::unique_ptr<CgroupTree> tree;
  std::string detail = "not configured (icamd --cgroup auto|PATH)";
};

Configured& configured() {
  static Configured c;
  return c;
}

// "auto": this process's own cgroup, when it is delegated to this process alone.
Result<fs::path> delegated_base() {
  const fs::path own = ICAM_TRY(own_cgroup());
  const std::string offered = ICAM_TRY(read_control(own / "cgroup.controllers"));
  if (!has_word(offered, "memory") || !has_word(offered, "pids"))
    return make_error(Errc::unavailable, "cgroup v2 at ", own.string(),
                      " does not offer the memory and pids controllers");
  if (::access((own / "cgroup.subtree_control").c_str(), W_OK) != 0 ||
      ::access((own / "cgroup.procs").c_str(), W_OK) != 0)
    return make_error(Errc::permission_denied, "cgroup v2 at ", own.string(),
                      " is not writable by this process (not delegated)");
  if (own == fs::path("/sys/fs/cgroup")) return own;  // the root may hold processes
  const std::string procs = ICAM_TRY(read_control(own / "cgroup.procs"));
  std::istringstream in(procs);
  pid_t pid;
  while (in >> pid)
    if (pid != ::getpid())
      return make_error(Errc::unavailable, "cgroup v2 at ", own.string(),
                        " holds other processes (process ", pid,
                        "): it is not delegated to icamd alone");
  // Out of BASE into a leaf of its own, so that BASE may hand controllers down.
  const fs::path leaf = own / "icamd";
  if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno_code(errno), "cgroup: creating ", leaf.string(), ": ",
                      std::strerror(errno));
  ICAM_TRY(write_control(leaf / "cgroup.procs", std::to_string(::getpid())));
  return own;
}

}  // namespace

Status configure_driver_cgroups(const std::string& mode) {
  Configured& c = configured();
  std::lock_guard lock(c.mutex);
  c.tree.reset();
  if (mode.empty() || mode == "off") {
    c.detail = "switched off (--cgroup off)";
    return ok_status();
  }
  if (mode == "auto") {
    auto base = delegated_base();
    auto tree = base.ok() ? CgroupTree::open(*base)
                          : Result<std::unique_ptr<CgroupTree>>(std::move(base).error());
    if (!tree.ok()) {
      c.detail = tree.error().message() + "; limits are rlimits";
      return ok_status();
    }
    c.tree = std::move(*tree);
    c.detail.clear();
    return ok_status();
  }
  c.tree = ICAM_TRY_CTX(CgroupTree::open(mode), "--cgroup " + mode);
  c.detail.clear();
  return ok_status();
}

CgroupTree* driver_cgroups() {
  Configured& c = configured();
  std::lock_guard lock(c.mutex);
  return c.tree.get();
}

std::string driver_cgroups_detail() {
  Configured& c = configured();
  std::lock_guard lock(c.mutex);
  return c.detail;
}

}  // namespace icam::sandbox
