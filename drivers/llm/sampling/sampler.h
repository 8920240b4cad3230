// Chooses the next token from a vector of logits.
//
// Pipeline for one step, in this order:
//   1. NaN logits count as -inf: the token can never be chosen.
//   2. Penalties over the last `repetition_window` tokens of the history (all of it when 0):
//      repetition penalty in llama.cpp's convention (a positive logit is divided by the penalty, a
//      negative one multiplied), then `count * frequency_penalty + presence_penalty` is subtracted
//      from every token seen `count > 0` times. The repetition and presence terms apply once per
//      token however often it occurs. A finite logit stays finite (clamped to float's range).
//   3. If any logit is +inf, the +inf tokens share all the probability mass equally (the limit of
//      softmax): they become 0 and every other token -inf. If no logit is finite or +inf, sample()
//      fails.
//   4. temperature == 0: greedy, the largest logit; ties go to the lowest token id. No random
//      number is drawn.
//   5. temperature > 0: top-k, then top-p, then min-p, then temperature, then one draw.
//      The filters choose the set of plausible tokens from the model's own (penalised) distribution
//      and temperature only reshapes the probabilities inside that set. Applying temperature last
//      means a high temperature cannot drag junk tokens into the nucleus (as it would if top-p ran
//      on the flattened distribution), and min-p's threshold stays relative to what the model
//      actually believes; llama.cpp's default chain uses the same order. Top-p's p is a share of
//      the mass top-k left (renormalised); min-p is relative to the best token, which always
//      survives. Candidates are ordered by (logit descending, id ascending), a strict order, so
//      top-k and top-p keep exactly defined sets even with ties.
//
// Logprobs describe the penalised distribution over the whole vocabulary, scaled by the temperature
// (temperature 1 for greedy), before top-k/top-p/min-p: the truncation filters decide what can be
// drawn, not what the model believed. top_logprobs lists the best `params.logprobs` tokens of that
// distribution, most likely first (ties: lower id first); tokens with probability 0 (-inf logit)
// are never listed, so the list can be shorter.
//
// Reproducibility: the generator is xoshiro256** seeded by splitmix64 from params.seed, and the
// uniform variate is built from its bits here (no std::*_distribution), so the same seed, logits
// and history give the same tokens on every run. Each temperature > 0 step consumes exactly one
// 64-bit draw; greedy steps consume none. Exponentials use our own polynomial (the C library only
// takes a few logarithms), sums run in a fixed order, and the draw walks the kept tokens in id
// order, so the token does not depend on the C library or on how std::nth_element arranges
// elements. (The only order-dependent sums are top-p's running masses, where a difference is a
// rounding error exactly at the cut.)
//
// Cost per step is O(vocab + window): one exponential per token (two with top-p at a temperature
// other than 1); top-k and top-p group tokens into bands by distance from the best logit and
// resolve only the band where the cut falls, by selection with std::nth_element; top logprobs
// keep a small sorted list. Nothing sorts the vocabulary. Buffers live in the Sampler and are
// reused.
//
// Thread safety: a Sampler is owned by one sequence and used by one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/result.h"
#include "drivers/llm/sampling/sampling_params.h"
#include "drivers/llm/sampling/token_filter.h"

namespace icam::llm {

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;  // log-probability of `token`, see the header comment
  std::vector<std::pair<int32_t, float>> top_logprobs;  // (token, logprob), most likely first
};

class Sampler {
 public:
  // Precondition: validate(params) succeeded (asserted in debug builds). Use create() for params
  // that have not been checked.
  explicit Sampler(SamplingParams params);
  static Result<Sampler> create(SamplingParams params);

  // Picks one token from `logits` (one float per token id; the vocabulary size is logits.size()).
  // `history` holds the tokens of the sequence so far (prompt and generated), oldest first; the
  // penalties look at its last repetition_window entries. Neither span is modified or kept.
  // Errors (invalid_argument; the generator does not advance): empty logits, more than
  // INT32_MAX logits, a token id in the penalty window outside [0, logits.size()), no logit that
  // is finite or +inf.
  //
  // `filter`, when given and active, restricts the choice to the tokens it allows
  // (token_filter.h): the usual choice is kept when allowed; otherwise every refused token's
  // logit becomes -inf and the choice is made again (another draw when temperature > 0), so
  // logprobs then describe the restricted distribution. invalid_argument when it allows no
  // token that has a finite logit.
  Result<SampleResult> sample(std::span<const float> logits, std::span<const int32_t> history,
                              const TokenFilter* filter = nullptr);

  const SamplingParams& params() const { return params_; }

  // Whether a greedy step computes SampleResult::logprob, which takes one exponential per
  // vocabulary entry (most of a greedy step's time over a large vocabulary). On by default. Off,
  // a greedy step's logprob is NaN unless params().logprobs > 0 (its top logprobs need the same
  // sum). Steps at temperature > 0 always compute it: the draw needs that sum anyway. The
  // scheduler turns it off: its events carry logprobs only when the params ask for them.
  void set_greedy_logprob(bool on) { greedy_logprob_ = on; }

 private:
  struct Candidate {
    int32_t id;
    float logit;  // penalised, before temperature
    float mass;   // what keep_prefix() counts: 1 for top-k, exp(logit - max_logit) for top-p
  };

  // Steps 4 and 5 over work_, whose largest logit is `max_logit`.
  SampleResult choose(float max_logit);
  // Fills work_ (steps 1 to 3) and returns the largest logit, which is finite.
  Result<float> prepare_logits(std::span<const float> logits, std::span<const int32_t> history);
  void apply_penalties(std::span<const int32_t> window);
  // Fills cand_ with a superset of the tokens the first active filter keeps. When top-p is the
  // first filter, `unit` holds exp(logit - max_logit) by token id and unit_total its sum.
  void gather_candidates(float max_logit, const std::vector<float>& unit, double unit_total);
  std::vector<std::pair<int32_t, float>> top_logprobs(int n, float max_logit, float inv_temperature,
                                                      double log_sum) const;
  void keep_top_k(std::size_t k, float max_logit);
  // total: the mass p is a share of, or < 0 for the mass of cand_ itself.
  void keep_top_p(float p, float max_logit, double total);
  void keep_prefix(double target, float max_logit);
  void keep_min_p(float min_p, float max_logit);
  void drop_filtered();   // zeroes weight_ for every token not in cand_
  int32_t draw();         // walks weight_ in id order
  double next_uniform();  // in [0, 1), 53 random bits

  SamplingParams params_;
  uint64_t rng_[4];  // xoshiro256** state
  bool greedy_logprob_ = true;

  // Reused across calls; sized to the vocabulary on first use.
  std::vector<float> work_;       // sanitised, penalised logits indexed by token id
  std::vector<float> weight_;     // exp((logit - max) / T) by token id; 0 = cannot be drawn
  std::vector<float> unit_;       // exp(logit - max) by token id, for top-p when T != 1
  std::vector<Candidate> cand_;   // tokens still in the running, in no particular order
  std::vector<uint32_t> counts_;  // occurrences per token id in the penalty window; all zero
                                  // between calls
  std::vector<int32_t> seen_;     // distinct tokens of the window (to reset counts_)
  std::vector<uint8_t> keep_;     // scratch mask by token id for drop_filtered()
  std::vector<uint8_t> allowed_;  // scratch: the filter's allowed tokens
};

}  // namespace icam::llm
