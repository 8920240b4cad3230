// Page hashes: the content address of a full KV page. A page's keys and values depend on every
// token before it, so its hash chains: hash(page i) = SHA-256(domain, hash(page i - 1), the model
// identity, the page's token ids). The first page's parent is kRootPageHash (all zeros). Equal
// hashes mean equal token prefixes up to the page's end on the same model, hence the same keys and
// values: a page can be shared (in the pool) or fetched (from the page store) by its hash alone.
// Only full pages have hashes; a partial page is still being written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "memory/digest.h"
#include "memory/model_identity.h"

namespace icam::memory {

using PageHash = Digest;

inline constexpr PageHash kRootPageHash{};

PageHash page_hash(const PageHash& parent, std::span<const int32_t> tokens,
                   const ModelIdentity& model);

// Hashes of the full pages of a context, in order: tokens.size() / page_tokens of them, or
// `max_pages` when fewer.
std::vector<PageHash> full_page_hashes(std::span<const int32_t> tokens, int page_tokens,
                                       const ModelIdentity& model,
                                       size_t max_pages = static_cast<size_t>(-1));

// For unordered containers: a page hash is already uniformly distributed.
struct PageHashHasher {
  size_t operator()(const PageHash& h) const {
    size_t v = 0;
    for (size_t i = 0; i < sizeof(size_t); ++i) v = (v << 8) | h[i];
    return v;
  }
};

}  // namespace icam::memory
