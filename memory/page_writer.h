// Writing pages to the page store (T1) off the engine thread. When the scheduler takes a
// sequence's pages back it copies each full page into this writer's queue (a memory copy) and
// goes on; a background thread puts them into RocksDB. Reads see a page still in the queue, so a
// sequence that comes back before its pages reached the disk gets them from memory.
//
// The queue is bounded in bytes: when it is full a page is not queued (put returns false) and is
// simply recomputed if it is ever needed again, so a slow disk costs speed, never memory or
// output. Background write failures are counted, not returned (nobody waits for them).
//
// Thread-safety: every method may be called from any thread; the engine thread is the one caller
// in the scheduler.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/result.h"
#include "memory/model_identity.h"
#include "memory/page_hash.h"
#include "memory/page_store.h"

namespace icam::memory {

struct PageWriterStats {
  uint64_t queued = 0;    // pages accepted by put()
  uint64_t written = 0;   // put into the store by the background thread
  uint64_t failed = 0;    // the store refused them (they will be recomputed if needed)
  uint64_t dropped = 0;   // refused by put() because the queue was full
  uint64_t pending_bytes = 0;
};

class PageWriter {
 public:
  // `store` must outlive the writer. max_pending_bytes bounds the queue (at least one page is
  // always accepted when the queue is empty).
  explicit PageWriter(PageStore& store, uint64_t max_pending_bytes = 256ull << 20);
  ~PageWriter();  // writes what is queued, then stops
  PageWriter(const PageWriter&) = delete;
  PageWriter& operator=(const PageWriter&) = delete;

  // Queues a copy of `payload` to be stored under `hash`. False when the queue is full (nothing
  // is queued) or the page is queued already.
  bool put(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
           std::span<const uint8_t> payload);
  // The page under `hash`: from the queue when it is still there (checked against `model` and
  // `shape` as the store checks), else from the store (PageStore::get's errors).
  Status get(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
             std::span<uint8_t> out) const;
  // True when the page is queued or stored.
  Result<bool> contains(const PageHash& hash) const;
  // Waits until the queue is empty.
  void flush();

  PageWriterStats stats() const;
  PageStore& store() const { return store_; }

 private:
  struct Pending {
    ModelIdentity model;
    PageShape shape;
    std::vector<uint8_t> payload;
  };
  void run();

  PageStore& store_;
  const uint64_t max_pending_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable work_;  // the writer waits for pages (or stop)
  std::condition_variable idle_;  // flush() waits for the queue to empty
  std::map<PageHash, Pending> pending_;
  std::deque<PageHash> order_;  // oldest first
  bool writing_ = false;        // the thread holds a page out of pending_ being written
  bool stop_ = false;
  PageWriterStats stats_;
  std::thread thread_;
};

}  // namespace icam::memory
