// Moving a context's pages between the KV pool (T0) and the page store (T1). A context is named by
// its token ids: the hashes of its full pages (page_hash.h) are the store's keys, so saving is
// idempotent and contexts that begin alike share their stored pages too.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"
#include "drivers/llm/engine/kv_pool.h"
#include "memory/context_pages.h"
#include "memory/model_identity.h"
#include "memory/page_store.h"

namespace icam::memory {

struct SaveResult {
  int pages_written = 0;  // put into the store
  int pages_present = 0;  // already there (same hash), not written again
};

// Stores the full pages of a context: `pages` is its block table in the pool, `tokens` its token
// ids, whose keys and values those pages hold for positions [0, tokens.size()). The last partial
// page is not stored (it has no hash yet).
Result<SaveResult> save_context(PageStore& store, const llm::KvPool& pool,
                                std::span<const int32_t> tokens, std::span<const int32_t> pages,
                                const ModelIdentity& model);

struct RestoreResult {
  int tokens = 0;       // positions [0, tokens) now hold the context's keys and values
  int pages = 0;        // pages restored (tokens / page_tokens)
  std::string stopped;  // why restoring stopped before the context's last full page; empty if not
};

// Brings back the full pages of a context from the store into fresh pages of the pool, appended
// to `into` (which must be empty), in order, checking each (checksum, key, model identity, shape)
// as PageStore::get does. It stops at the first page that is absent or refused, saying why in
// `stopped`: the caller computes the context from `tokens` on, so a damaged or foreign page is
// recomputed, never used. Pages of the context's last `keep_last` tokens are not restored (a
// caller that must feed the last token to get logits passes 1). An error (nothing kept in `into`)
// only when the pool has no free page or RocksDB fails.
Result<RestoreResult> restore_context(const PageStore& store, llm::KvPool& pool,
                                      std::span<const int32_t> tokens, const ModelIdentity& model,
                                      ContextPages& into, int keep_last = 0);

}  // namespace icam::memory
