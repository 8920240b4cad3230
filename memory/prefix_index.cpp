#include "memory/prefix_index.h"

namespace icam::memory {

int32_t PrefixIndex::find(const PageHash& hash) {
  auto it = entries_.find(hash);
  if (it == entries_.end()) return -1;
  if (!live(it->second)) {
    entries_.erase(it);
    return -1;
  }
  return it->second.page;
}

bool PrefixIndex::insert(const PageHash& hash, int32_t page) {
  if (!pool_->valid(page)) return false;
  auto [it, added] = entries_.try_emplace(hash, Slot{page, pool_->generation(page)});
  if (!added) {
    if (live(it->second)) return it->second.page == page;
    it->second = Slot{page, pool_->generation(page)};
  }
  // Each page in use is indexed under one hash at most, so more entries than pages means stale
  // ones; dropping them all keeps the map bounded at a cost shared out over many inserts.
  if (entries_.size() > 2 * static_cast<size_t>(pool_->n_pages()) + 16) sweep();
  return true;
}

void PrefixIndex::sweep() {
  std::erase_if(entries_, [&](const auto& kv) { return !live(kv.second); });
}

}  // namespace icam::memory
