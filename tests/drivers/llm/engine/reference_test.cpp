// The engine's logits against the naive double-precision reference, for every architecture and
// weight type, at every position of a sequence; and proof that the comparison is sharp enough to
// notice the mistakes an implementation is likely to make.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/engine/engine_harness.h"
#include "tests/drivers/llm/engine/naive_forward.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {
namespace {

// How far the engine's logits may stray from the exact reference: the largest difference over
// all positions and tokens, as a fraction of the largest reference logit. The reference uses the
// same dequantized weights, so weight quantization is no part of the error; what remains is the
// engine's own rounding, which is documented (quant.h, kv_pool.h):
//   - every type: keys and values cached as IEEE halves (2^-11 relative per element) and float
//     accumulation. Measured 2e-4 .. 7e-4 with F32 weights;
//   - F16 / BF16 weights: each matrix product's input rounded to F16 (2^-11) or BF16 (2^-8).
//     Measured up to 1.1e-3 and 7.7e-3;
//   - quantized weights: each matrix product's input quantized to 8 bits per block (Q8_0, blocks
//     of 32, for Q4_0/Q5_0/Q8_0; Q8_K, blocks of 256, for the K-quants). That is about 0.6%
//     noise per product, compounding over the products of every layer. Measured 1.3e-2 .. 3.2e-2
//     (the K-quants worst: one scale for 256 activations), the same with ICAM_FORCE_SCALAR=1.
// The bounds sit about 2x (8-bit types) to 3x above the largest measured error and well below
// what real mistakes cost: the faults in ReferenceSensitivity give 0.15 .. 1.6. Architecture
// code is shared by all weight types, so the F32 and F16 cases check it tightly; the quantized
// cases check what depends on the type (embedding rows, matrix products, tied output).
double tolerance(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return 2e-3;
    case GgmlType::F16:
      return 3e-3;
    case GgmlType::BF16:
      return 2e-2;
    default:
      return 6e-2;  // activations quantized to 8 bits
  }
}

constexpr int kSequence = 40;

std::vector<int32_t> test_tokens(int n, uint64_t seed) {
  std::vector<int32_t> tokens = TinyRandom(seed).tokens(n - 1, kTinyVocab);
  tokens.insert(tokens.begin(), kTinyBos);
  return tokens;
}

struct Case {
  const char* arch;
  GgmlType type;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << " " << type_name(c.type);
}

std::string case_name(const ::testing::TestParamInfo<Case>& p) {
  return std::string(p.param.arch) + "_" + type_name(p.param.type);
}

class EngineMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(EngineMatchesReference, LogitsAtEveryPosition) {
  const Case c = GetParam();
  const TinySpec spec = tiny_spec(c.arch, c.type);
  auto engine = make_engine(spec);
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  ASSERT_EQ(engine->config().n_vocab, kTinyVocab);
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();

  const std::vector<int32_t> tokens = test_tokens(kSequence, 7);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  const std::vector<double> exact = reference->forward(tokens);
  ASSERT_EQ(got->size(), exact.size());

  const double err = logit_error(*got, exact);
  const double rms = logit_rms_error(*got, exact);
  std::printf("  %-6s %-4s: relative logit error %.2e max (tolerance %.0e), %.2e rms\n", c.arch,
              type_name(c.type).c_str(), err, tolerance(c.type), rms);
  EXPECT_LT(err, tolerance(c.type));

  // Row by row as well, so that a failure says where the engine first goes wrong, and the
  // greedy choice wherever the reference's top two are further apart than the tolerance.
  double scale = 0;
  for (double v : exact) scale = std::max(scale, std::abs(v));
  for (int t = 0; t < kSequence; ++t) {
    std::span<const float> g(got->data() + t * kTinyVocab, kTinyVocab);
    std::span<const double> w(exact.data() + t * kTinyVocab, kTinyVocab);
    double row_diff = 0;
    for (int i = 0; i < kTinyVocab; ++i) row_diff = std::max(row_diff, std::abs(g[i] - w[i]));
    ASSERT_LT(row_diff / scale, tolerance(c.type)) << "first bad position " << t;
    if (top2_gap(w) > 2 * tolerance(c.type) * scale) {
      EXPECT_EQ(argmax(g), argmax(w)) << "position " << t;
    }
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* arch : {"gemma3", "llama", "qwen2", "qwen3"})
    for (GgmlType type :
         {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q5_0,
          GgmlType::Q4_0, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_K})
      cases.push_back({arch, type});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllArchitecturesAndTypes, EngineMatchesReference,
                         ::testing::ValuesIn(all_cases()), case_name);

// Several threads split the matrix products and the attention heads; the result must not change.
TEST(EngineThreads, ThreadCountDoesNotChangeLogits) {
  const TinySpec spec = tiny_spec("gemma3", GgmlType::Q8_0);
  auto one = make_engine(spec, {.threads = 1});
  auto three = make_engine(spec, {.threads = 3});
  ASSERT_TRUE(one.ok() && three.ok());
  const std::vector<int32_t> tokens = test_tokens(24, 11);
  auto a = forward_all(*one->backend, tokens);
  auto b = forward_all(*three->backend, tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(logit_error(*b, *a), 1e-5);
}

// Past 512 keys a row's attention runs in chunks, merged afterwards (kKeyChunk in cpu_backend.cpp).
// Over 800 positions of a gemma3 model whose global layer sees up to 800 keys (two chunks) and
// whose sliding-window layers up to 600 (two chunks, the first starting past position 0): the
// logits agree with the reference at every position, and the last position's logits are the same
// bit for bit however the chunks run: in one task with the row's other chunks (a prefill's many
// rows, or one thread) or as tasks of their own on two threads (one row decoding).
TEST(EngineLongContext, ChunkedAttentionMatchesReferenceAndIsTheSameHoweverRun) {
  TinySpec spec = tiny_spec("gemma3", GgmlType::F32);
  spec.context_length = 1024;
  spec.sliding_window = 600;
  constexpr int kLong = 800;
  auto two = make_engine(spec, {.threads = 2});
  auto one = make_engine(spec, {.threads = 1});
  ASSERT_TRUE(two.ok()) << two.error().message();
  ASSERT_TRUE(one.ok()) << one.error().message();
  auto reference = NaiveModel::create(spec, two->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();

  const std::vector<int32_t> tokens = test_tokens(kLong, 13);
  auto got = forward_all(*two->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  const std::vector<double> exact = reference->forward(tokens);
  EXPECT_LT(logit_error(*got, exact), tolerance(GgmlType::F32));

  const std::span<const float> prefill_last(got->data() + (kLong - 1) * kTinyVocab, kTinyVocab);
  const std::span<const int32_t> all(tokens);
  for (TinyEngine* engine : {&*two, &*one}) {
    BlockTable table(engine->pool());
    ASSERT_TRUE(table.reserve(kLong).ok());
    std::vector<float> logits;
    ASSERT_TRUE(forward_one(*engine->backend, all.first(kLong - 1), 0, table.pages(),
                            LogitsWanted::none, logits)
                    .ok());
    ASSERT_TRUE(forward_one(*engine->backend, all.subspan(kLong - 1), kLong - 1, table.pages(),
                            LogitsWanted::last, logits)
                    .ok());
    ASSERT_EQ(logits.size(), prefill_last.size());
    EXPECT_EQ(0, std::memcmp(logits.data(), prefill_last.data(), logits.size() * sizeof(float)))
        << engine->backend->threads() << " thread(s)";
  }
}

// Each fault is a plausible implementation mistake, applied to the reference instead of the
// engine. The engine must then disagree with the reference by far more than the tolerance (10x
// for F32, 2x for the noisier Q4_0), which shows that the comparison above would catch the same
// mistake in the engine.
struct FaultCase {
  const char* name;
  const char* arch;
  ReferenceFault fault;
  GgmlType type = GgmlType::F32;
};

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> cases;
  for (const char* arch : {"gemma3", "llama", "qwen2", "qwen3"}) {
    cases.push_back({"wrong_rope_style", arch, {.swap_rope_style = true}});
    cases.push_back({"wrong_activation", arch, {.swap_activation = true}});
    cases.push_back({"kv_heads_interleaved", arch, {.interleave_kv_heads = true}});
    cases.push_back({"unscaled_attention", arch, {.unscaled_attention = true}});
  }
  cases.push_back({"no_qk_norm", "gemma3", {.skip_qk_norm = true}});
  cases.push_back({"no_post_norms", "gemma3", {.skip_post_norms = true}});
  cases.push_back({"no_embedding_scale", "gemma3", {.skip_embedding_scale = true}});
  cases.push_back({"no_sliding_window", "gemma3", {.no_sliding_window = true}});
  cases.push_back({"window_one_longer", "gemma3", {.window_delta = 1}});
  cases.push_back({"window_one_shorter", "gemma3", {.window_delta = -1}});
  cases.push_back({"local_layers_global_rope", "gemma3", {.local_layers_use_global_rope = true}});
  cases.push_back({"no_rope_scaling", "gemma3", {.ignore_rope_scaling = true}});
  cases.push_back({"no_attention_bias", "qwen2", {.skip_attention_bias = true}});
  cases.push_back({"no_qk_norm", "qwen3", {.skip_qk_norm = true}});
  // The same faults must stand out of the quantization noise of the quantized comparisons too.
  const size_t n = cases.size();
  for (size_t i = 0; i < n; ++i) {
    FaultCase quantized = cases[i];
    quantized.type = GgmlType::Q4_0;
    cases.push_back(quantized);
  }
  return cases;
}

void PrintTo(const FaultCase& c, std::ostream* os) {
  *os << c.arch << " " << type_name(c.type) << " " << c.name;
}

class ReferenceSensitivity : public ::testing::TestWithParam<FaultCase> {};

TEST_P(ReferenceSensitivity, FaultyReferenceDisagreesWithEngine) {
  const FaultCase c = GetParam();
  const TinySpec spec = tiny_spec(c.arch, c.type);
  auto engine = make_engine(spec);
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();

  const std::vector<int32_t> tokens = test_tokens(kSequence, 7);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  const double err = logit_error(*got, reference->forward(tokens, c.fault));
  const double margin = c.type == GgmlType::F32 ? 10 : 2;
  std::printf("  %-6s %-4s %s: relative logit error %.2e (must exceed %.0e)\n", c.arch,
              type_name(c.type).c_str(), c.name, err, margin * tolerance(c.type));
  EXPECT_GT(err, margin * tolerance(c.type));
}

INSTANTIATE_TEST_SUITE_P(Faults, ReferenceSensitivity, ::testing::ValuesIn(fault_cases()),
                         [](const ::testing::TestParamInfo<FaultCase>& p) {
                           return std::string(p.param.arch) + "_" + type_name(p.param.type) + "_" +
                                  p.param.name;
                         });

// Gemma 3's local layers attend to the last `sliding_window` positions only. Over a sequence five
// windows long the engine must match the windowed reference, and the window must matter: the
// reference without it differs from the engine, but only from the position where the window
// first cuts something off.
TEST(SlidingWindow, Gemma3MatchesWindowedReferenceAndWindowMatters) {
  TinySpec spec = tiny_spec("gemma3", GgmlType::F32);
  spec.sliding_window = 8;
  auto engine = make_engine(spec);
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  ASSERT_EQ(engine->config().sliding_window, 8);
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();

  const std::vector<int32_t> tokens = test_tokens(kSequence, 3);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  const std::vector<double> windowed = reference->forward(tokens);
  const std::vector<double> unwindowed = reference->forward(tokens, {.no_sliding_window = true});

  EXPECT_LT(logit_error(*got, windowed), tolerance(GgmlType::F32));
  EXPECT_GT(logit_error(*got, unwindowed), 10 * tolerance(GgmlType::F32));

  // Positions 0..7 see at most 8 keys either way: identical in both references.
  const size_t first_rows = 8 * kTinyVocab;
  EXPECT_LT(logit_error(std::span<const float>(got->data(), first_rows),
                        std::span<const double>(unwindowed.data(), first_rows)),
            tolerance(GgmlType::F32));
  // Position 8 is the first whose window drops a key (position 0).
  const std::span<const float> row8(got->data() + 8 * kTinyVocab, kTinyVocab);
  EXPECT_GT(
      logit_error(row8, std::span<const double>(unwindowed.data() + 8 * kTinyVocab, kTinyVocab)),
      10 * tolerance(GgmlType::F32));
}

// A window as long as the context makes every layer global in effect, whatever (l + 1) % 6 says;
// the engine must then agree with the reference run without windows.
TEST(SlidingWindow, WindowLongerThanSequenceIsNoWindow) {
  TinySpec spec = tiny_spec("gemma3", GgmlType::F32);
  spec.sliding_window = spec.context_length;
  auto engine = make_engine(spec);
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok());
  const std::vector<int32_t> tokens = test_tokens(kSequence, 5);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok());
  EXPECT_LT(logit_error(*got, reference->forward(tokens, {.no_sliding_window = true})),
            tolerance(GgmlType::F32));
}

// Llama 3.1 and later files carry RoPE frequency factors: rope_freqs.weight, one per rotated pair,
// dividing that pair's frequency (llama.cpp passes them to its rope as freq_factors). An engine
// that ignores the tensor silently runs a different model; it must use the factors or refuse
// the file.
TEST(EngineRegression, LlamaRopeFrequencyFactorsAreUsedOrRefused) {
  TinySpec spec = tiny_spec("llama", GgmlType::F32);
  spec.rope_freq_factors = {1, 1, 1, 2, 4, 8, 8, 8};
  ASSERT_EQ(spec.rope_freq_factors.size(), static_cast<size_t>(spec.head_dim / 2));
  auto engine = make_engine(spec);
  if (!engine.ok()) {
    EXPECT_NE(engine.error().message().find("rope_freqs.weight"), std::string::npos)
        << engine.error().message();
    return;
  }
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();
  const std::vector<int32_t> tokens = test_tokens(kSequence, 13);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_LT(logit_error(*got, reference->forward(tokens)), tolerance(GgmlType::F32))
      << "the engine loaded rope_freqs.weight but does not apply it";
}

// Gemma 3 27B scales q.k by 1/sqrt(d_model / n_heads) = 1/sqrt(168), its query_pre_attn_scalar,
// where the smaller Gemma 3 models use 1/sqrt(head_dim). GGUF files do not record the scalar;
// llama.cpp recognises the 27B by its 62 layers. A tiny 62-layer Gemma 3 with head_dim 32 and
// d_model / n_heads = 16 tells the two rules apart.
TEST(EngineRegression, Gemma3With62LayersScalesAttentionByModelWidthPerHead) {
  TinySpec spec = tiny_spec("gemma3", GgmlType::F32);
  spec.n_layers = 62;
  ASSERT_NE(spec.head_dim, spec.d_model / spec.n_heads);
  auto engine = make_engine(spec);
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto reference = NaiveModel::create(spec, engine->model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();
  const std::vector<int32_t> tokens = test_tokens(16, 17);
  auto got = forward_all(*engine->backend, tokens);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_LT(logit_error(*got, reference->forward(tokens)), tolerance(GgmlType::F32));
}

// The reference itself: a sequence's logits do not depend on what follows it (causality), which
// the batching tests rely on when they compare prefixes.
TEST(NaiveReference, IsCausal) {
  const TinySpec spec = tiny_spec("qwen2", GgmlType::F32);
  const TinyModel tiny = make_tiny_model(spec);
  auto model = load_tiny_model(tiny);
  ASSERT_TRUE(model.ok()) << model.error().message();
  auto reference = NaiveModel::create(spec, (*model)->file());
  ASSERT_TRUE(reference.ok());
  const std::vector<int32_t> tokens = test_tokens(12, 9);
  const std::vector<double> full = reference->forward(tokens);
  const std::vector<double> prefix = reference->forward(std::span<const int32_t>(tokens).first(7));
  for (size_t i = 0; i < prefix.size(); ++i) ASSERT_DOUBLE_EQ(prefix[i], full[i]);
}

}  // namespace
}  // namespace icam::llm::testing
