// The prefix index: which page of the KV pool (tier T0) holds the keys and values of a page hash.
// A sequence about to prefill a full page whose hash is here attaches that page (one more
// reference, taken by the caller) instead of computing it.
//
// The index holds no reference: the pool's reference counts belong to the sequences that hold
// the pages, and a page leaves the pool when its last holder lets go, indexed or not. So that a
// freed page is never mistaken for the one remembered, each entry records the page's allocation
// generation (KvPool::generation) and find() accepts it only while the page is in use with that
// generation. Stale entries are dropped as they are met, and all at once when the entries exceed
// twice the pool's pages. Keeping pages resident after their last holder finishes (a prefix
// cache) needs an eviction policy and is not done yet (docs/memory.md).
//
// Indexed pages are full and never written again (a sequence writes only positions past the ones
// it holds), so sharing them needs no copy-on-write.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "drivers/llm/engine/kv_pool.h"
#include "memory/page_hash.h"

namespace icam::memory {

class PrefixIndex {
 public:
  explicit PrefixIndex(const llm::KvPool& pool) : pool_(&pool) {}

  // The page holding `hash`, or -1 when no page in use does.
  int32_t find(const PageHash& hash);
  // Records that `page` (in use, full, never to be written again) holds `hash`. When another
  // page in use holds it already, that one stays and false is returned.
  bool insert(const PageHash& hash, int32_t page);
  // Drops every stale entry.
  void sweep();

  // Entries, stale ones included until they are dropped.
  size_t size() const { return entries_.size(); }

 private:
  struct Slot {
    int32_t page;
    uint64_t generation;
  };
  bool live(const Slot& s) const {
    return pool_->valid(s.page) && pool_->generation(s.page) == s.generation;
  }

  const llm::KvPool* pool_;
  std::unordered_map<PageHash, Slot, PageHashHasher> entries_;
};

}  // namespace icam::memory
