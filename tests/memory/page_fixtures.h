// Made-up pages for the page store, writer and prefetcher tests: a small shape, model identities
// and page hashes told apart by a number, and payloads whose bytes depend on that number, so a
// page that comes back under the wrong hash or from the wrong model shows.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/model_identity.h"
#include "memory/page_hash.h"
#include "memory/page_store.h"

namespace icam::memory::testing {

inline PageShape test_shape(int tokens = 8, int layers = 2, int kv_dim = 32) {
  PageShape s;
  s.tokens = tokens;
  s.layers = layers;
  s.kv_dim = kv_dim;
  return s;
}

inline ModelIdentity test_model(uint8_t b) {
  ModelIdentity m;
  m.digest.fill(b);
  return m;
}

// Page `i` (up to 65,535) of a test; `tag` keeps one test's hashes apart from another's.
inline PageHash test_hash(int i, uint8_t tag = 0xC3) {
  PageHash h{};
  h[0] = static_cast<uint8_t>(i);
  h[1] = static_cast<uint8_t>(i >> 8);
  h[31] = tag;
  return h;
}

inline std::vector<uint8_t> test_payload(const PageShape& shape, int i) {
  std::vector<uint8_t> p(shape.payload_bytes());
  for (size_t j = 0; j < p.size(); ++j) p[j] = static_cast<uint8_t>(j * 13 + static_cast<size_t>(i) * 7);
  return p;
}

}  // namespace icam::memory::testing
