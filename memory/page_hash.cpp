#include "memory/page_hash.h"

#include <algorithm>

namespace icam::memory {

PageHash page_hash(const PageHash& parent, std::span<const int32_t> tokens,
                   const ModelIdentity& model) {
  Sha256 h;
  h.str("icam kv page v1");
  h.digest(parent);
  h.digest(model.digest);
  h.u32(static_cast<uint32_t>(tokens.size()));
  for (int32_t t : tokens) h.u32(static_cast<uint32_t>(t));
  return h.finish();
}

std::vector<PageHash> full_page_hashes(std::span<const int32_t> tokens, int page_tokens,
                                       const ModelIdentity& model, size_t max_pages) {
  std::vector<PageHash> out;
  if (page_tokens <= 0) return out;
  const size_t n = std::min(tokens.size() / static_cast<size_t>(page_tokens), max_pages);
  out.reserve(n);
  PageHash parent = kRootPageHash;
  for (size_t i = 0; i < n; ++i) {
    parent = page_hash(parent, tokens.subspan(i * page_tokens, page_tokens), model);
    out.push_back(parent);
  }
  return out;
}

}  // namespace icam::memory
