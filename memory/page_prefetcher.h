// Reading pages from the page store (T1) ahead of need, off the engine thread. The scheduler asks
// for the full pages a swapped-out sequence will read back as soon as it knows the sequence is
// coming back (resumed, unblocked, first in line for pages); a background thread reads them
// through the PageWriter (so a page still queued for writing comes from memory, and every page
// is checked as PageStore::get checks: checksum, key, model, shape) into a staging area in
// memory. When the sequence is admitted, swap_in takes each page from there (a memory copy)
// and reads from the store itself only the pages that are not staged.
//
// Staging is bounded in bytes: a request reserves its page's bytes until the page is taken,
// forgotten or found missing, and a request that would pass the bound is dropped (counted), so
// staging never holds more than max_staged_bytes however many pages are asked for. A page absent
// from the store or refused by its checks is simply not staged (the scheduler then reads it on
// demand or recomputes it, as without prefetching). Staged pages stay until take() moves them out
// or forget()/clear() drops them: the caller forgets the pages of sequences that no longer need
// them, there is no eviction here.
//
// Thread-safety: every method may be called from any thread (one mutex guards the requests and
// the staging area; the disk reads run outside it, on the background thread). The scheduler's
// engine thread is the one caller there. The writer must outlive the prefetcher.
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
#include "memory/page_writer.h"

namespace icam::memory {

struct PagePrefetcherStats {
  uint64_t requested = 0;  // pages accepted by request() (duplicates and dropped ones excluded)
  uint64_t staged = 0;     // read, checked and staged by the background thread
  uint64_t taken = 0;      // staged pages moved out by take()
  uint64_t dropped = 0;    // requests refused because staging was full
  uint64_t missing = 0;    // not in the store (Errc::not_found)
  uint64_t refused = 0;    // the read failed or the page failed its checks
  uint64_t unused = 0;     // requested pages forgotten before they were taken (staged or not)
  uint64_t staged_bytes = 0;    // bytes of the pages staged now
  uint64_t reserved_bytes = 0;  // bytes of the pages staged, being read or queued now
};

class PagePrefetcher {
 public:
  explicit PagePrefetcher(const PageWriter& writer, uint64_t max_staged_bytes = 64ull << 20);
  ~PagePrefetcher();  // abandons queued reads, waits for the one in flight
  PagePrefetcher(const PagePrefetcher&) = delete;
  PagePrefetcher& operator=(const PagePrefetcher&) = delete;

  // Queues reads of the pages under `hashes`, in order. A page already requested (queued, being
  // read or staged) is skipped; once staging (with the queued reads) would pass the bound, the
  // remaining pages are dropped. Returns how many were queued.
  size_t request(std::span<const PageHash> hashes, const ModelIdentity& model,
                 const PageShape& shape);
  // Moves the staged page under `hash` into `out` (shape.payload_bytes() long) and forgets it.
  // A page being read right now is waited for (the read is under way; waiting is never longer
  // than reading it again). Errc::not_found when it is not staged: never requested, still queued
  // (the queued read is cancelled, since the caller reads it itself), missing or refused.
  // Errc::invalid_argument when it was requested for another model or shape (dropped too).
  Status take(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
              std::span<uint8_t> out);
  // Drops the pages under `hashes` (staged, queued or being read) that are still here.
  void forget(std::span<const PageHash> hashes);
  // Drops every page.
  void clear();
  // Waits until no read is queued or in flight (for tests).
  void wait_idle();

  PagePrefetcherStats stats() const;
  uint64_t max_staged_bytes() const { return max_staged_bytes_; }

 private:
  enum class SlotState { queued, reading, staged };
  struct Slot {
    SlotState state = SlotState::queued;
    bool cancelled = false;  // forgotten while being read: discard the result
    ModelIdentity model;
    PageShape shape;
    std::vector<uint8_t> payload;  // when staged
  };
  using SlotMap = std::map<PageHash, Slot>;
  // Removes a slot not taken (or marks it cancelled while it is read), counting it unused;
  // returns the next slot. Called with mutex_ held.
  SlotMap::iterator drop_locked(SlotMap::iterator it);
  void run();

  const PageWriter& writer_;
  const uint64_t max_staged_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable work_;  // the thread waits for requests (or stop)
  std::condition_variable done_;  // take() and wait_idle() wait for reads to finish
  SlotMap slots_;
  std::deque<PageHash> queue_;  // reads in request order; entries whose slot left are skipped
  bool reading_ = false;
  bool stop_ = false;
  PagePrefetcherStats stats_;
  std::thread thread_;
};

}  // namespace icam::memory
