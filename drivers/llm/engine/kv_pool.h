// A pool of fixed-size KV pages shared by every sequence of a backend.
//
// A page holds the keys and values of `page_tokens` consecutive positions for every layer,
// stored as IEEE half floats, laid out [layer][K | V][token][kv_dim]. Keeping a page's bytes
// contiguous lets the memory layer swap a whole page with one copy.
//
// A sequence's block table lists its pages in position order: position p lives in page
// table[p / page_tokens] at slot p % page_tokens. Pages are reference-counted so that sequences
// can share a common prefix; a page returns to the free list when its last reference goes.
//
// Memory is reserved with mmap and only becomes resident when a page is first written, so a
// large pool costs nothing until it is used. Thread-safety: allocation and reference counts
// are not synchronised; the engine thread owns the pool.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/model_config.h"

namespace icam::llm {

struct KvPoolOptions {
  uint64_t bytes = 256ull << 20;  // total pool size; rounded down to whole pages
  int page_tokens = 16;
};

class KvPool {
 public:
  static Result<KvPool> create(const ModelConfig& config, const KvPoolOptions& options);
  KvPool(KvPool&& other) noexcept;
  KvPool& operator=(KvPool&& other) noexcept;
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;
  ~KvPool();

  int page_tokens() const { return page_tokens_; }
  int n_pages() const { return n_pages_; }
  int free_pages() const { return static_cast<int>(free_list_.size()); }
  uint64_t page_bytes() const { return page_bytes_; }
  uint64_t bytes() const { return page_bytes_ * static_cast<uint64_t>(n_pages_); }
  int n_layers() const { return n_layers_; }
  int kv_dim() const { return kv_dim_; }

  // Takes a free page with one reference; Errc::resource_exhausted when none is left.
  Result<int32_t> allocate();
  // Adds a reference to a page in use.
  void retain(int32_t page);
  // Drops a reference; the page becomes free when none remain.
  void release(int32_t page);
  int ref_count(int32_t page) const { return refs_[page]; }
  bool valid(int32_t page) const { return page >= 0 && page < n_pages_ && refs_[page] > 0; }
  // Counts the allocations of `page`: it changes each time the page is handed out again, so a
  // holder of no reference (the prefix index) can tell that a page it remembers was freed and
  // reused, and now holds other keys and values.
  uint64_t generation(int32_t page) const { return generations_[page]; }

  // Keys (or values) of `layer` in `page`: page_tokens rows of kv_dim halves.
  uint16_t* keys(int32_t page, int layer) { return slab(page, layer, 0); }
  uint16_t* values(int32_t page, int layer) { return slab(page, layer, 1); }
  const uint16_t* keys(int32_t page, int layer) const { return slab(page, layer, 0); }
  const uint16_t* values(int32_t page, int layer) const { return slab(page, layer, 1); }
  // The whole page, page_bytes() long (for copying between tiers).
  uint8_t* page_data(int32_t page) { return base_ + static_cast<uint64_t>(page) * page_bytes_; }
  const uint8_t* page_data(int32_t page) const {
    return base_ + static_cast<uint64_t>(page) * page_bytes_;
  }

  // Copies a page's keys and values of every layer out of the pool (`out` is page_bytes() long)
  // or into it (`in` likewise), in the pool's layout. Errc::invalid_argument for a page not in use
  // or a buffer of another size; nothing is copied then.
  Status read_page(int32_t page, std::span<uint8_t> out) const;
  Status write_page(int32_t page, std::span<const uint8_t> in);

 private:
  KvPool() = default;
  uint16_t* slab(int32_t page, int layer, int kind) const {
    uint8_t* p = base_ + static_cast<uint64_t>(page) * page_bytes_ +
                 (static_cast<uint64_t>(layer) * 2 + kind) * slab_bytes_;
    return reinterpret_cast<uint16_t*>(p);
  }

  uint8_t* base_ = nullptr;
  uint64_t mapped_bytes_ = 0;
  uint64_t page_bytes_ = 0;
  uint64_t slab_bytes_ = 0;  // one layer's K (or V) of one page
  int page_tokens_ = 0;
  int n_pages_ = 0;
  int n_layers_ = 0;
  int kv_dim_ = 0;
  std::vector<int32_t> free_list_;
  std::vector<int32_t> refs_;
  std::vector<uint64_t> generations_;
};

}  // namespace icam::llm
