#include "memory/swap.h"

#include <algorithm>
#include <vector>

#include "memory/page_hash.h"

namespace icam::memory {

Result<SaveResult> save_context(PageStore& store, const llm::KvPool& pool,
                                std::span<const int32_t> tokens, std::span<const int32_t> pages,
                                const ModelIdentity& model) {
  const PageShape shape = PageShape::of(pool);
  const std::vector<PageHash> hashes = full_page_hashes(tokens, pool.page_tokens(), model);
  if (pages.size() < hashes.size())
    return make_error(Errc::invalid_argument, "save context: ", tokens.size(), " tokens need ",
                      hashes.size(), " full pages, the block table has ", pages.size());
  SaveResult out;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (ICAM_TRY(store.contains(hashes[i]))) {
      ++out.pages_present;
      continue;
    }
    if (!pool.valid(pages[i]))
      return make_error(Errc::invalid_argument, "save context: page ", pages[i],
                        " of the block table is not in use");
    std::span<const uint8_t> payload(pool.page_data(pages[i]), pool.page_bytes());
    ICAM_TRY(store.put(hashes[i], model, shape, payload));
    ++out.pages_written;
  }
  return out;
}

Result<RestoreResult> restore_context(const PageStore& store, llm::KvPool& pool,
                                      std::span<const int32_t> tokens, const ModelIdentity& model,
                                      ContextPages& into, int keep_last) {
  if (!into.empty())
    return make_error(Errc::invalid_argument, "restore context: the block table is not empty");
  const PageShape shape = PageShape::of(pool);
  const size_t usable = tokens.size() > static_cast<size_t>(std::max(keep_last, 0))
                            ? tokens.size() - static_cast<size_t>(std::max(keep_last, 0))
                            : 0;
  const std::vector<PageHash> hashes =
      full_page_hashes(tokens.first(usable), pool.page_tokens(), model);
  RestoreResult out;
  std::vector<uint8_t> buffer(pool.page_bytes());
  for (size_t i = 0; i < hashes.size(); ++i) {
    Status got = store.get(hashes[i], model, shape, buffer);
    if (!got.ok()) {
      if (got.error().code() == Errc::io) {
        into.clear();
        return std::move(got).error().with_context("restore context");
      }
      out.stopped = got.error().message();
      break;
    }
    Status added = into.append_new();
    if (!added.ok()) {
      into.clear();
      return std::move(added).error().with_context("restore context");
    }
    Status written = pool.write_page(into.pages().back(), buffer);
    if (!written.ok()) {
      into.clear();
      return std::move(written).error().with_context("restore context");
    }
    ++out.pages;
  }
  out.tokens = out.pages * pool.page_tokens();
  return out;
}

}  // namespace icam::memory
