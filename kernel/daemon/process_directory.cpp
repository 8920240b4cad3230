#include "kernel/daemon/process_directory.h"

#include <algorithm>

namespace icam::daemon {

using nlohmann::json;

ProcessDirectory::ProcessDirectory(size_t max_output_bytes, size_t max_exited)
    : max_output_bytes_(max_output_bytes), max_exited_(max_exited) {}

void ProcessDirectory::update(const json& record) {
  const auto pid = record.at("pid").get<kernel::Pid>();
  ProcessEntry& e = entries_[pid];
  if (e.pid == 0) {
    e.pid = pid;
    e.owner_uid = record.at("owner_uid").get<uint32_t>();
  }
  if (e.exited) return;  // the exit record is final; a late live snapshot must not replace it
  e.record = record;
  if (record.at("state") != "exited") return;
  e.exited = true;
  // Swap the listeners out first: a callback may close its session, which calls drop_session.
  auto waiters = std::move(e.waiters);
  auto followers = std::move(e.followers);
  e.waiters.clear();
  e.followers.clear();
  const json final_record = e.record;
  for (auto& f : followers) f.on_exit(final_record);
  for (auto& w : waiters) w.on_exit(final_record);
  trim_exited();
}

void ProcessDirectory::append_output(kernel::Pid pid, std::string_view text) {
  auto it = entries_.find(pid);
  if (it == entries_.end() || text.empty()) return;
  ProcessEntry& e = it->second;
  const uint64_t offset = e.end();
  e.output.append(text);
  if (e.output.size() > max_output_bytes_) {
    const size_t cut = e.output.size() - max_output_bytes_;
    e.output.erase(0, cut);
    e.dropped += cut;
  }
  // Copy: a follower's callback may drop its session and with it the follower list entries.
  const auto followers = e.followers;
  for (const auto& f : followers) f.on_text(offset, text);
}

ProcessEntry* ProcessDirectory::find(kernel::Pid pid, uint32_t uid) {
  auto it = entries_.find(pid);
  if (it == entries_.end()) return nullptr;
  if (uid != 0 && it->second.owner_uid != uid) return nullptr;
  return &it->second;
}

std::vector<const ProcessEntry*> ProcessDirectory::list(uint32_t uid, bool all) const {
  std::vector<const ProcessEntry*> out;
  for (const auto& [pid, e] : entries_) {
    if ((uid == 0 && all) || e.owner_uid == uid) out.push_back(&e);
  }
  return out;
}

size_t ProcessDirectory::live(uint32_t uid) const {
  size_t n = 0;
  for (const auto& [pid, e] : entries_) n += (!e.exited && e.owner_uid == uid) ? 1 : 0;
  return n;
}

size_t ProcessDirectory::live_total() const {
  size_t n = 0;
  for (const auto& [pid, e] : entries_) n += e.exited ? 0 : 1;
  return n;
}

uint64_t ProcessDirectory::add_waiter(ProcessEntry& entry, SessionId session,
                                      std::function<void(const json&)> on_exit) {
  const uint64_t id = next_id_++;
  entry.waiters.push_back({session, id, std::move(on_exit)});
  return id;
}

bool ProcessDirectory::remove_waiter(kernel::Pid pid, uint64_t id) {
  auto it = entries_.find(pid);
  if (it == entries_.end()) return false;
  auto& waiters = it->second.waiters;
  const auto before = waiters.size();
  std::erase_if(waiters, [&](const ProcessEntry::Waiter& w) { return w.id == id; });
  return waiters.size() != before;
}

uint64_t ProcessDirectory::add_follower(ProcessEntry& entry, SessionId session,
                                        std::function<void(uint64_t, std::string_view)> on_text,
                                        std::function<void(const json&)> on_exit) {
  const uint64_t id = next_id_++;
  entry.followers.push_back({session, id, std::move(on_text), std::move(on_exit)});
  return id;
}

void ProcessDirectory::drop_session(SessionId session) {
  for (auto& [pid, e] : entries_) {
    std::erase_if(e.waiters, [&](const ProcessEntry::Waiter& w) { return w.session == session; });
    std::erase_if(e.followers,
                  [&](const ProcessEntry::Follower& f) { return f.session == session; });
  }
}

void ProcessDirectory::trim_exited() {
  size_t exited = 0;
  for (const auto& [pid, e] : entries_) exited += e.exited ? 1 : 0;
  for (auto it = entries_.begin(); exited > max_exited_ && it != entries_.end();) {
    if (it->second.exited) {
      it = entries_.erase(it);
      --exited;
    } else {
      ++it;
    }
  }
}

}  // namespace icam::daemon
