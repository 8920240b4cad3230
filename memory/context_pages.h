// The pages one context holds in a KvPool, in position order, with one reference to each: like
// llm::BlockTable, and also able to hold pages shared with other contexts (found in the prefix
// index or restored from the page store). Gives every reference back when destroyed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/kv_pool.h"

namespace icam::memory {

class ContextPages {
 public:
  explicit ContextPages(llm::KvPool& pool) : pool_(&pool) {}
  ContextPages(ContextPages&& other) noexcept
      : pool_(other.pool_), pages_(std::move(other.pages_)) {
    other.pages_.clear();
  }
  ContextPages(const ContextPages&) = delete;
  ContextPages& operator=(const ContextPages&) = delete;
  ~ContextPages() { clear(); }

  // Ensures pages cover positions [0, n_positions), taking fresh ones. On failure (pool exhausted)
  // the pages already held are kept and the error says how many were missing.
  Status reserve(int64_t n_positions);
  // Appends `page`, in use elsewhere, taking a reference to it.
  void append_shared(int32_t page);
  // Appends a fresh page from the pool.
  Status append_new();
  // Puts `page`, in use elsewhere, at `index` in place of the page held there, whose reference is
  // dropped (used when a page reserved but not yet written turns out to be computed already).
  void replace(size_t index, int32_t page);
  // Gives every page back to the pool.
  void clear();

  std::span<const int32_t> pages() const { return pages_; }
  size_t size() const { return pages_.size(); }
  bool empty() const { return pages_.empty(); }
  int64_t capacity() const { return static_cast<int64_t>(pages_.size()) * pool_->page_tokens(); }

 private:
  llm::KvPool* pool_;
  std::vector<int32_t> pages_;
};

}  // namespace icam::memory
