#include "memory/page_prefetcher.h"

#include <cstring>
#include <iterator>
#include <utility>

namespace icam::memory {

PagePrefetcher::PagePrefetcher(const PageWriter& writer, uint64_t max_staged_bytes)
    : writer_(writer), max_staged_bytes_(max_staged_bytes), thread_([this] { run(); }) {}

PagePrefetcher::~PagePrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
}

size_t PagePrefetcher::request(std::span<const PageHash> hashes, const ModelIdentity& model,
                               const PageShape& shape) {
  const uint64_t bytes = shape.payload_bytes();
  size_t queued = 0;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const PageHash& hash : hashes) {
    auto it = slots_.find(hash);
    if (it != slots_.end()) {
      Slot& s = it->second;
      // Forgotten while being read, and wanted again: keep the read's result after all.
      if (s.cancelled && s.model == model && s.shape == shape) {
        s.cancelled = false;
        ++stats_.requested;
        ++queued;
      }
      continue;
    }
    if (stats_.reserved_bytes + bytes > max_staged_bytes_) {
      ++stats_.dropped;
      continue;
    }
    Slot s;
    s.model = model;
    s.shape = shape;
    slots_.emplace(hash, std::move(s));
    queue_.push_back(hash);
    stats_.reserved_bytes += bytes;
    ++stats_.requested;
    ++queued;
  }
  if (queued > 0) work_.notify_one();
  return queued;
}

Status PagePrefetcher::take(const PageHash& hash, const ModelIdentity& model,
                            const PageShape& shape, std::span<uint8_t> out) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = slots_.find(hash);
  // A read under way finishes sooner than a new one would: wait for it.
  while (it != slots_.end() && it->second.state == SlotState::reading) {
    done_.wait(lock);
    it = slots_.find(hash);
  }
  if (it == slots_.end() || it->second.state != SlotState::staged) {
    if (it != slots_.end()) drop_locked(it);  // still queued: the caller reads it itself
    return make_error(Errc::not_found, "page prefetcher: the page is not staged");
  }
  const Slot& s = it->second;
  if (s.model != model || !(s.shape == shape) || out.size() != s.payload.size()) {
    drop_locked(it);
    return make_error(Errc::invalid_argument,
                      "page prefetcher: the page was staged for another model or shape");
  }
  std::memcpy(out.data(), s.payload.data(), s.payload.size());
  stats_.staged_bytes -= s.payload.size();
  stats_.reserved_bytes -= s.shape.payload_bytes();
  ++stats_.taken;
  slots_.erase(it);
  return ok_status();
}

void PagePrefetcher::forget(std::span<const PageHash> hashes) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const PageHash& hash : hashes) {
    auto it = slots_.find(hash);
    if (it != slots_.end()) drop_locked(it);
  }
}

void PagePrefetcher::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = slots_.begin(); it != slots_.end();) it = drop_locked(it);
  queue_.clear();  // every entry left would be skipped anyway
  done_.notify_all();
}

void PagePrefetcher::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return queue_.empty() && !reading_; });
}

PagePrefetcherStats PagePrefetcher::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

PagePrefetcher::SlotMap::iterator PagePrefetcher::drop_locked(SlotMap::iterator it) {
  Slot& s = it->second;
  if (s.state == SlotState::reading) {
    // The background thread holds no reference into the slot but finds it again when its read
    // ends; it erases the slot then and gives its bytes back.
    if (!s.cancelled) ++stats_.unused;
    s.cancelled = true;
    return std::next(it);
  }
  if (s.state == SlotState::staged) stats_.staged_bytes -= s.payload.size();
  stats_.reserved_bytes -= s.shape.payload_bytes();
  ++stats_.unused;
  return slots_.erase(it);
}

void PagePrefetcher::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    const PageHash hash = queue_.front();
    queue_.pop_front();
    auto it = slots_.find(hash);
    if (it == slots_.end() || it->second.state != SlotState::queued) {
      // Taken or forgotten before its turn, or a second entry for a page requested again.
      if (queue_.empty()) done_.notify_all();
      continue;
    }
    it->second.state = SlotState::reading;
    const ModelIdentity model = it->second.model;
    const PageShape shape = it->second.shape;
    reading_ = true;
    lock.unlock();
    std::vector<uint8_t> payload(shape.payload_bytes());
    Status got = writer_.get(hash, model, shape, payload);
    lock.lock();
    reading_ = false;
    // Only this thread erases a slot being read, so it is still there.
    it = slots_.find(hash);
    Slot& s = it->second;
    if (s.cancelled || !got.ok()) {
      if (!s.cancelled) {
        if (got.error().code() == Errc::not_found)
          ++stats_.missing;
        else
          ++stats_.refused;
      }
      stats_.reserved_bytes -= s.shape.payload_bytes();
      slots_.erase(it);
    } else {
      s.payload = std::move(payload);
      s.state = SlotState::staged;
      stats_.staged_bytes += s.payload.size();
      ++stats_.staged;
    }
    done_.notify_all();
  }
  done_.notify_all();
}

}  // namespace icam::memory
