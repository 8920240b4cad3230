#include "drivers/llm/engine/kv_pool.h"

#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

namespace icam::llm {

Result<KvPool> KvPool::create(const ModelConfig& config, const KvPoolOptions& options) {
  if (options.page_tokens <= 0 || options.page_tokens > 4096)
    return make_error(Errc::invalid_argument, "KV pool: page_tokens ", options.page_tokens,
                      " is out of range (1..4096)");
  KvPool pool;
  pool.page_tokens_ = options.page_tokens;
  pool.n_layers_ = config.n_layers;
  pool.kv_dim_ = config.kv_dim();
  pool.slab_bytes_ =
      static_cast<uint64_t>(options.page_tokens) * config.kv_dim() * sizeof(uint16_t);
  pool.page_bytes_ = pool.slab_bytes_ * 2 * config.n_layers;
  const uint64_t pages = options.bytes / pool.page_bytes_;
  if (pages == 0)
    return make_error(Errc::invalid_argument, "KV pool: ", options.bytes,
                      " bytes is less than one page (", pool.page_bytes_, " bytes)");
  if (pages > (1u << 30))
    return make_error(Errc::invalid_argument, "KV pool: too many pages (", pages, ")");
  pool.n_pages_ = static_cast<int>(pages);
  pool.mapped_bytes_ = pages * pool.page_bytes_;
  void* mem = mmap(nullptr, pool.mapped_bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED)
    return make_error(Errc::resource_exhausted, "KV pool: cannot reserve ", pool.mapped_bytes_,
                      " bytes: ", std::strerror(errno));
  pool.base_ = static_cast<uint8_t*>(mem);
  pool.refs_.assign(pool.n_pages_, 0);
  pool.generations_.assign(pool.n_pages_, 0);
  pool.free_list_.reserve(pool.n_pages_);
  // Hand out low page numbers first, so a lightly used pool touches little memory.
  for (int32_t p = pool.n_pages_ - 1; p >= 0; --p) pool.free_list_.push_back(p);
  return pool;
}

KvPool::KvPool(KvPool&& other) noexcept {
  *this = std::move(other);
}

KvPool& KvPool::operator=(KvPool&& other) noexcept {
  if (this != &other) {
    if (base_) munmap(base_, mapped_bytes_);
    base_ = std::exchange(other.base_, nullptr);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    page_bytes_ = other.page_bytes_;
    slab_bytes_ = other.slab_bytes_;
    page_tokens_ = other.page_tokens_;
    n_pages_ = std::exchange(other.n_pages_, 0);
    n_layers_ = other.n_layers_;
    kv_dim_ = other.kv_dim_;
    free_list_ = std::move(other.free_list_);
    refs_ = std::move(other.refs_);
    generations_ = std::move(other.generations_);
  }
  return *this;
}

KvPool::~KvPool() {
  if (base_) munmap(base_, mapped_bytes_);
}

Result<int32_t> KvPool::allocate() {
  if (free_list_.empty())
    return make_error(Errc::resource_exhausted, "KV pool: all ", n_pages_, " pages are in use");
  int32_t page = free_list_.back();
  free_list_.pop_back();
  refs_[page] = 1;
  ++generations_[page];
  return page;
}

void KvPool::retain(int32_t page) {
  assert(valid(page));
  ++refs_[page];
}

void KvPool::release(int32_t page) {
  assert(valid(page));
  if (--refs_[page] == 0) free_list_.push_back(page);
}

Status KvPool::read_page(int32_t page, std::span<uint8_t> out) const {
  if (!valid(page))
    return make_error(Errc::invalid_argument, "KV pool: page ", page, " is not in use");
  if (out.size() != page_bytes_)
    return make_error(Errc::invalid_argument, "KV pool: reading page ", page, " needs ",
                      page_bytes_, " bytes, the buffer has ", out.size());
  std::memcpy(out.data(), page_data(page), page_bytes_);
  return ok_status();
}

Status KvPool::write_page(int32_t page, std::span<const uint8_t> in) {
  if (!valid(page))
    return make_error(Errc::invalid_argument, "KV pool: page ", page, " is not in use");
  if (in.size() != page_bytes_)
    return make_error(Errc::invalid_argument, "KV pool: writing page ", page, " needs ",
                      page_bytes_, " bytes, got ", in.size());
  std::memcpy(page_data(page), in.data(), page_bytes_);
  return ok_status();
}

}  // namespace icam::llm
