// Counters a scheduler keeps over its lifetime, for reports and benchmarks.
#pragma once

#include <cstdint>
#include <vector>

namespace icam::sched {

struct SchedulerStats {
  uint64_t steps = 0;              // steps that ran the engine
  uint64_t idle_steps = 0;         // step() calls that found nothing to run
  uint64_t sequences_served = 0;   // sum of batch sizes over the steps
  uint64_t tokens = 0;             // tokens fed to the engine
  uint64_t prefill_tokens = 0;     // of which prompt, appended and recomputed tokens
  uint64_t decode_tokens = 0;      // of which decodes
  uint64_t mixed_steps = 0;        // steps whose batch held prefill chunks and decodes together
  uint64_t sampled_tokens = 0;     // tokens sampled
  uint64_t preemptions = 0;        // times a sequence's pages were taken back
  uint64_t recomputed_tokens = 0;  // tokens fed again because of preemptions
  // Prefix sharing: full pages looked up in the prefix index before prefilling, the ones found and
  // attached instead of computed, and the prefill tokens those saved.
  uint64_t prefix_lookups = 0;
  uint64_t prefix_hits = 0;
  uint64_t shared_tokens = 0;
  // Swapping through the page store (SchedulerOptions::page_store): full pages written when a
  // sequence's pages were taken back (and those found already stored), pages read back instead
  // of being computed, and store failures (each cost a recomputation, never output).
  uint64_t swap_out_pages = 0;
  uint64_t swap_out_present = 0;
  uint64_t swap_in_pages = 0;
  uint64_t swap_errors = 0;
  uint64_t swap_out_dropped = 0;  // not queued: the background writer was too far behind
  // Prefetching (SchedulerOptions::prefetch_bytes): of swap_in_pages, those copied from the
  // prefetcher's staging instead of read on the engine thread; pages asked for ahead of need,
  // read and staged, forgotten before use (the sequence got them otherwise, or ended, or swap_in
  // came before the read), and not asked for because staging was full.
  uint64_t swap_in_prefetched = 0;
  uint64_t prefetch_requested = 0;
  uint64_t prefetch_staged = 0;
  uint64_t prefetch_unused = 0;
  uint64_t prefetch_dropped = 0;
  uint64_t kv_page_bytes = 0;  // bytes of one page, to turn page counts into traffic
  double swap_out_seconds = 0;
  double swap_in_seconds = 0;
  uint64_t submitted = 0;
  uint64_t finished = 0;  // sequences that finished, for any reason
  int max_batch_seen = 0;
  std::vector<uint64_t> batch_size_histogram;  // [n] = steps that served n sequences

  // KV pool, as of the last call to Scheduler::stats().
  int kv_pages_total = 0;
  int kv_pages_free = 0;
  int kv_pages_used() const { return kv_pages_total - kv_pages_free; }
  // The most pages in use at once, over the steps: measured when a step's pages are all taken
  // (after planning, before sequences that finish in the step give theirs back).
  int kv_pages_peak = 0;

  // Wall time inside step() (event callbacks excluded), of which inside Backend::forward and
  // inside the samplers. What remains after both is the scheduler's own time: planning, page
  // bookkeeping, stop matching, detokenizing.
  double step_seconds = 0;
  double forward_seconds = 0;
  double sample_seconds = 0;

  double prefix_hit_rate() const {
    return prefix_lookups ? double(prefix_hits) / double(prefix_lookups) : 0;
  }
  double mean_batch_size() const { return steps ? double(sequences_served) / double(steps) : 0; }
  double mean_tokens_per_step() const { return steps ? double(tokens) / double(steps) : 0; }
  // Time in step() not spent in the engine's forward pass, sampling included.
  double overhead_seconds() const { return step_seconds - forward_seconds; }
  double overhead_share() const { return step_seconds > 0 ? overhead_seconds() / step_seconds : 0; }
  // The scheduler's own time: step() minus the forward pass and sampling.
  double scheduler_seconds() const { return step_seconds - forward_seconds - sample_seconds; }
  double scheduler_share() const { return step_seconds > 0 ? scheduler_seconds() / step_seconds : 0; }
};

}  // namespace icam::sched
