#include "memory/context_pages.h"

#include <cassert>

namespace icam::memory {

Status ContextPages::reserve(int64_t n_positions) {
  const int64_t needed = (n_positions + pool_->page_tokens() - 1) / pool_->page_tokens();
  const int64_t missing = needed - static_cast<int64_t>(pages_.size());
  if (missing > pool_->free_pages())
    return make_error(Errc::resource_exhausted, "KV pool: ", n_positions, " positions need ",
                      missing, " more pages but only ", pool_->free_pages(), " of ",
                      pool_->n_pages(), " are free");
  while (static_cast<int64_t>(pages_.size()) < needed)
    pages_.push_back(ICAM_TRY(pool_->allocate()));
  return ok_status();
}

void ContextPages::append_shared(int32_t page) {
  pool_->retain(page);
  pages_.push_back(page);
}

Status ContextPages::append_new() {
  pages_.push_back(ICAM_TRY(pool_->allocate()));
  return ok_status();
}

void ContextPages::replace(size_t index, int32_t page) {
  assert(index < pages_.size());
  pool_->retain(page);
  pool_->release(pages_[index]);
  pages_[index] = page;
}

void ContextPages::clear() {
  for (int32_t page : pages_) pool_->release(page);
  pages_.clear();
}

}  // namespace icam::memory
