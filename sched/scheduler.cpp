#include "sched/scheduler.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <optional>
#include <utility>

#include "drivers/llm/sampling/sampler.h"
#include "drivers/llm/sampling/stop_condition.h"
#include "memory/context_pages.h"

namespace icam::sched {
namespace {

constexpr size_t kNotInOrder = std::numeric_limits<size_t>::max();
// How many of the sequences still waiting for pages after a step is planned, from the front of
// the policy's order, get their stored pages prefetched: the next ones to be admitted.
constexpr int kPrefetchAhead = 2;

// Where a sequence is in its life; SequenceState adds the details of the runnable phase.
enum class Phase { runnable, paused, blocked, finished };

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A sequence's sampler (the params checked). The scheduler's events carry logprobs only when the
// params ask for them, so greedy steps leave out the exponential over the vocabulary.
Result<llm::Sampler> make_sampler(const llm::SamplingParams& params) {
  llm::Sampler sampler = ICAM_TRY(llm::Sampler::create(params));
  sampler.set_greedy_logprob(false);
  return sampler;
}

}  // namespace

// The scheduler's record of one sequence. Invariants while it is not finished: `tokens` holds at
// least one token more than `cached` (the last sampled token, and appended or recomputed ones,
// wait to be fed); `table` has no pages (not admitted, or preempted) or pages for at least `cached`
// positions, and admit() extends it before anything is fed: to the whole context, or with prefix
// sharing to the end of the chunk fed. Pages below `cached` may be shared with other sequences;
// pages at or past it are this sequence's own.
struct Scheduler::Entry {
  Entry(SequenceId id_, SequenceSpec&& spec, llm::KvPool& pool, llm::Sampler&& sampler_)
      : id(id_),
        priority(spec.priority),
        stop_at_end_of_generation(spec.stop_at_end_of_generation),
        on_stop(spec.on_stop),
        sampling(std::move(spec.sampling)),
        token_filter(std::move(spec.token_filter)),
        tokens(std::move(spec.prompt)),
        table(pool),
        sampler(std::move(sampler_)),
        stops(sampling) {}

  int32_t pending() const { return static_cast<int32_t>(tokens.size()) - cached; }
  bool resident() const { return !table.pages().empty(); }
  // Fed everything but the token sampled last: the next step is a one-token decode.
  bool decoding() const { return resident() && cached > 0 && pending() == 1; }

  SequenceId id;
  int priority;
  bool stop_at_end_of_generation;
  OnStop on_stop;
  llm::SamplingParams sampling;
  std::shared_ptr<llm::TokenFilter> token_filter;  // may be null
  std::vector<int32_t> tokens;  // prompt, then generated and appended tokens
  int32_t cached = 0;           // positions [0, cached) have their keys and values in `table`
  int32_t high_water = 0;       // the most positions ever cached: below it, feeding recomputes
  memory::ContextPages table;
  std::vector<memory::PageHash> hashes;  // of the first hashes.size() full pages of `tokens`
  // Prefetching: pages asked of the prefetcher since the sequence's pages were last taken, and
  // the pages asked for (indices into `hashes`, ascending) that may still be staged.
  bool prefetch_asked = false;
  std::vector<size_t> prefetched;
  llm::Sampler sampler;
  llm::StopMatcher stops;

  Phase phase = Phase::runnable;
  bool admitted_once = false;
  int turn_tokens = 0;  // sampled in the current turn, against sampling.max_tokens
  std::optional<FinishReason> finish;
  std::string error;

  SequenceStats stats;
  Clock::time_point submitted;
  Clock::time_point last_token;      // or the start of the turn, before its first token
  Clock::time_point phase_since;     // when it last became runnable or idle
  double runnable_seconds = 0;       // closed runnable periods
  uint64_t idle_since_step = 0;      // for choosing which idle sequence loses its pages first
  size_t order_index = kNotInOrder;  // position in the current step's order
};

struct Scheduler::Event {
  enum class Kind { token, pause, finish };
  Kind kind;
  SequenceId id;
  FinishReason reason = FinishReason::max_tokens;
  llm::SampleResult sample;
  std::string text;
};

Result<std::unique_ptr<Scheduler>> Scheduler::create(llm::Backend& backend,
                                                     const llm::Tokenizer& tokenizer,
                                                     std::unique_ptr<Policy> policy,
                                                     SchedulerEvents* events,
                                                     const SchedulerOptions& options) {
  if (!policy) return make_error(Errc::invalid_argument, "scheduler: no policy given");
  if (options.token_budget < 1)
    return make_error(Errc::invalid_argument, "scheduler: token_budget must be at least 1, got ",
                      options.token_budget);
  if (options.max_batch < 1)
    return make_error(Errc::invalid_argument, "scheduler: max_batch must be at least 1, got ",
                      options.max_batch);
  if (options.prefill_chunk < 0)
    return make_error(Errc::invalid_argument,
                      "scheduler: prefill_chunk must be 0 (the token budget) or positive, got ",
                      options.prefill_chunk);
  if (options.page_store && !options.model_identity)
    return make_error(Errc::invalid_argument,
                      "scheduler: a page store needs the model's identity (model_identity)");
  return std::unique_ptr<Scheduler>(
      new Scheduler(backend, tokenizer, std::move(policy), events, options));
}

Scheduler::Scheduler(llm::Backend& backend, const llm::Tokenizer& tokenizer,
                     std::unique_ptr<Policy> policy, SchedulerEvents* events,
                     const SchedulerOptions& options)
    : backend_(backend),
      pool_(backend.kv_pool()),
      tokenizer_(tokenizer),
      policy_(std::move(policy)),
      events_(events),
      options_(options),
      identity_(options.model_identity ? *options.model_identity
                                       : memory::config_identity(backend.config())),
      index_(backend.kv_pool()) {
  if (options_.page_store) {
    writer_ = std::make_unique<memory::PageWriter>(*options_.page_store);
    if (options_.prefetch_bytes > 0)
      prefetcher_ = std::make_unique<memory::PagePrefetcher>(*writer_, options_.prefetch_bytes);
  }
}

Scheduler::~Scheduler() = default;

Scheduler::Entry* Scheduler::find(SequenceId id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.get();
}

Result<Scheduler::Entry*> Scheduler::find_or_error(SequenceId id, const char* what) const {
  Entry* e = find(id);
  if (e == nullptr) return make_error(Errc::not_found, "scheduler: ", what, ": no sequence ", id);
  return e;
}

int Scheduler::pages_for(int64_t positions) const {
  return static_cast<int>((positions + pool_.page_tokens() - 1) / pool_.page_tokens());
}

// ---------------------------------------------------------------------------------------------
// Submitting and changing sequences.

Result<SequenceId> Scheduler::submit(SequenceSpec spec) {
  const llm::ModelConfig& config = backend_.config();
  const int64_t n = static_cast<int64_t>(spec.prompt.size());
  if (n == 0) return make_error(Errc::invalid_argument, "submit: the prompt is empty");
  if (n >= config.context_length)
    return make_error(Errc::invalid_argument, "submit: the prompt has ", n,
                      " tokens, which leaves no room in the model's context of ",
                      config.context_length);
  for (int64_t i = 0; i < n; ++i) {
    if (spec.prompt[i] < 0 || spec.prompt[i] >= config.n_vocab)
      return make_error(Errc::invalid_argument, "submit: prompt token ", i, " (id ", spec.prompt[i],
                        ") is outside the vocabulary of ", config.n_vocab);
  }
  if (spec.priority < kMinPriority || spec.priority > kMaxPriority)
    return make_error(Errc::invalid_argument, "submit: priority ", spec.priority, " is outside [",
                      kMinPriority, ", ", kMaxPriority, "]");
  llm::Sampler sampler = ICAM_TRY_CTX(make_sampler(spec.sampling), "submit");
  if (pages_for(n) > pool_.n_pages())
    return make_error(Errc::resource_exhausted, "submit: the prompt's ", n, " tokens need ",
                      pages_for(n), " KV pages but the pool has only ", pool_.n_pages(), " of ",
                      pool_.page_tokens(), " tokens");

  const SequenceId id = next_id_++;
  const int priority = spec.priority;
  auto entry = std::make_unique<Entry>(id, std::move(spec), pool_, std::move(sampler));
  const Clock::time_point now = Clock::now();
  entry->stats.prompt_tokens = static_cast<int>(n);
  entry->submitted = now;
  entry->last_token = now;
  entry->phase_since = now;
  entries_.emplace(id, std::move(entry));
  policy_->add(id, priority);
  ++stats_.submitted;
  return id;
}

Status Scheduler::resume(SequenceId id, Continuation next) {
  Entry* e = ICAM_TRY(find_or_error(id, "resume"));
  if (e->phase != Phase::paused)
    return make_error(Errc::invalid_argument, "resume: sequence ", id, " is ",
                      sequence_state_name(ICAM_TRY(info(id)).state),
                      "; only a paused sequence can be resumed");
  const llm::ModelConfig& config = backend_.config();
  for (size_t i = 0; i < next.appended.size(); ++i) {
    if (next.appended[i] < 0 || next.appended[i] >= config.n_vocab)
      return make_error(Errc::invalid_argument, "resume: appended token ", i, " (id ",
                        next.appended[i], ") is outside the vocabulary of ", config.n_vocab);
  }
  const int64_t size = static_cast<int64_t>(e->tokens.size() + next.appended.size());
  if (size >= config.context_length)
    return make_error(Errc::invalid_argument, "resume: sequence ", id, " would hold ", size,
                      " tokens, which leaves no room in the model's context of ",
                      config.context_length);
  if (pages_for(size) > pool_.n_pages())
    return make_error(Errc::resource_exhausted, "resume: sequence ", id, " would need ",
                      pages_for(size), " KV pages but the pool has only ", pool_.n_pages());
  std::optional<llm::Sampler> sampler;
  if (next.sampling) sampler.emplace(ICAM_TRY_CTX(make_sampler(*next.sampling), "resume"));

  // Everything is checked; commit.
  e->tokens.insert(e->tokens.end(), next.appended.begin(), next.appended.end());
  e->stats.appended_tokens += static_cast<int>(next.appended.size());
  e->stats.turns += 1;
  if (next.sampling) {
    e->sampling = std::move(*next.sampling);
    e->sampler = std::move(*sampler);
  }
  e->stops = llm::StopMatcher(e->sampling);
  e->turn_tokens = 0;
  e->finish.reset();
  const Clock::time_point now = Clock::now();
  e->last_token = now;
  make_runnable(*e, now);
  request_prefetch(*e);
  return ok_status();
}

Status Scheduler::block(SequenceId id) {
  Entry* e = ICAM_TRY(find_or_error(id, "block"));
  if (e->phase != Phase::runnable)
    return make_error(Errc::invalid_argument, "block: sequence ", id, " is ",
                      sequence_state_name(ICAM_TRY(info(id)).state),
                      "; only a runnable sequence can be blocked");
  e->phase = Phase::blocked;
  make_idle(*e, Clock::now());
  return ok_status();
}

Status Scheduler::unblock(SequenceId id) {
  Entry* e = ICAM_TRY(find_or_error(id, "unblock"));
  if (e->phase != Phase::blocked)
    return make_error(Errc::invalid_argument, "unblock: sequence ", id, " is not blocked");
  make_runnable(*e, Clock::now());
  request_prefetch(*e);
  return ok_status();
}

Status Scheduler::prefetch(SequenceId id) {
  Entry* e = ICAM_TRY(find_or_error(id, "prefetch"));
  if (e->phase == Phase::finished)
    return make_error(Errc::invalid_argument, "prefetch: sequence ", id, " has finished");
  request_prefetch(*e);
  return ok_status();
}

void Scheduler::wait_prefetch_idle() {
  if (prefetcher_) prefetcher_->wait_idle();
}

Status Scheduler::cancel(SequenceId id) {
  Entry* e = ICAM_TRY(find_or_error(id, "cancel"));
  if (e->phase == Phase::finished)
    return make_error(Errc::invalid_argument, "cancel: sequence ", id, " has finished already");
  finish(*e, FinishReason::cancelled, Clock::now());
  deliver_events();
  return ok_status();
}

Status Scheduler::release(SequenceId id) {
  Entry* e = ICAM_TRY(find_or_error(id, "release"));
  if (e->phase == Phase::runnable) policy_->remove(id);
  policy_->forget(id);
  drop_prefetched(*e, true);
  entries_.erase(id);  // the block table gives its pages back
  return ok_status();
}

void Scheduler::make_runnable(Entry& e, Clock::time_point now) {
  e.stats.idle_seconds += seconds_between(e.phase_since, now);
  e.phase = Phase::runnable;
  e.phase_since = now;
  policy_->add(e.id, e.priority);
}

// Leaves the runnable phase for the one already set in e.phase (paused, blocked or finished).
void Scheduler::make_idle(Entry& e, Clock::time_point now) {
  policy_->remove(e.id);
  e.runnable_seconds += seconds_between(e.phase_since, now);
  e.phase_since = now;
  e.idle_since_step = step_index_;
}

void Scheduler::end_turn(Entry& e, FinishReason reason, Clock::time_point now) {
  if (e.on_stop == OnStop::pause && ends_turn_normally(reason)) {
    e.finish = reason;
    e.phase = Phase::paused;
    make_idle(e, now);
    pending_events_.push_back({Event::Kind::pause, e.id, reason, {}, {}});
    return;
  }
  finish(e, reason, now);
}

void Scheduler::finish(Entry& e, FinishReason reason, Clock::time_point now, std::string error) {
  const Phase was = e.phase;
  e.finish = reason;
  e.error = std::move(error);
  e.phase = Phase::finished;
  if (was == Phase::runnable) {
    make_idle(e, now);
  } else {
    e.stats.idle_seconds += seconds_between(e.phase_since, now);
    e.phase_since = now;
  }
  e.table.clear();
  e.cached = 0;
  drop_prefetched(e, true);
  ++stats_.finished;
  pending_events_.push_back({Event::Kind::finish, e.id, reason, {}, {}});
}

// ---------------------------------------------------------------------------------------------
// The step.

bool Scheduler::has_work() const {
  for (const auto& [id, e] : entries_)
    if (e->phase == Phase::runnable) return true;
  return false;
}

Status Scheduler::step() {
  if (delivering_ || in_step_)
    return make_error(Errc::invalid_argument, "scheduler: step() called from an event callback");
  const Clock::time_point t0 = Clock::now();
  in_step_ = true;
  ++step_index_;
  plan_step();
  stats_.kv_pages_peak = std::max(stats_.kv_pages_peak, pool_.n_pages() - pool_.free_pages());
  if (plan_.members.empty()) {
    ++stats_.idle_steps;
    in_step_ = false;
    deliver_events();  // sequences planning finished (context_full)
    return ok_status();
  }

  batch_.clear();
  for (const StepMember& m : plan_.members) {
    const Entry& e = *find(m.id);
    llm::SequenceStep s;
    s.tokens = std::span<const int32_t>(e.tokens).subspan(m.start_pos, m.count);
    s.start_pos = m.start_pos;
    s.pages = e.table.pages();
    s.logits = m.samples ? llm::LogitsWanted::last : llm::LogitsWanted::none;
    batch_.push_back(s);
  }
  const Clock::time_point f0 = Clock::now();
  Status forwarded = backend_.forward(batch_, logits_);
  const Clock::time_point now = Clock::now();
  stats_.forward_seconds += seconds_between(f0, now);
  const int n_vocab = backend_.config().n_vocab;
  const size_t rows = static_cast<size_t>(std::count_if(
      plan_.members.begin(), plan_.members.end(), [](const StepMember& m) { return m.samples; }));
  if (forwarded.ok() && logits_.size() != rows * n_vocab)
    forwarded = make_error(Errc::internal, "the backend returned ", logits_.size(), " logits for ",
                           rows, " rows of ", n_vocab);

  if (!forwarded.ok()) {
    // Nothing was written (the backend validates first). Finish the batch rather than retry it
    // forever; the error says why.
    const std::string message = "engine step failed: " + forwarded.error().message();
    for (const StepMember& m : plan_.members)
      finish(*find(m.id), FinishReason::error, now, message);
    stats_.step_seconds += seconds_between(t0, Clock::now());
    in_step_ = false;
    deliver_events();
    return std::move(forwarded).error().with_context("scheduler");
  }

  for (const StepMember& m : plan_.members) {
    Entry& e = *find(m.id);
    e.cached += m.count;
    if (options_.share_prefixes) index_full_pages(e, m.start_pos);
    e.stats.recomputed_tokens += m.recomputed;
    e.high_water = std::max(e.high_water, e.cached);
    policy_->charge(m.id, m.count);
  }
  // Sampling: each sequence's sampler, history and token filter are its own, so the sequences
  // of the step are sampled in parallel on the backend's threads (idle between steps); what
  // follows from each token (stops, events, turn ends) is then applied in batch order, as if
  // sampled one after another.
  sampling_.clear();
  for (const StepMember& m : plan_.members)
    if (m.samples) sampling_.push_back(find(m.id));
  sampled_.assign(sampling_.size(), Result<llm::SampleResult>(make_error(Errc::internal, "")));
  const Clock::time_point s0 = Clock::now();
  backend_.parallel_for_each(sampling_.size(), [&](size_t i) {
    Entry& e = *sampling_[i];
    std::span<const float> logits(logits_.data() + i * n_vocab, n_vocab);
    sampled_[i] = e.sampler.sample(logits, e.tokens, e.token_filter.get());
    if (sampled_[i].ok() && e.token_filter) e.token_filter->accept(sampled_[i]->token);
  });
  stats_.sample_seconds += seconds_between(s0, Clock::now());
  for (size_t i = 0; i < sampling_.size(); ++i) apply_sample(*sampling_[i], sampled_[i], now);
  policy_->end_step();

  const Clock::time_point t1 = Clock::now();
  const double step_seconds = seconds_between(t0, t1);
  for (const StepMember& m : plan_.members) find(m.id)->stats.running_seconds += step_seconds;
  const int size = static_cast<int>(plan_.members.size());
  ++stats_.steps;
  stats_.sequences_served += size;
  stats_.max_batch_seen = std::max(stats_.max_batch_seen, size);
  if (stats_.batch_size_histogram.size() <= static_cast<size_t>(size))
    stats_.batch_size_histogram.resize(size + 1, 0);
  ++stats_.batch_size_histogram[size];
  stats_.tokens += plan_.tokens;
  for (const StepMember& m : plan_.members) {
    if (m.kind == StepKind::decode)
      stats_.decode_tokens += m.count;
    else
      stats_.prefill_tokens += m.count;
    stats_.recomputed_tokens += m.recomputed;
  }
  if (plan_.mixed()) ++stats_.mixed_steps;
  stats_.step_seconds += step_seconds;
  in_step_ = false;
  deliver_events();
  return ok_status();
}

void Scheduler::plan_step() {
  plan_.clear();
  policy_->order(order_);
  for (auto& [id, e] : entries_) e->order_index = kNotInOrder;
  for (size_t i = 0; i < order_.size(); ++i) find(order_[i])->order_index = i;

  // Decodes among the sequences that could fill the batch get their token ahead of prefills.
  int decodes = 0;
  const size_t front = std::min(order_.size(), static_cast<size_t>(options_.max_batch));
  for (size_t i = 0; i < front; ++i)
    if (find(order_[i])->decoding()) ++decodes;
  TokenBudget budget(options_.token_budget, decodes);
  const int chunk_cap = options_.prefill_chunk > 0 ? options_.prefill_chunk : options_.token_budget;

  bool admission_open = true;
  for (size_t i = 0; i < order_.size(); ++i) {
    if (static_cast<int>(plan_.members.size()) >= options_.max_batch || budget.left() == 0) break;
    Entry& e = *find(order_[i]);
    if (e.phase != Phase::runnable) continue;  // finished while planning (context_full)
    const StepKind kind = e.decoding() ? StepKind::decode : StepKind::prefill;
    int n = budget.take(kind, e.pending(), chunk_cap);
    if (n == 0) continue;
    if (!admit(e, i, n, admission_open)) {
      budget.give_back(n);
      continue;
    }
    // Shared pages attached and pages swapped in by admit() leave less to feed, and what is fed
    // must stay within the pages reserved.
    const int fits = std::min<int>(
        e.pending(), static_cast<int>(e.table.size()) * pool_.page_tokens() - e.cached);
    if (n > fits) {
      budget.give_back(n - fits);
      n = fits;
    }
    StepMember m;
    m.id = e.id;
    m.kind = kind;
    m.start_pos = e.cached;
    m.count = n;
    m.samples = e.cached + n == static_cast<int32_t>(e.tokens.size());
    m.recomputed = std::max(0, std::min(e.cached + n, e.high_water) - e.cached);
    plan_.members.push_back(m);
    plan_.tokens += n;
    if (kind == StepKind::decode)
      ++plan_.decode_members;
    else
      ++plan_.prefill_members;
  }

  // The first sequences left waiting for pages are the next to be admitted: their stored pages
  // are read meanwhile, while this step runs.
  if (prefetcher_) {
    int waiting = 0;
    for (size_t i = 0; i < order_.size() && waiting < kPrefetchAhead; ++i) {
      Entry& e = *find(order_[i]);
      if (e.phase != Phase::runnable || e.resident()) continue;
      request_prefetch(e);
      ++waiting;
    }
  }
}

// Makes sure `e` (at `order_index` in this step's order) has pages for what it feeds this step
// (`chunk` tokens from `cached`; without prefix sharing, for its whole context), taking them from
// others as the header comment describes. False: it cannot join this step.
bool Scheduler::admit(Entry& e, size_t order_index, int chunk, bool& admission_open) {
  const int64_t positions = static_cast<int64_t>(e.tokens.size());
  if (pages_for(positions) > pool_.n_pages()) {
    // submit() and resume() refuse such contexts and sample() finishes a sequence before it gets
    // there, so this is only a safety net: never fail the step for it.
    finish(e, FinishReason::context_full, Clock::now());
    return false;
  }
  drop_prefetched(e, false);  // pages computed in the last step
  const bool was_resident = e.resident();
  if (!was_resident && !admission_open) return false;
  // Pages computed by others first: a newcomer then reserves only the rest. The attached pages
  // hold a reference, so no preemption below can free them.
  const int attached = options_.share_prefixes ? attach_shared_prefix(e) : 0;
  // With sharing, pages past this chunk are not reserved yet: another sequence may compute them
  // first, and reserving them now would hold a private copy of pages about to be shared.
  const int64_t upto =
      options_.share_prefixes ? std::min<int64_t>(e.cached + chunk, positions) : positions;
  const int missing = pages_for(upto) - static_cast<int>(e.table.pages().size());
  if (missing <= 0) {
    drop_prefetched(e, false);  // pages attached
    return true;
  }
  while (pool_.free_pages() < missing) {
    Entry* victim = pick_victim(e, was_resident, order_index);
    if (victim == nullptr) break;
    preempt(*victim);
  }
  if (pool_.free_pages() < missing) {
    if (!was_resident) {
      // Not admitted after all: give the attached pages back (they stay with their holders).
      if (attached > 0) {
        e.table.clear();
        e.cached = 0;
        e.stats.shared_tokens -= attached * pool_.page_tokens();
        stats_.shared_tokens -= static_cast<uint64_t>(attached) * pool_.page_tokens();
        stats_.prefix_hits -= static_cast<uint64_t>(attached);
      }
      // A newcomer that does not fit keeps the later ones out too, so pages freed by finishing
      // sequences go to it first.
      admission_open = false;
    }
    return false;
  }
  Status reserved = e.table.reserve(upto);
  assert(reserved.ok());  // enough pages are free
  if (!reserved.ok()) return false;
  e.admitted_once = true;
  // Pages the store holds are read back rather than computed; at least one position of what was
  // reserved is left to feed, so the step still serves this sequence.
  if (options_.page_store) swap_in(e, upto);
  drop_prefetched(e, false);  // pages attached or read back
  return true;
}

// The hash of `e`'s full page `page`, computed once.
const memory::PageHash& Scheduler::page_hash_of(Entry& e, size_t page) {
  const int pt = pool_.page_tokens();
  while (e.hashes.size() <= page) {
    const size_t i = e.hashes.size();
    const memory::PageHash& parent = i == 0 ? memory::kRootPageHash : e.hashes[i - 1];
    e.hashes.push_back(memory::page_hash(
        parent, std::span<const int32_t>(e.tokens).subspan(i * pt, pt), identity_));
  }
  return e.hashes[page];
}

// Attaches, from the prefix index, the pages that hold exactly what `e` would compute next: full
// pages from `cached` on, short of the page of its last token (fed to get logits). A newcomer's
// empty table grows; an admitted sequence's reserved, unwritten pages are replaced. Returns the
// pages attached.
int Scheduler::attach_shared_prefix(Entry& e) {
  const int pt = pool_.page_tokens();
  const int64_t last = static_cast<int64_t>(e.tokens.size()) - 1;  // must be fed
  int attached = 0;
  while (e.cached % pt == 0 && e.cached + pt <= last) {
    const size_t page = static_cast<size_t>(e.cached / pt);
    if (page > e.table.size()) break;  // cannot happen: the table covers [0, cached)
    ++stats_.prefix_lookups;
    const int32_t shared = index_.find(page_hash_of(e, page));
    if (shared < 0) break;
    if (page < e.table.size())
      e.table.replace(page, shared);
    else
      e.table.append_shared(shared);
    e.cached += pt;
    e.stats.shared_tokens += pt;
    stats_.shared_tokens += static_cast<uint64_t>(pt);
    ++stats_.prefix_hits;
    ++attached;
  }
  return attached;
}

void Scheduler::swap_out(Entry& e) {
  const Clock::time_point start = Clock::now();
  const int pt = pool_.page_tokens();
  const memory::PageShape shape = memory::PageShape::of(pool_);
  page_buffer_.resize(pool_.page_bytes());
  for (int32_t page = 0; (page + 1) * pt <= e.cached; ++page) {
    const memory::PageHash& hash = page_hash_of(e, static_cast<size_t>(page));
    Result<bool> present = writer_->contains(hash);
    if (present.ok() && *present) {
      ++stats_.swap_out_present;
      continue;
    }
    Status st = present.ok() ? pool_.read_page(e.table.pages()[page], page_buffer_)
                             : Status(std::move(present).error());
    if (!st.ok()) {  // the rest is recomputed when the sequence comes back
      ++stats_.swap_errors;
      break;
    }
    if (!writer_->put(hash, identity_, shape, page_buffer_)) {
      ++stats_.swap_out_dropped;  // the writer is behind: recomputed if ever needed
      break;
    }
    ++stats_.swap_out_pages;
  }
  stats_.swap_out_seconds += seconds_between(start, Clock::now());
}

void Scheduler::swap_in(Entry& e, int64_t limit) {
  const int pt = pool_.page_tokens();
  const int64_t last = static_cast<int64_t>(e.tokens.size()) - 1;  // must be fed
  if (e.cached % pt != 0 || e.cached + pt > std::min(last, limit - 1)) return;
  const Clock::time_point start = Clock::now();
  const memory::PageShape shape = memory::PageShape::of(pool_);
  page_buffer_.resize(pool_.page_bytes());
  // Pages from `cached` on are this sequence's own and hold nothing yet, so they can be filled.
  while (e.cached % pt == 0 && e.cached + pt <= std::min(last, limit - 1)) {
    const size_t page = static_cast<size_t>(e.cached / pt);
    if (page >= e.table.size()) break;
    const memory::PageHash& hash = page_hash_of(e, page);
    // Staged by the prefetcher: a memory copy. Otherwise (not asked for, not read yet, missing,
    // refused) the engine thread reads it, and meets the same errors the prefetcher met.
    const bool staged =
        prefetcher_ && prefetcher_->take(hash, identity_, shape, page_buffer_).ok();
    Status got = staged ? ok_status() : writer_->get(hash, identity_, shape, page_buffer_);
    if (got.ok()) got = pool_.write_page(e.table.pages()[page], page_buffer_);
    if (!got.ok()) {
      if (got.error().code() != Errc::not_found) ++stats_.swap_errors;
      break;
    }
    index_.insert(hash, e.table.pages()[page]);
    e.cached += pt;
    e.high_water = std::max(e.high_water, e.cached);
    ++stats_.swap_in_pages;
    if (staged) ++stats_.swap_in_prefetched;
  }
  stats_.swap_in_seconds += seconds_between(start, Clock::now());
}

void Scheduler::request_prefetch(Entry& e) {
  if (!prefetcher_ || e.resident() || e.prefetch_asked || e.phase == Phase::finished) return;
  e.prefetch_asked = true;
  const int pt = pool_.page_tokens();
  const int64_t last = static_cast<int64_t>(e.tokens.size()) - 1;  // must be fed: never read
  size_t page = 0;  // not resident: its context starts at 0
  // Pages other sequences hold now will be attached rather than read.
  if (options_.share_prefixes)
    while (static_cast<int64_t>(page + 1) * pt <= last && index_.find(page_hash_of(e, page)) >= 0)
      ++page;
  prefetch_hashes_.clear();
  for (; static_cast<int64_t>(page + 1) * pt <= last; ++page) {
    prefetch_hashes_.push_back(page_hash_of(e, page));
    e.prefetched.push_back(page);
  }
  if (prefetch_hashes_.empty()) return;
  // Pages still listed from an earlier request are asked again: the prefetcher skips them.
  std::sort(e.prefetched.begin(), e.prefetched.end());
  e.prefetched.erase(std::unique(e.prefetched.begin(), e.prefetched.end()), e.prefetched.end());
  prefetcher_->request(prefetch_hashes_, identity_, memory::PageShape::of(pool_));
}

void Scheduler::drop_prefetched(Entry& e, bool all) {
  if (!prefetcher_ || e.prefetched.empty()) return;
  const size_t below = all ? std::numeric_limits<size_t>::max()
                           : static_cast<size_t>(e.cached / pool_.page_tokens());
  if (e.prefetched.front() >= below) return;
  prefetch_hashes_.clear();
  size_t kept = 0;
  for (size_t page : e.prefetched) {
    if (page < below)
      prefetch_hashes_.push_back(e.hashes[page]);
    else
      e.prefetched[kept++] = page;
  }
  e.prefetched.resize(kept);
  prefetcher_->forget(prefetch_hashes_);
}

// Records in the prefix index the pages of `e` that this step completed (it fed from
// `from_position` to `cached`).
void Scheduler::index_full_pages(Entry& e, int32_t from_position) {
  const int pt = pool_.page_tokens();
  for (int32_t page = from_position / pt; (page + 1) * pt <= e.cached; ++page)
    index_.insert(page_hash_of(e, static_cast<size_t>(page)), e.table.pages()[page]);
}

Scheduler::Entry* Scheduler::pick_victim(const Entry& requester, bool requester_admitted,
                                         size_t order_index) const {
  // Idle sequences first, the one idle longest first (ties: the older id).
  Entry* best = nullptr;
  for (const auto& [id, e] : entries_) {
    if (e.get() == &requester || !e->resident()) continue;
    if (e->phase != Phase::paused && e->phase != Phase::blocked) continue;
    if (best == nullptr || e->idle_since_step < best->idle_since_step) best = e.get();
  }
  if (best != nullptr || !requester_admitted) return best;
  // Then running sequences behind the requester in the order, the last first.
  for (const auto& [id, e] : entries_) {
    if (e->phase != Phase::runnable || !e->resident() || e->order_index == kNotInOrder) continue;
    if (e->order_index <= order_index) continue;
    if (best == nullptr || e->order_index > best->order_index) best = e.get();
  }
  return best;
}

void Scheduler::preempt(Entry& e) {
  if (options_.page_store) swap_out(e);
  e.table.clear();
  e.cached = 0;
  e.prefetch_asked = false;  // its pages may be asked for again, now that more are stored
  e.stats.preemptions += 1;
  ++stats_.preemptions;
  ++plan_.preemptions;
}

void Scheduler::apply_sample(Entry& e, Result<llm::SampleResult>& sampled, Clock::time_point now) {
  if (!sampled.ok()) {
    finish(e, FinishReason::error, now, "sampling failed: " + sampled.error().message());
    return;
  }
  const int32_t token = sampled->token;
  e.tokens.push_back(token);
  e.turn_tokens += 1;
  e.stats.generated_tokens += 1;
  ++stats_.sampled_tokens;
  e.stats.token_latencies.push_back(seconds_between(e.last_token, now));
  if (e.stats.time_to_first_token < 0)
    e.stats.time_to_first_token = seconds_between(e.submitted, now);
  e.last_token = now;

  // The same checks, in the same order, as llm::generate(), so that a sequence ends for the
  // same reason as it would alone.
  const bool end_of_generation =
      e.stop_at_end_of_generation && tokenizer_.is_end_of_generation(token);
  const std::string piece = end_of_generation ? std::string() : tokenizer_.token_piece(token);
  llm::StopResult stop = e.stops.feed(token, piece);
  std::string text = std::move(stop.text_to_emit);
  std::optional<FinishReason> reason;
  const int64_t size = static_cast<int64_t>(e.tokens.size());
  if (stop.stopped) {
    reason = stop.reason == llm::StopReason::token ? FinishReason::stop_token
                                                   : FinishReason::stop_string;
  } else if (end_of_generation) {
    reason = FinishReason::end_of_generation;
  } else if (size > backend_.config().context_length || pages_for(size) > pool_.n_pages()) {
    // The new token has no position left to be fed at (in the model, or in the whole pool).
    reason = FinishReason::context_full;
  } else if (e.turn_tokens >= e.sampling.max_tokens) {
    reason = FinishReason::max_tokens;
  }
  if (reason && !stop.stopped) text += e.stops.flush();
  pending_events_.push_back({Event::Kind::token, e.id, FinishReason::max_tokens,
                             std::move(sampled).value(), std::move(text)});
  if (reason) end_turn(e, *reason, now);
}

void Scheduler::deliver_events() {
  // A callback may cause more events (cancel); they join the queue and this loop delivers them.
  if (delivering_) return;
  delivering_ = true;
  while (!pending_events_.empty()) {
    std::vector<Event> events = std::move(pending_events_);
    pending_events_.clear();
    if (events_ == nullptr) continue;
    for (const Event& ev : events) {
      switch (ev.kind) {
        case Event::Kind::token:
          events_->on_token(ev.id, ev.sample, ev.text);
          break;
        case Event::Kind::pause:
          events_->on_pause(ev.id, ev.reason);
          break;
        case Event::Kind::finish:
          events_->on_finish(ev.id, ev.reason);
          break;
      }
    }
  }
  delivering_ = false;
}

// ---------------------------------------------------------------------------------------------
// Queries.

Result<SequenceInfo> Scheduler::info(SequenceId id) const {
  const Entry* e = ICAM_TRY(find_or_error(id, "info"));
  SequenceInfo out;
  switch (e->phase) {
    case Phase::finished:
      out.state = SequenceState::finished;
      break;
    case Phase::paused:
      out.state = SequenceState::paused;
      break;
    case Phase::blocked:
      out.state = SequenceState::blocked;
      break;
    case Phase::runnable:
      if (!e->resident())
        out.state = e->admitted_once ? SequenceState::preempted : SequenceState::waiting;
      else
        out.state = e->decoding() ? SequenceState::decoding : SequenceState::prefilling;
      break;
  }
  out.finish = e->finish;
  out.error = e->error;
  out.priority = e->priority;
  out.context_tokens = static_cast<int>(e->tokens.size());
  out.cached_tokens = e->cached;
  out.kv_pages = static_cast<int>(e->table.pages().size());
  out.stats = e->stats;
  double runnable = e->runnable_seconds;
  if (e->phase == Phase::runnable)
    runnable += seconds_between(e->phase_since, Clock::now());
  else if (e->phase != Phase::finished)
    out.stats.idle_seconds += seconds_between(e->phase_since, Clock::now());
  out.stats.waiting_seconds = std::max(0.0, runnable - e->stats.running_seconds);
  return out;
}

Result<std::vector<int32_t>> Scheduler::context(SequenceId id) const {
  const Entry* e = ICAM_TRY(find_or_error(id, "context"));
  return e->tokens;
}

std::vector<SequenceId> Scheduler::sequences() const {
  std::vector<SequenceId> ids;
  for (const auto& [id, e] : entries_) ids.push_back(id);
  return ids;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats out = stats_;
  out.kv_pages_total = pool_.n_pages();
  out.kv_page_bytes = pool_.page_bytes();
  if (writer_) out.swap_errors += writer_->stats().failed;
  if (prefetcher_) {
    const memory::PagePrefetcherStats p = prefetcher_->stats();
    out.prefetch_requested = p.requested;
    out.prefetch_staged = p.staged;
    out.prefetch_unused = p.unused;
    out.prefetch_dropped = p.dropped;
  }
  out.kv_pages_free = pool_.free_pages();
  return out;
}

}  // namespace icam::sched
