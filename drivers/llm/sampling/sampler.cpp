#include "drivers/llm/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace icam::llm {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kFloatMax = std::numeric_limits<float>::max();

// Vocabulary-wide loops work in blocks of kBlock tokens with kLanes interleaved float
// accumulators: the compiler can vectorise that without reassociating anything, so sums are fast
// and come out the same on every run; block totals are added in double for accuracy.
constexpr std::size_t kBlock = 64;
constexpr std::size_t kLanes = 8;

// The candidate order: higher logit first, lower id first among equal logits. Strict and total,
// so every selection below keeps a set that does not depend on the standard library.
constexpr auto better = [](const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

// exp(x) for x <= 0 (and -inf), within about 2 ulp; exactly 0 below -87 and exactly 1 at 0.
// Cephes' expf scheme: x = n ln2 + r with |r| <= ln2/2, exp(r) by a polynomial, 2^n built from
// the exponent bits. No library call and no floating-point comparison (which GCC will not turn
// into a vector select under its default -ftrapping-math), so loops over it vectorise, and every
// platform gets the same bits.
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t in_range = 0u - static_cast<uint32_t>((bits & 0x7FFFFFFFu) <= 0x42AE0000u);
  x = std::bit_cast<float>(bits & in_range);  // |x| <= 87 (0x42AE0000 is 87.0f), else 0
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;  // ln2 = 0.693359375 - 2.12194440e-4, in two parts for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const float scale =
      std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);  // n in [-126, 0]
  return std::bit_cast<float>(std::bit_cast<uint32_t>(p * scale) & in_range);
}

// The vocabulary-wide loops below run once per sampled token over 262,144 logits for the default
// model; built twice, for AVX2 and for any x86-64, and picked at load time (what they call is
// always inlined, so each clone compiles it for its own target instead of calling baseline code
// per element). AVX2 alone (no FMA, so no contraction) computes every float operation exactly
// as the baseline does: the same bits.
#if defined(__x86_64__) && !defined(__clang_analyzer__)
#define ICAM_VOCAB_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define ICAM_VOCAB_LOOP
#endif

[[gnu::always_inline]] inline float block_sum(const float* values, std::size_t count) {
  float lane[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) lane[j] += values[i + j];
  }
  for (; i < count; ++i) lane[i % kLanes] += values[i];
  float sum = 0.0f;
  for (float v : lane) sum += v;
  return sum;
}

// Sum over the vocabulary of exp((logit - max_logit) * inv_temperature); also stores each term in
// `out` when it is not null.
ICAM_VOCAB_LOOP
double exp_sum(const std::vector<float>& logits, float max_logit, float inv_temperature,
               float* out) {
  double total = 0.0;
  float scratch[kBlock];
  for (std::size_t begin = 0; begin < logits.size(); begin += kBlock) {
    const std::size_t count = std::min(kBlock, logits.size() - begin);
    float* dst = out ? out + begin : scratch;
    for (std::size_t i = 0; i < count; ++i) {
      dst[i] = exp_nonpositive((logits[begin + i] - max_logit) * inv_temperature);
    }
    total += block_sum(dst, count);
  }
  return total;
}

#if defined(__SSE2__)
// The largest of four lanes.
float lanes_max(__m128 v) {
  float lanes[4];
  _mm_storeu_ps(lanes, v);
  return std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
}
#endif

// The largest of `values`, none of them NaN.
float max_value(const std::vector<float>& values) {
  const std::size_t n = values.size();
  std::size_t i = 0;
  float best = -kInf;
#if defined(__SSE2__)
  __m128 best4 = _mm_set1_ps(-kInf);
  for (; i + 4 <= n; i += 4) best4 = _mm_max_ps(best4, _mm_loadu_ps(values.data() + i));
  best = lanes_max(best4);
#endif
  for (; i < n; ++i) best = std::max(best, values[i]);
  return best;
}

// work[i] = logits[i], NaN as -inf; returns the largest.
float copy_not_nan_max(const float* logits, float* work, std::size_t n) {
  std::size_t i = 0;
  float best = -kInf;
#if defined(__SSE2__)
  // Four at a time (SSE2 is in every x86-64): one pass instead of a copy and a maximum.
  const __m128 minus_inf = _mm_set1_ps(-kInf);
  __m128 best4 = minus_inf;
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(logits + i);
    const __m128 ordered = _mm_cmpord_ps(v, v);
    const __m128 w = _mm_or_ps(_mm_and_ps(ordered, v), _mm_andnot_ps(ordered, minus_inf));
    _mm_storeu_ps(work + i, w);
    best4 = _mm_max_ps(best4, w);
  }
  best = lanes_max(best4);
#endif
  for (; i < n; ++i) {
    work[i] = std::isnan(logits[i]) ? -kInf : logits[i];
    best = std::max(best, work[i]);
  }
  return best;
}

// The first index of `target` in `values` (values.size() if none), `target` not NaN.
std::size_t first_index_of(const std::vector<float>& values, float target) {
  const std::size_t n = values.size();
  std::size_t i = 0;
#if defined(__SSE2__)
  // Sixteen at a time until a block holds it (std::find goes element by element).
  const __m128 t = _mm_set1_ps(target);
  const float* v = values.data();
  for (; i + 16 <= n; i += 16) {
    const __m128 hits = _mm_or_ps(
        _mm_or_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i), t), _mm_cmpeq_ps(_mm_loadu_ps(v + i + 4), t)),
        _mm_or_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i + 8), t),
                  _mm_cmpeq_ps(_mm_loadu_ps(v + i + 12), t)));
    if (_mm_movemask_ps(hits) != 0) break;
  }
#endif
  for (; i < n; ++i)
    if (values[i] == target) return i;
  return n;
}

// Tokens are grouped into bands by how far their logit lies below the best one, kBandsPerNat
// bands per unit of logit; the last band takes everything further down (a probability ratio below
// e^-32). Bands are ordered like candidates, so a cut in candidate order falls inside one band.
constexpr int kBands = 128;
constexpr float kBandsPerNat = 4.0f;

int band_of(float logit, float max_logit) {
  return static_cast<int>(std::min((max_logit - logit) * kBandsPerNat, kBands - 1.0f));
}

// The first band at which the running sum of `per_band` reaches `target`, or the last band.
int first_band_reaching(const double (&per_band)[kBands], double target) {
  double sum = 0.0;
  for (int band = 0; band < kBands; ++band) {
    sum += per_band[band];
    if (sum >= target) return band;
  }
  return kBands - 1;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

Sampler::Sampler(SamplingParams params) : params_(std::move(params)) {
  assert(validate(params_).ok());
  uint64_t seed = params_.seed;
  for (uint64_t& word : rng_) word = splitmix64(seed);  // never all zero
}

Result<Sampler> Sampler::create(SamplingParams params) {
  ICAM_TRY(validate(params));
  return Sampler(std::move(params));
}

double Sampler::next_uniform() {
  // xoshiro256** (Blackman and Vigna); the top 53 bits make a double in [0, 1).
  uint64_t result = rotl(rng_[1] * 5, 7) * 9;
  uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = rotl(rng_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

Result<SampleResult> Sampler::sample(std::span<const float> logits,
                                     std::span<const int32_t> history,
                                     const TokenFilter* filter) {
  const float max_logit = ICAM_TRY(prepare_logits(logits, history));
  SampleResult out = choose(max_logit);
  if (filter == nullptr || !filter->active() || filter->allows(out.token)) return out;
  // Refused: restrict work_ to what the filter allows and choose again.
  const auto n = static_cast<int32_t>(work_.size());
  filter->allowed_tokens(n, allowed_);
  float restricted_max = -kInf;
  for (int32_t t = 0; t < n; ++t) {
    if (!allowed_[t]) work_[t] = -kInf;
    restricted_max = std::max(restricted_max, work_[t]);
  }
  if (restricted_max == -kInf)
    return make_error(Errc::invalid_argument,
                      "sample: the token filter allows no token the model can produce");
  return choose(restricted_max);
}

SampleResult Sampler::choose(float max_logit) {
  SampleResult out;

  if (params_.temperature == 0.0f) {
    // Greedy: the first maximum is the lowest id among ties.
    out.token = static_cast<int32_t>(first_index_of(work_, max_logit));
    if (!greedy_logprob_ && params_.logprobs == 0) {
      out.logprob = std::numeric_limits<float>::quiet_NaN();
      return out;
    }
    const double log_sum = std::log(exp_sum(work_, max_logit, 1.0f, nullptr));
    out.logprob = static_cast<float>(-log_sum);  // the chosen logit minus the maximum is 0
    if (params_.logprobs > 0) {
      out.top_logprobs = top_logprobs(params_.logprobs, max_logit, 1.0f, log_sum);
    }
    return out;
  }

  // Clamped so that a denormal temperature still gives finite products (0 * inf would be NaN).
  const float inv_t =
      static_cast<float>(std::min(1.0 / params_.temperature, static_cast<double>(kFloatMax)));
  weight_.resize(work_.size());
  const double weight_total = exp_sum(work_, max_logit, inv_t, weight_.data());
  const double log_sum = std::log(weight_total);

  if (params_.logprobs > 0) {
    out.top_logprobs = top_logprobs(params_.logprobs, max_logit, inv_t, log_sum);
  }
  if (params_.top_k > 0 || params_.top_p < 1.0f || params_.min_p > 0.0f) {
    // Top-p's mass is measured at temperature 1, relative to the best token. When top-p is the
    // first filter it is a share of the whole vocabulary's mass; after top-k, of what top-k kept.
    const bool top_p_first = params_.top_p < 1.0f && params_.top_k == 0;
    double unit_total = 0.0;
    if (top_p_first && inv_t == 1.0f) {
      unit_total = weight_total;  // weight_ already holds exp(logit - max)
    } else if (top_p_first) {
      unit_.resize(work_.size());
      unit_total = exp_sum(work_, max_logit, 1.0f, unit_.data());
    }
    gather_candidates(max_logit, inv_t == 1.0f ? weight_ : unit_, unit_total);
    if (params_.top_k > 0) keep_top_k(static_cast<std::size_t>(params_.top_k), max_logit);
    if (params_.top_p < 1.0f) keep_top_p(params_.top_p, max_logit, top_p_first ? unit_total : -1.0);
    if (params_.min_p > 0.0f) keep_min_p(params_.min_p, max_logit);
    drop_filtered();
  }
  out.token = draw();
  out.logprob = static_cast<float>((work_[out.token] - max_logit) * inv_t - log_sum);
  return out;
}

Result<float> Sampler::prepare_logits(std::span<const float> logits,
                                      std::span<const int32_t> history) {
  const std::size_t n = logits.size();
  if (n == 0) return make_error(Errc::invalid_argument, "sample: logits are empty");
  if (n > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
    return make_error(Errc::invalid_argument, "sample: ", n,
                      " logits is more than a token id can address");
  }
  std::size_t window_size = history.size();
  if (params_.repetition_window > 0) {
    window_size = std::min(window_size, static_cast<std::size_t>(params_.repetition_window));
  }
  const std::size_t window_start = history.size() - window_size;
  std::span<const int32_t> window = history.subspan(window_start);
  for (std::size_t i = 0; i < window.size(); ++i) {
    if (window[i] < 0 || static_cast<std::size_t>(window[i]) >= n) {
      return make_error(Errc::invalid_argument, "sample: history[", window_start + i,
                        "] = ", window[i], " is outside the vocabulary [0, ", n, ")");
    }
  }

  work_.resize(n);
  float max_logit = copy_not_nan_max(logits.data(), work_.data(), n);

  const bool penalised = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                         params_.frequency_penalty != 0.0f;
  if (penalised && !window.empty()) {
    apply_penalties(window);
    max_logit = max_value(work_);
  }
  if (max_logit == kInf) {
    for (float& w : work_) w = (w == kInf) ? 0.0f : -kInf;
    max_logit = 0.0f;
  }
  if (max_logit == -kInf) {
    return make_error(Errc::invalid_argument, "sample: none of the ", n,
                      " logits is finite (all NaN or -inf)");
  }
  return max_logit;
}

void Sampler::apply_penalties(std::span<const int32_t> window) {
  if (counts_.size() != work_.size()) counts_.assign(work_.size(), 0);
  seen_.clear();
  for (int32_t token : window) {
    if (counts_[token]++ == 0) seen_.push_back(token);
  }
  const double repetition = params_.repetition_penalty;
  for (int32_t token : seen_) {
    float& logit = work_[token];
    if (std::isfinite(logit)) {
      double v = logit;
      v = v > 0.0 ? v / repetition : v * repetition;
      v -= counts_[token] * static_cast<double>(params_.frequency_penalty) +
           params_.presence_penalty;
      logit = static_cast<float>(
          std::clamp(v, -static_cast<double>(kFloatMax), static_cast<double>(kFloatMax)));
    }
    counts_[token] = 0;  // leave counts_ all zero for the next call
  }
}

void Sampler::gather_candidates(float max_logit, const std::vector<float>& unit,
                                double unit_total) {
  // How far down can the first filter reach? A top-k cut falls inside the band where the running
  // count of tokens reaches k, a top-p cut inside the band where the running mass (unit) reaches
  // p of the total, and a min-p threshold maps to a band directly (plus one for rounding). Only
  // tokens up to that band are copied, so the exact selection that follows works on a short
  // list; later filters only remove more.
  int last_band = kBands - 1;
  if (params_.top_k > 0 || params_.top_p < 1.0f) {
    const bool by_count = params_.top_k > 0;
    // Four interleaved histograms, so that runs of tokens in the same band do not wait on each
    // other's updates.
    double histogram[4][kBands] = {};
    for (std::size_t i = 0; i < work_.size(); ++i) {
      if (work_[i] == -kInf) continue;
      histogram[i % 4][band_of(work_[i], max_logit)] += by_count ? 1.0 : unit[i];
    }
    double per_band[kBands];
    for (int band = 0; band < kBands; ++band) {
      per_band[band] =
          histogram[0][band] + histogram[1][band] + histogram[2][band] + histogram[3][band];
    }
    const double target =
        by_count ? static_cast<double>(params_.top_k) : params_.top_p * unit_total;
    last_band = first_band_reaching(per_band, target);
  } else {
    const float distance = -std::log(params_.min_p);  // min-p is the only filter, min_p > 0
    last_band = std::min(kBands - 1, band_of(-distance, 0.0f) + 1);
  }

  // Every token of bands up to last_band lies above this floor (with a band to spare for
  // rounding); the few below the band that also pass are removed by the exact filters.
  const float floor = last_band == kBands - 1
                          ? -kInf
                          : max_logit - static_cast<float>(last_band + 2) / kBandsPerNat;
  cand_.clear();
  for (std::size_t i = 0; i < work_.size(); ++i) {
    if (work_[i] > floor) cand_.push_back({static_cast<int32_t>(i), work_[i], 0.0f});
  }
}

std::vector<std::pair<int32_t, float>> Sampler::top_logprobs(int n, float max_logit,
                                                             float inv_temperature,
                                                             double log_sum) const {
  // One pass keeping the best n seen so far in a short sorted list (n <= 20); a token rarely
  // beats the list's last entry, so this costs about one comparison per token.
  std::vector<Candidate> best;
  best.reserve(static_cast<std::size_t>(n) + 1);
  for (std::size_t i = 0; i < work_.size(); ++i) {
    const Candidate c{static_cast<int32_t>(i), work_[i], 0.0f};
    if (c.logit == -kInf) continue;
    if (best.size() == static_cast<std::size_t>(n) && !better(c, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), c, better), c);
    if (best.size() > static_cast<std::size_t>(n)) best.pop_back();
  }
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(best.size());
  for (const Candidate& c : best) {
    double logprob = (c.logit - max_logit) * inv_temperature - log_sum;
    out.emplace_back(c.id, static_cast<float>(logprob));
  }
  return out;
}

void Sampler::keep_top_k(std::size_t k, float max_logit) {
  if (k >= cand_.size()) return;
  for (Candidate& c : cand_) c.mass = 1.0f;
  keep_prefix(static_cast<double>(k), max_logit);
}

void Sampler::keep_top_p(float p, float max_logit, double total) {
  double kept = 0.0;
  for (Candidate& c : cand_) {
    c.mass = exp_nonpositive(c.logit - max_logit);
    kept += c.mass;
  }
  keep_prefix(p * (total < 0.0 ? kept : total), max_logit);
}

void Sampler::keep_prefix(double target, float max_logit) {
  // Keeps the shortest prefix of cand_, in candidate order, whose mass reaches `target`; mass in
  // tokens not in cand_ counts as lying after it. Bands (see band_of) before the one where the
  // running mass crosses the target are kept whole and bands after it dropped. Only the crossing
  // band is resolved exactly, by weighted selection: halving its undecided range [lo, hi) with
  // nth_element, where cand_[0, lo) are the best candidates and hold less than the target, so the
  // prefix ends after lo and at or before hi. Expected O(size).
  double band_mass[kBands] = {};
  for (const Candidate& c : cand_) band_mass[band_of(c.logit, max_logit)] += c.mass;
  int cut = 0;
  double mass_lo = 0.0;
  while (cut < kBands - 1 && mass_lo + band_mass[cut] < target) mass_lo += band_mass[cut++];

  auto crossing = std::partition(cand_.begin(), cand_.end(), [&](const Candidate& c) {
    return band_of(c.logit, max_logit) < cut;
  });
  auto dropped = std::partition(crossing, cand_.end(), [&](const Candidate& c) {
    return band_of(c.logit, max_logit) == cut;
  });
  cand_.erase(dropped, cand_.end());

  std::size_t lo = static_cast<std::size_t>(crossing - cand_.begin());
  std::size_t hi = cand_.size();
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    std::nth_element(cand_.begin() + lo, cand_.begin() + mid, cand_.begin() + hi, better);
    double mass = mass_lo;
    for (std::size_t i = lo; i < mid; ++i) mass += cand_[i].mass;
    if (mass >= target) {
      hi = mid;
    } else {
      lo = mid;
      mass_lo = mass;
    }
  }
  cand_.resize(hi);
}

void Sampler::keep_min_p(float min_p, float max_logit) {
  // p / p_max >= min_p  <=>  logit - max_logit >= log(min_p). The best token always passes.
  const double threshold = std::log(static_cast<double>(min_p));
  std::erase_if(cand_, [&](const Candidate& c) {
    return static_cast<double>(c.logit) - max_logit < threshold;
  });
}

void Sampler::drop_filtered() {
  keep_.assign(weight_.size(), 0);
  for (const Candidate& c : cand_) keep_[c.id] = 1;
  for (std::size_t i = 0; i < weight_.size(); ++i) weight_[i] = keep_[i] ? weight_[i] : 0.0f;
}

int32_t Sampler::draw() {
  // Inverse-CDF walk in id order, a block at a time. Block totals are computed the same way for
  // the grand total and for the walk, so the block holding u is found exactly; inside it, where
  // the running sum is formed differently, a rounding shortfall falls back to the block's last
  // drawable token. The best token has weight 1 and is never filtered out, so the total is >= 1.
  const std::size_t n = weight_.size();
  double total = 0.0;
  for (std::size_t begin = 0; begin < n; begin += kBlock) {
    total += block_sum(weight_.data() + begin, std::min(kBlock, n - begin));
  }
  const double u = next_uniform() * total;
  double cumulative = 0.0;
  for (std::size_t begin = 0; begin < n; begin += kBlock) {
    const std::size_t count = std::min(kBlock, n - begin);
    const float block = block_sum(weight_.data() + begin, count);
    if (block > 0.0f && u < cumulative + block) {
      int32_t last_drawable = -1;
      for (std::size_t i = begin; i < begin + count; ++i) {
        if (weight_[i] <= 0.0f) continue;
        cumulative += weight_[i];
        last_drawable = static_cast<int32_t>(i);
        if (u < cumulative) break;
      }
      return last_drawable;
    }
    cumulative += block;
  }
  // Only when u * total rounded up to the total itself: the last drawable token.
  for (std::size_t i = n; i-- > 0;) {
    if (weight_[i] > 0.0f) return static_cast<int32_t>(i);
  }
  return -1;  // unreachable: the best token has weight 1
}

}  // namespace icam::llm
