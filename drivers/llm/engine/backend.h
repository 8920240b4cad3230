// The engine's Backend: one batched forward step over a paged KV pool, with the same contract
// on every device. The CPU backend is always built and is the reference each other backend is
// tested against.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/kv_pool.h"
#include "drivers/llm/engine/model_config.h"

namespace icam::llm {

enum class LogitsWanted { none, last, all };

// One sequence's share of a step: new tokens at consecutive positions from `start_pos`, and the
// block table covering positions [0, start_pos + tokens.size()). Positions before start_pos
// must already hold this sequence's keys and values (from earlier steps or a shared prefix).
struct SequenceStep {
  std::span<const int32_t> tokens;
  int32_t start_pos = 0;
  std::span<const int32_t> pages;
  LogitsWanted logits = LogitsWanted::last;
};

struct BackendStats {
  uint64_t steps = 0;
  uint64_t tokens = 0;
  double seconds = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual KvPool& kv_pool() = 0;

  // Runs one step for every sequence in `batch`. Writes their keys and values into the pool and
  // the requested logits into `logits`, n_vocab floats per row, rows in batch order (one per
  // sequence for `last`, one per token for `all`). Every argument is validated first (token ids,
  // positions, page tables, context length); on error nothing has been written.
  virtual Status forward(std::span<const SequenceStep> batch, std::vector<float>& logits) = 0;

  virtual BackendStats stats() const = 0;

  // Calls fn(i) for every i in [0, n), on the backend's own worker threads where it has some
  // (they are idle between forward() calls), and returns when all have run. The scheduler samples
  // the sequences of a step this way. fn must be safe to run concurrently for different i. The
  // default runs them in order on the calling thread.
  virtual void parallel_for_each(size_t n, const std::function<void(size_t)>& fn) {
    for (size_t i = 0; i < n; ++i) fn(i);
  }
};

// Checks a batch against the configuration and the pool before any work is done.
Status validate_batch(std::span<const SequenceStep> batch, const ModelConfig& config,
                      const KvPool& pool);

}  // namespace icam::llm
