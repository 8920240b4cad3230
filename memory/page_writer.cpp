#include "memory/page_writer.h"

#include <algorithm>
#include <cstring>

namespace icam::memory {

PageWriter::PageWriter(PageStore& store, uint64_t max_pending_bytes)
    : store_(store), max_pending_bytes_(max_pending_bytes), thread_([this] { run(); }) {}

PageWriter::~PageWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
}

bool PageWriter::put(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
                     std::span<const uint8_t> payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (pending_.count(hash)) return false;
  if (!pending_.empty() && stats_.pending_bytes + payload.size() > max_pending_bytes_) {
    ++stats_.dropped;
    return false;
  }
  pending_.emplace(hash, Pending{model, shape, std::vector<uint8_t>(payload.begin(), payload.end())});
  order_.push_back(hash);
  stats_.pending_bytes += payload.size();
  ++stats_.queued;
  work_.notify_one();
  return true;
}

Status PageWriter::get(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
                       std::span<uint8_t> out) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_.find(hash);
    if (it != pending_.end()) {
      const Pending& p = it->second;
      if (p.model != model)
        return make_error(Errc::invalid_argument, "page writer: the queued page was computed by "
                                                  "model ", p.model.hex(), ", not ", model.hex());
      if (!(p.shape == shape) || out.size() != p.payload.size())
        return make_error(Errc::invalid_argument, "page writer: the queued page has another shape");
      std::memcpy(out.data(), p.payload.data(), p.payload.size());
      return ok_status();
    }
  }
  return store_.get(hash, model, shape, out);
}

Result<bool> PageWriter::contains(const PageHash& hash) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_.count(hash)) return true;
  }
  return store_.contains(hash);
}

void PageWriter::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] { return pending_.empty() && !writing_; });
}

PageWriterStats PageWriter::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void PageWriter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stop_ || !order_.empty(); });
    if (order_.empty()) break;  // stopping, and everything is written
    const PageHash hash = order_.front();
    // The page stays in pending_ (readable) while it is written; only this thread removes it.
    const Pending& page = pending_.at(hash);
    writing_ = true;
    lock.unlock();
    Status st = store_.put(hash, page.model, page.shape, page.payload);
    lock.lock();
    writing_ = false;
    if (st.ok())
      ++stats_.written;
    else
      ++stats_.failed;
    stats_.pending_bytes -= page.payload.size();
    order_.pop_front();
    pending_.erase(hash);
    if (pending_.empty()) idle_.notify_all();
  }
  idle_.notify_all();
}

}  // namespace icam::memory
