// The daemon's view of its processes, kept on the I/O thread from the engine's reports: each
// process's latest record and output, and who is waiting for it or following its output. It
// answers list/get/logs/wait without a round trip to the engine thread, and it is where the
// ownership rule lives: a user sees and controls only processes whose owner is their uid; root
// sees all. To anyone else a process does not exist (so pids of other users cannot be probed).
//
// Output is kept per process up to a bound (oldest bytes dropped first) with absolute byte
// offsets, so a client can resume a stream from where it stopped. Exited processes are kept up to
// a bound too, oldest dropped first.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/process.h"

namespace icam::daemon {

using SessionId = uint64_t;

struct ProcessEntry {
  kernel::Pid pid = 0;
  uint32_t owner_uid = 0;
  nlohmann::json record;  // kernel::to_json(Process), latest known
  bool exited = false;
  std::string output;    // the kept tail of the output
  uint64_t dropped = 0;  // bytes dropped from the front; output starts at this offset
  uint64_t end() const { return dropped + output.size(); }

  struct Waiter {
    SessionId session;
    uint64_t id;
    std::function<void(const nlohmann::json& record)> on_exit;
  };
  struct Follower {
    SessionId session;
    uint64_t id;
    std::function<void(uint64_t offset, std::string_view text)> on_text;
    std::function<void(const nlohmann::json& record)> on_exit;
  };
  std::vector<Waiter> waiters;
  std::vector<Follower> followers;
};

class ProcessDirectory {
 public:
  explicit ProcessDirectory(size_t max_output_bytes = 4u << 20, size_t max_exited = 1024);

  // Adds or updates a process from its record. On the change to exited, every waiter and
  // follower hears it once and is removed. Records of exited processes never go back to live.
  void update(const nlohmann::json& record);
  // Appends output; followers hear it. Output of an unknown pid is ignored.
  void append_output(kernel::Pid pid, std::string_view text);

  // The process if `uid` may see it (its owner, or root), else null.
  ProcessEntry* find(kernel::Pid pid, uint32_t uid);
  // The processes `uid` may see, in pid order; `all` is honoured for root only.
  std::vector<const ProcessEntry*> list(uint32_t uid, bool all) const;
  size_t live(uint32_t uid) const;  // live processes owned by uid
  size_t live_total() const;
  size_t exited_total() const { return entries_.size() - live_total(); }

  uint64_t add_waiter(ProcessEntry& entry, SessionId session,
                      std::function<void(const nlohmann::json&)> on_exit);
  // False when the waiter is gone (it already heard the exit).
  bool remove_waiter(kernel::Pid pid, uint64_t id);
  uint64_t add_follower(ProcessEntry& entry, SessionId session,
                        std::function<void(uint64_t, std::string_view)> on_text,
                        std::function<void(const nlohmann::json&)> on_exit);
  // Forgets every waiter and follower of a session (it closed).
  void drop_session(SessionId session);

 private:
  void trim_exited();

  size_t max_output_bytes_;
  size_t max_exited_;
  uint64_t next_id_ = 1;
  std::map<kernel::Pid, ProcessEntry> entries_;
};

}  // namespace icam::daemon
