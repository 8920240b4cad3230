// The real default model against reference figures from an independent implementation
// (tests/fixtures/gemma3-270m/greedy.json; NOTE.md there says how they were produced).
//
// For each fixed prompt the engine is teacher-forced along the reference continuation (40 steps),
// so every step is compared even after a near-tie. At each step:
//   - where the reference's top-1 leads its top-2 by at least kTieMargin, the engine must choose
//     the same token;
//   - where it leads by less (a near-tie), the engine's logit for the reference's token must be
//     within kTieMargin of the engine's own best;
//   - the engine's top-1 logit must be within kLogitTolerance of the reference's at most steps
//     (the mean difference and the 99th percentile are bounded), and within
//     kLogitOutlierTolerance at every step.
// Why a margin: both implementations quantize activations to 8 bits per block before each matrix
// product. With this model the resulting noise compounds over 18 layers into logit differences
// of up to ~0.4 between two correct implementations of the same arithmetic (icam's scalar and
// AVX2 kernels differ from each other by that much; with float activations icam matches an exact
// double-precision reference to 1e-3). llama.cpp disagrees with itself in the same way: with its
// weight repacking off, or flash attention on, its step-0 logits move by 0.35-1.50 and only 3-4 of
// these 9 continuations stay identical for 40 tokens (tests/fixtures/gemma3-270m/NOTE.md).
// Decisions closer than that are not determined by the model; an exact match needs ggml's rounding
// bit for bit. The test also prints how many leading tokens match exactly per prompt.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"

namespace icam::llm {
namespace {

// Absolute tolerances on logits, which are O(10-30) here; see the comment at the top.
// Measured on 2026-11-22: worst top-1 difference 1.26 (in the high-entropy chat-format cases,
// where the base model's logits are 0-5), closest contradicted decision a lead of 0.52.
// Measured on 2026-12-05 over the 360 teacher-forced steps, |engine - reference| top-1 logit:
//   SIMD kernels, the 32-element formats' float steps of before (eight lanes per block):
//     mean 0.250, median 0.204, 99th percentile 1.02, max 1.26
//   SIMD kernels, one fused multiply-add per 32-element block (kernels.h):
//     mean 0.268, median 0.189, 99th percentile 1.13, max 2.26
//   the same and the vectorized GELU (ops_avx2.cpp): mean 0.277, 99th 1.19, max 1.68
//   the same and the K-quants per super-block (kernels.h; now): mean 0.248, 99th 1.08, max 1.37
//   scalar kernels (ICAM_FORCE_SCALAR=1), now: mean 0.238, 99th 0.88, max 1.09
// The distributions are alike; the maximum is one step of a high-entropy chat-format case, and
// which step it falls on depends on where 8-bit activation rounding happens to flip, so the bound
// on every step is looser than the one on the bulk. A kernel that is wrong rather than rounded
// differently moves the mean (a 1% error in one matrix doubles it).
constexpr float kLogitTolerance = 1.5f;
constexpr float kLogitOutlierTolerance = 3.0f;
constexpr float kMeanLogitTolerance = 0.35f;
constexpr float kTieMargin = 0.6f;
constexpr int kRequiredTokens = 32;
// Prompts whose whole continuation is matched exactly. Which ones (beyond "def fibonacci(n):" and
// "1, 2, 3, 4,", matched by every variant) depends on which near-tie (lead under kTieMargin)
// float rounding tips: measured 2026-12-05, the SIMD kernels before the fused per-block steps of
// kernels.h matched 3 (with the "What is 2+2?" chat turn), with them 2 to 3 as the steps
// changed, the scalar kernels 4, each first divergence at a near-tie. So the floor is the two
// every variant keeps; the decisions that are not near-ties are asserted step by step above.
constexpr int kExactPromptsFloor = 2;

std::string fixture_path() {
  return std::string(ICAM_SOURCE_DIR) + "/tests/fixtures/gemma3-270m/greedy.json";
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

class Gemma3Reference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto config = load_config();
    ASSERT_TRUE(config.ok()) << config.error().message();
    std::ifstream in(fixture_path());
    ASSERT_TRUE(in) << "missing fixture " << fixture_path();
    fixture_ = new nlohmann::json(nlohmann::json::parse(in));
    std::ifstream probe(config->model);
    if (!probe) {
      skip_reason_ = "default model not found at " + config->model + " (run scripts/fetch-model)";
      return;
    }
    if (sha256_file(config->model) != (*fixture_)["model_sha256"].get<std::string>()) {
      skip_reason_ = config->model + " is not the model the fixture was made from";
      return;
    }
    auto model = Model::load(config->model);
    ASSERT_TRUE(model.ok()) << model.error().message();
    model_ = model->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete fixture_;
    model_ = nullptr;
    fixture_ = nullptr;
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  }

  std::unique_ptr<CpuBackend> backend() {
    KvPoolOptions kv;
    kv.bytes = 64ull << 20;
    auto b = CpuBackend::create(model_->config(), model_->weights(), kv, 0);
    EXPECT_TRUE(b.ok());
    return std::move(*b);
  }

  static Model* model_;
  static nlohmann::json* fixture_;
  static std::string skip_reason_;
};

Model* Gemma3Reference::model_ = nullptr;
nlohmann::json* Gemma3Reference::fixture_ = nullptr;
std::string Gemma3Reference::skip_reason_;

std::pair<int32_t, float> argmax(const float* row, int n) {
  const float* best = std::max_element(row, row + n);
  return {static_cast<int32_t>(best - row), *best};
}

TEST_F(Gemma3Reference, PromptsTokenizeLikeTheReference) {
  for (const auto& c : (*fixture_)["cases"]) {
    const std::string prompt = c["prompt"];
    const bool special =
        c.value("parse_special", prompt.find("<start_of_turn>") != std::string::npos);
    auto ids = model_->tokenizer().encode(prompt, c["add_bos"].get<bool>(), special);
    ASSERT_TRUE(ids.ok()) << ids.error().message();
    EXPECT_EQ(*ids, c["prompt_ids"].get<std::vector<int32_t>>()) << "prompt: " << prompt;
  }
}

TEST_F(Gemma3Reference, GreedyContinuationsMatch) {
  const int vocab = model_->config().n_vocab;
  std::vector<float> differences;
  int exact_prompts = 0;
  for (const auto& c : (*fixture_)["cases"]) {
    const std::string name = c["prompt"].get<std::string>().substr(0, 40);
    auto be = backend();
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto expected = c["tokens"].get<std::vector<int32_t>>();
    const auto top1 = c["top1_logits"].get<std::vector<float>>();
    const auto gap = c["top2_gap"].get<std::vector<float>>();
    ASSERT_GE(expected.size(), static_cast<size_t>(kRequiredTokens));
    BlockTable table(be->kv_pool());
    ASSERT_TRUE(table.reserve(prompt.size() + expected.size()).ok());
    std::vector<float> logits;
    SequenceStep step{prompt, 0, table.pages(), LogitsWanted::last};
    ASSERT_TRUE(be->forward(std::span<const SequenceStep>(&step, 1), logits).ok());
    int exact_prefix = -1;
    for (size_t i = 0; i < expected.size(); ++i) {
      auto [token, logit] = argmax(logits.data(), vocab);
      const float ref_logit_here = logits[expected[i]];
      differences.push_back(std::fabs(logit - top1[i]));
      EXPECT_NEAR(logit, top1[i], kLogitOutlierTolerance) << "'" << name << "' step " << i;
      if (token != expected[i]) {
        if (exact_prefix < 0) exact_prefix = static_cast<int>(i);
        if (gap[i] >= kTieMargin) {
          ADD_FAILURE() << "'" << name << "' step " << i << ": engine chose " << token
                        << " (logit " << logit << ") where the reference clearly prefers "
                        << expected[i] << " (lead " << gap[i] << "; engine gives it "
                        << ref_logit_here << ")";
        } else {
          EXPECT_LE(logit - ref_logit_here, kTieMargin)
              << "'" << name << "' step " << i << ": near-tie, but the engine rates the "
              << "reference's token " << expected[i] << " far below its own choice " << token;
        }
      }
      SequenceStep next{std::span<const int32_t>(&expected[i], 1),
                        static_cast<int32_t>(prompt.size() + i), table.pages(), LogitsWanted::last};
      ASSERT_TRUE(be->forward(std::span<const SequenceStep>(&next, 1), logits).ok());
    }
    if (exact_prefix < 0) exact_prefix = static_cast<int>(expected.size());
    if (exact_prefix >= kRequiredTokens) ++exact_prompts;
    std::printf("%-42s exact greedy prefix %2d of %zu tokens\n", ("'" + name + "'").c_str(),
                exact_prefix, expected.size());
  }
  std::sort(differences.begin(), differences.end());
  double sum = 0;
  for (const float d : differences) sum += d;
  const double mean = sum / static_cast<double>(differences.size());
  const float p99 = differences[differences.size() * 99 / 100];
  std::printf(
      "prompts matching exactly for >= %d tokens: %d of %zu; top-1 logit difference: "
      "mean %.3f, 99th percentile %.3f, max %.3f\n",
      kRequiredTokens, exact_prompts, (*fixture_)["cases"].size(), mean, p99, differences.back());
  EXPECT_GE(exact_prompts, kExactPromptsFloor);
  EXPECT_LE(mean, kMeanLogitTolerance);
  EXPECT_LE(p99, kLogitTolerance);
}

TEST_F(Gemma3Reference, FirstStepTopFiveMatch) {
  const int vocab = model_->config().n_vocab;
  for (const auto& c : (*fixture_)["cases"]) {
    auto be = backend();
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    BlockTable table(be->kv_pool());
    ASSERT_TRUE(table.reserve(prompt.size()).ok());
    std::vector<float> logits;
    SequenceStep step{prompt, 0, table.pages(), LogitsWanted::last};
    ASSERT_TRUE(be->forward(std::span<const SequenceStep>(&step, 1), logits).ok());
    for (const auto& pair : c["first_step_top5"]) {
      const int32_t id = pair[0];
      ASSERT_LT(id, vocab);
      EXPECT_NEAR(logits[id], pair[1].get<float>(), kLogitTolerance)
          << c["prompt"].get<std::string>() << " token " << id;
    }
  }
}

// A batched prefill producing logits at every position agrees with the reference's per-position
// top-1 (case 0 records them).
TEST_F(Gemma3Reference, PrefillLogitsAtEveryPosition) {
  const auto& c = (*fixture_)["cases"][0];
  if (!c.contains("prompt_top1")) GTEST_SKIP() << "fixture has no prompt_top1";
  const int vocab = model_->config().n_vocab;
  auto be = backend();
  const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  BlockTable table(be->kv_pool());
  ASSERT_TRUE(table.reserve(prompt.size()).ok());
  std::vector<float> logits;
  SequenceStep step{prompt, 0, table.pages(), LogitsWanted::all};
  ASSERT_TRUE(be->forward(std::span<const SequenceStep>(&step, 1), logits).ok());
  const auto& ref = c["prompt_top1"];
  ASSERT_EQ(ref.size(), prompt.size());
  for (size_t p = 0; p < prompt.size(); ++p) {
    auto [token, logit] = argmax(logits.data() + p * vocab, vocab);
    const int32_t ref_id = ref[p][0];
    const float ref_logit = ref[p][1];
    EXPECT_NEAR(logits[p * vocab + ref_id], ref_logit, kLogitTolerance) << "position " << p;
    if (token != ref_id) {  // near-ties may swap; the reference's choice must be within tolerance
      EXPECT_NEAR(logit, ref_logit, kLogitTolerance) << "position " << p;
    }
  }
}

}  // namespace
}  // namespace icam::llm
