// The continuous-batching scheduler (L3): runs many sequences through one Backend, one engine step
// at a time. Every step the policy orders the runnable sequences and the batch is filled from the
// front of that order, under a token budget and a maximum batch size: decodes (one token each) and
// chunks of prompts mix in a single Backend::forward call. Each sequence whose chunk reaches the
// end of its context samples its next token, which goes through its stop matcher to the events.
//
// KV pages. A sequence is admitted to the KV pool when it is first served. Without prefix sharing
// it gets pages for its whole context at once, so its later prefill chunks need none; with it, it
// gets pages for the chunk it feeds and each later chunk takes the pages it needs, so that pages
// another sequence computes meanwhile are attached rather than held twice. A decoding sequence
// takes one more page each time it crosses a page boundary. When the pool cannot supply a sequence
// in the batch:
//   1. pages of paused and blocked sequences are taken first, least recently active first;
//   2. then, for a sequence already admitted, those of admitted sequences behind it in the policy's
//      order, last first (they are "preempted": when re-admitted, their whole context is prefilled
//      again, but for pages still held by others when sharing, and their output is unchanged).
// A sequence not yet admitted never preempts a running one, so admission cannot thrash; when it
// does not fit, no later sequence in the order is admitted in that step either, so a large request
// is not overtaken forever by small ones. A step never fails for lack of pages: a sequence whose
// context needs more pages than the whole pool holds finishes with context_full (and submit()
// refuses a prompt that could never fit).
//
// Prefix sharing (SchedulerOptions::share_prefixes, on by default). Every full KV page a sequence
// has computed is recorded in a prefix index under its page hash (memory/page_hash.h: the model
// identity and every token up to the page's end). Before a sequence prefills, the full pages at
// the front of what it has still to feed are looked up there, and those found are attached (one
// more reference) instead of being computed: a newcomer attaches them before its other pages are
// reserved, and a sequence part-way through its prefill attaches the pages another one
// completed meanwhile. The page holding the last token to feed is always computed, so a sampled
// token always has its logits. Shared pages are full and never written again (a sequence writes
// only past the positions it holds), so no copy-on-write is needed; a shared page goes back to the
// pool when its last holder lets go. The keys and values are the same bytes the sequence would
// have computed (the engine's rows do not depend on the batch), so outputs are unchanged.
//
// Swapping (SchedulerOptions::page_store). Pages taken back are written to the page store by a
// background writer, and read back into the pool when the sequence is admitted again. Those reads
// are started early by a background prefetcher (SchedulerOptions::prefetch_bytes): when a
// sequence without pages becomes runnable again (resume, unblock), when it is among the first
// two in the order still waiting for pages after a step is planned, or when prefetch() is called
// (a blocked process about to be unblocked). Its staged pages are forgotten once it holds them in
// the pool (read back, attached or computed) or when it finishes or is released; the staging
// area's byte bound caps what is held meanwhile. Pages come back with the same bytes either way.
//
// Thread-safety: a Scheduler is driven by one thread, the engine thread, which owns the Backend
// and its KV pool: every method, the events included, runs on it. The daemon owns that thread and
// loops on step() while has_work(); other threads hand it work through their own queue.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/tokenizer/tokenizer.h"
#include "memory/model_identity.h"
#include "memory/page_hash.h"
#include "memory/page_prefetcher.h"
#include "memory/page_store.h"
#include "memory/page_writer.h"
#include "memory/prefix_index.h"
#include "sched/events.h"
#include "sched/policy.h"
#include "sched/scheduler_stats.h"
#include "sched/sequence.h"
#include "sched/step_plan.h"

namespace icam::sched {

struct SchedulerOptions {
  int token_budget = 256;      // tokens fed per step, prefill chunks and decodes together; >= 1
  int max_batch = 64;          // sequences per step; >= 1
  int prefill_chunk = 0;       // most tokens one sequence prefills in a step; 0 = token_budget
  bool share_prefixes = true;  // attach computed full pages instead of prefilling them again
  // Whose pages the prefix index holds. When unset, the identity of the backend's hyper-parameters
  // (memory::config_identity) is used, which is enough as long as pages never leave this pool.
  std::optional<memory::ModelIdentity> model_identity;
  // T1, the page store (memory/page_store.h), for swapping. When set, a sequence whose pages are
  // taken back (preempted, or paused and idle) first has its full pages written there (those not
  // stored already), and a sequence about to compute a full page reads it back from there when
  // it is present (checked: checksum, model, shape), so a preempted context comes back from
  // disk instead of being recomputed, and so do prefixes stored by earlier runs. A page missing or
  // refused is computed; a failing store costs speed, never output. Pages are written by a
  // background thread (memory/page_writer.h), so taking pages back costs the engine a memory
  // copy, not a disk write. Needs model_identity (pages outlive this process); the store must
  // outlive the scheduler.
  memory::PageStore* page_store = nullptr;
  // Prefetching from the page store (memory/page_prefetcher.h), with a page store only: the bytes
  // of pages read ahead and staged in memory at once; 0 turns prefetching off. A sequence without
  // pages gets its stored pages read by a background thread when it becomes runnable again
  // (resume, unblock), when it is among the first two in the policy's order waiting for pages, or
  // when prefetch() is called; swap_in then copies them from memory instead of reading the disk
  // on the engine thread. A page not staged (yet) is read as without prefetching.
  uint64_t prefetch_bytes = 64ull << 20;
};

class Scheduler {
 public:
  // `backend` (with its KV pool) and `tokenizer` must outlive the scheduler; `events` too, unless
  // null (no events). The scheduler owns every page it allocates from the pool and gives them all
  // back when destroyed; other users of the pool see fewer free pages meanwhile.
  static Result<std::unique_ptr<Scheduler>> create(llm::Backend& backend,
                                                   const llm::Tokenizer& tokenizer,
                                                   std::unique_ptr<Policy> policy,
                                                   SchedulerEvents* events,
                                                   const SchedulerOptions& options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a new sequence. Errors (invalid_argument unless said otherwise; nothing is queued): an
  // empty prompt, one of context_length tokens or more, a token id outside the vocabulary, a
  // priority outside [kMinPriority, kMaxPriority], sampling params that fail llm::validate(), or
  // (resource_exhausted) a prompt that needs more pages than the whole KV pool holds.
  Result<SequenceId> submit(SequenceSpec spec);

  // Runs one engine step (see the header comment) and then delivers its events. With nothing
  // runnable it does nothing and returns ok. Sampling failures finish only the sequence concerned
  // (FinishReason::error). If the engine refuses the batch (a bug: batches are validated by
  // construction), every sequence of the batch finishes with FinishReason::error, the error is
  // returned, and the scheduler stays usable.
  Status step();

  // True when a runnable sequence exists, i.e. step() would do work.
  bool has_work() const;

  // Continues a paused sequence (see Continuation). Errors, leaving it paused: it is not paused,
  // an appended token is outside the vocabulary, the context would reach context_length, or it
  // would need more pages than the pool holds; invalid sampling params.
  Status resume(SequenceId id, Continuation next);

  // Takes a runnable sequence out of the run queue (e.g. while its process waits for something
  // else) and puts it back. Nothing else changes: its pages are kept (but may be taken under
  // pressure, as a paused sequence's are) and its output is the same as if never blocked.
  Status block(SequenceId id);
  Status unblock(SequenceId id);

  // Starts reading back from the page store, in the background, the pages a sequence whose pages
  // were taken will need (e.g. a blocked process whose syscall is about to complete), so that
  // admitting it later costs memory copies. Does nothing without a page store or prefetching,
  // for a sequence whose pages are in the pool, or when its pages were requested already since
  // they were last taken. Errors: no such sequence, or it has finished.
  Status prefetch(SequenceId id);
  // Waits until every prefetch asked for so far has been read (or found missing): for tests and
  // benchmarks that want the outcome not to depend on the disk's speed. Returns at once without
  // prefetching.
  void wait_prefetch_idle();

  // Finishes a sequence that has not finished (FinishReason::cancelled, on_finish delivered before
  // returning) and frees its pages. Cancelling a finished sequence is an error.
  Status cancel(SequenceId id);
  // Forgets a sequence in any state and frees everything it holds. No event is delivered.
  Status release(SequenceId id);

  Result<SequenceInfo> info(SequenceId id) const;
  // The sequence's tokens: prompt, then generated and appended tokens in order.
  Result<std::vector<int32_t>> context(SequenceId id) const;
  // Every sequence the scheduler holds a record of (any state), in id order.
  std::vector<SequenceId> sequences() const;

  SchedulerStats stats() const;
  // The step most recently run (empty after an idle step).
  const StepPlan& last_step() const { return plan_; }
  const Policy& policy() const { return *policy_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Entry;
  struct Event;
  using Clock = std::chrono::steady_clock;

  Scheduler(llm::Backend& backend, const llm::Tokenizer& tokenizer, std::unique_ptr<Policy> policy,
            SchedulerEvents* events, const SchedulerOptions& options);

  Entry* find(SequenceId id) const;
  Result<Entry*> find_or_error(SequenceId id, const char* what) const;
  int pages_for(int64_t positions) const;

  void plan_step();
  bool admit(Entry& e, size_t order_index, int chunk, bool& admission_open);
  int attach_shared_prefix(Entry& e);
  // Writes `e`'s full cached pages to the page store (before its pages are taken back).
  void swap_out(Entry& e);
  // Reads into `e`'s own reserved pages the full pages from `cached` on that the page store
  // holds, stopping short of position `limit` (exclusive) and of the last token.
  void swap_in(Entry& e, int64_t limit);
  // Asks the prefetcher for the pages swap_in would read for `e` (not resident), once per time
  // its pages are taken.
  void request_prefetch(Entry& e);
  // Forgets the staged pages `e` no longer needs: all of them, or those below `cached`.
  void drop_prefetched(Entry& e, bool all);
  void index_full_pages(Entry& e, int32_t from_position);
  const memory::PageHash& page_hash_of(Entry& e, size_t page);
  Entry* pick_victim(const Entry& requester, bool requester_admitted, size_t order_index) const;
  void preempt(Entry& e);
  // What follows from the token sampled for `e` (or the sampling error): stops, events, the
  // turn's end.
  void apply_sample(Entry& e, Result<llm::SampleResult>& sampled, Clock::time_point now);
  void end_turn(Entry& e, FinishReason reason, Clock::time_point now);
  void finish(Entry& e, FinishReason reason, Clock::time_point now, std::string error = {});
  void make_runnable(Entry& e, Clock::time_point now);
  void make_idle(Entry& e, Clock::time_point now);
  void deliver_events();

  llm::Backend& backend_;
  llm::KvPool& pool_;
  const llm::Tokenizer& tokenizer_;
  std::unique_ptr<Policy> policy_;
  SchedulerEvents* events_;
  SchedulerOptions options_;
  memory::ModelIdentity identity_;
  memory::PrefixIndex index_;
  std::unique_ptr<memory::PageWriter> writer_;  // when options_.page_store is set
  // When writer_ is set and options_.prefetch_bytes > 0; reads through writer_, so declared
  // after it (destroyed first).
  std::unique_ptr<memory::PagePrefetcher> prefetcher_;

  SequenceId next_id_ = 1;
  std::map<SequenceId, std::unique_ptr<Entry>> entries_;
  SchedulerStats stats_;
  uint64_t step_index_ = 0;

  // Per-step scratch, kept to reuse its memory.
  StepPlan plan_;
  std::vector<SequenceId> order_;
  std::vector<llm::SequenceStep> batch_;
  std::vector<float> logits_;
  std::vector<uint8_t> page_buffer_;  // one page, for swapping
  std::vector<Entry*> sampling_;      // the step's sequences that sample, in batch order
  std::vector<Result<llm::SampleResult>> sampled_;  // ... and what each drew
  std::vector<memory::PageHash> prefetch_hashes_;  // pages asked of or forgotten by prefetcher_

  std::vector<Event> pending_events_;
  bool in_step_ = false;
  bool delivering_ = false;
};

}  // namespace icam::sched
