// The pages one sequence holds in a KvPool, in position order. Owns one reference to each page
// and drops them when destroyed, so a sequence that goes away gives its pages back.
#pragma once

#include <span>
#include <vector>

#include "drivers/llm/engine/kv_pool.h"

namespace icam::llm {

class BlockTable {
 public:
  explicit BlockTable(KvPool& pool) : pool_(&pool) {}
  BlockTable(BlockTable&& other) noexcept : pool_(other.pool_), pages_(std::move(other.pages_)) {
    other.pages_.clear();
  }
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;
  ~BlockTable() { clear(); }

  // Ensures pages cover positions [0, n_positions). On failure (pool exhausted) the table keeps
  // the pages it already had and the error says how many were missing.
  Status reserve(int64_t n_positions);
  // Gives every page back to the pool.
  void clear();

  std::span<const int32_t> pages() const { return pages_; }
  int64_t capacity() const { return static_cast<int64_t>(pages_.size()) * pool_->page_tokens(); }

 private:
  KvPool* pool_;
  std::vector<int32_t> pages_;
};

}  // namespace icam::llm
