// generate(): greedy decoding agrees with a hand-driven loop over Backend::forward and with the
// naive reference; it stops at max_tokens, stop tokens, stop strings, end of generation and a
// full context; a sink can cancel it; and it always gives its pages back.
#include "drivers/llm/engine/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "drivers/llm/engine/block_table.h"
#include "tests/drivers/llm/engine/engine_harness.h"
#include "tests/drivers/llm/engine/naive_forward.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {
namespace {

constexpr int kMaxTokens = 16;

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    tiny_ = make_tiny_model(tiny_spec("qwen2"));
    auto e = make_engine(tiny_.spec, {.page_tokens = 8});
    ASSERT_TRUE(e.ok()) << e.error().message();
    engine_ = std::move(*e);
  }

  // Greedy, ignoring end-of-generation tokens, kMaxTokens long.
  GenerateRequest greedy_request() const {
    GenerateRequest r;
    r.prompt = prompt_;
    r.sampling.max_tokens = kMaxTokens;
    r.stop_at_end_of_generation = false;
    return r;
  }

  Result<GenerateResult> run(const GenerateRequest& r, const TextSink& sink = {}) {
    auto result = generate(*engine_.backend, engine_.model->tokenizer(), r, sink);
    EXPECT_EQ(engine_.pool().free_pages(), engine_.pool().n_pages()) << "pages not given back";
    return result;
  }

  std::string pieces(std::span<const int32_t> tokens) const {
    std::string text;
    for (int32_t t : tokens) text += engine_.model->tokenizer().token_piece(t);
    return text;
  }

  TinyModel tiny_;
  TinyEngine engine_;
  std::vector<int32_t> prompt_ = {kTinyBos, 280, 290, 17, 100, 270, 281, 299, 5, 260, 261};
};

TEST_F(Generate, GreedyEqualsHandDrivenLoop) {
  auto result = run(greedy_request());
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::max_tokens);
  EXPECT_EQ(result->prompt_tokens, static_cast<int>(prompt_.size()));
  ASSERT_EQ(result->tokens.size(), static_cast<size_t>(kMaxTokens));
  ASSERT_EQ(result->samples.size(), result->tokens.size());

  BlockTable table(engine_.pool());
  ASSERT_TRUE(table.reserve(prompt_.size() + kMaxTokens).ok());
  std::vector<float> logits;
  ASSERT_TRUE(
      forward_one(*engine_.backend, prompt_, 0, table.pages(), LogitsWanted::last, logits).ok());
  std::vector<int32_t> want;
  for (int i = 0; i < kMaxTokens; ++i) {
    want.push_back(argmax(logits));
    ASSERT_TRUE(forward_one(*engine_.backend, std::span(&want.back(), 1),
                            static_cast<int32_t>(prompt_.size() + i), table.pages(),
                            LogitsWanted::last, logits)
                    .ok());
  }
  EXPECT_EQ(result->tokens, want);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(result->samples[i].token, want[i]);
  EXPECT_EQ(result->text, pieces(want));
}

// Greedy tokens are the reference's argmax wherever its top two are clearly apart.
TEST_F(Generate, GreedyAgreesWithReference) {
  auto result = run(greedy_request());
  ASSERT_TRUE(result.ok()) << result.error().message();
  auto reference = NaiveModel::create(tiny_.spec, engine_.model->file());
  ASSERT_TRUE(reference.ok()) << reference.error().message();
  std::vector<int32_t> all = prompt_;
  all.insert(all.end(), result->tokens.begin(), result->tokens.end() - 1);
  const std::vector<double> logits = reference->forward(all);
  int checked = 0;
  for (int i = 0; i < kMaxTokens; ++i) {
    std::span<const double> row(logits.data() + (prompt_.size() - 1 + i) * kTinyVocab, kTinyVocab);
    if (top2_gap(row) < 0.01) continue;  // too close to call at the engine's precision
    EXPECT_EQ(result->tokens[i], argmax(row)) << "step " << i;
    ++checked;
  }
  EXPECT_GE(checked, kMaxTokens / 2);
}

TEST_F(Generate, PrefillChunkDoesNotChangeTheTokens) {
  auto whole = run(greedy_request());
  ASSERT_TRUE(whole.ok());
  for (int chunk : {1, 3, 8}) {
    GenerateRequest r = greedy_request();
    r.prefill_chunk = chunk;
    auto result = run(r);
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_EQ(result->tokens, whole->tokens) << "prefill_chunk " << chunk;
  }
}

// The index of the first generated token that appears nowhere before it, from `from` on.
size_t first_new_token(const std::vector<int32_t>& tokens, size_t from) {
  for (size_t k = from; k < tokens.size(); ++k)
    if (std::find(tokens.begin(), tokens.begin() + k, tokens[k]) == tokens.begin() + k) return k;
  return tokens.size();
}

TEST_F(Generate, StopsAtStopTokenWithoutShowingIt) {
  auto free_run = run(greedy_request());
  ASSERT_TRUE(free_run.ok());
  const size_t k = first_new_token(free_run->tokens, 4);
  ASSERT_LT(k, free_run->tokens.size());

  GenerateRequest r = greedy_request();
  r.sampling.stop_tokens = {free_run->tokens[k]};
  auto result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::stop_token);
  EXPECT_EQ(result->tokens,
            std::vector<int32_t>(free_run->tokens.begin(), free_run->tokens.begin() + k + 1));
  EXPECT_EQ(result->text, pieces(std::span(free_run->tokens).first(k)));
}

TEST_F(Generate, StopsAtStopStringSpanningTokens) {
  auto free_run = run(greedy_request());
  ASSERT_TRUE(free_run.ok());
  // A stop string made of the end of token 5's text and the start of token 6's.
  const std::string before = pieces(std::span(free_run->tokens).first(5));
  const std::string t5 = pieces(std::span(free_run->tokens).subspan(5, 1));
  const std::string t6 = pieces(std::span(free_run->tokens).subspan(6, 1));
  ASSERT_FALSE(t5.empty());
  ASSERT_FALSE(t6.empty());
  const std::string stop = t5.substr(t5.size() - 1) + t6.substr(0, 1);
  const std::string full = pieces(free_run->tokens);
  const size_t at = full.find(stop);
  ASSERT_NE(at, std::string::npos);

  GenerateRequest r = greedy_request();
  r.sampling.stop_strings = {stop};
  auto result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::stop_string);
  EXPECT_EQ(result->text, full.substr(0, at));
  EXPECT_LE(result->tokens.size(), 7u);
}

// With the end-of-sequence id set to a token greedy decoding reaches, generation ends there; its
// text is not shown. The weights are the same, so the tokens before it are too.
TEST_F(Generate, StopsAtEndOfGeneration) {
  auto free_run = run(greedy_request());
  ASSERT_TRUE(free_run.ok());
  const std::vector<int32_t>& t = free_run->tokens;
  const size_t k = first_new_token(t, 3);
  ASSERT_LT(k, t.size());
  ASSERT_EQ(std::count(t.begin(), t.begin() + k, kTinyEos), 0);

  const int32_t eos = t[k];
  auto model = load_tiny_model(tiny_, [&](GgufWriter& w) {
    w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  });
  ASSERT_TRUE(model.ok()) << model.error().message();
  ASSERT_TRUE((*model)->tokenizer().is_end_of_generation(eos));
  auto backend =
      CpuBackend::create((*model)->config(), (*model)->weights(), KvPoolOptions{1 << 20, 8}, 1);
  ASSERT_TRUE(backend.ok());

  GenerateRequest r = greedy_request();
  r.stop_at_end_of_generation = true;
  auto result = generate(**backend, (*model)->tokenizer(), r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::end_of_generation);
  EXPECT_EQ(result->tokens, std::vector<int32_t>(t.begin(), t.begin() + k + 1));
  EXPECT_EQ(result->text, pieces(std::span(t).first(k)));

  // Told to ignore it, generation runs on to max_tokens and shows the token's text.
  r.stop_at_end_of_generation = false;
  result = generate(**backend, (*model)->tokenizer(), r);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->finish, FinishReason::max_tokens);
  EXPECT_EQ(result->tokens, t);
}

TEST_F(Generate, MaxTokensOfOne) {
  GenerateRequest r = greedy_request();
  r.sampling.max_tokens = 1;
  auto result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::max_tokens);
  EXPECT_EQ(result->tokens.size(), 1u);
}

TEST_F(Generate, SinkSeesTheTextAndCanCancel) {
  auto free_run = run(greedy_request());
  ASSERT_TRUE(free_run.ok());

  // A sink that accepts everything sees exactly the result's text.
  std::string seen;
  auto all = run(greedy_request(), [&](std::string_view s) {
    seen += s;
    return true;
  });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(seen, all->text);
  EXPECT_EQ(all->tokens, free_run->tokens);

  // A sink that refuses its third piece of text ends generation right there.
  int calls = 0;
  seen.clear();
  auto cancelled = run(greedy_request(), [&](std::string_view s) {
    seen += s;
    return ++calls < 3;
  });
  ASSERT_TRUE(cancelled.ok()) << cancelled.error().message();
  ASSERT_EQ(calls, 3);
  EXPECT_EQ(cancelled->finish, FinishReason::cancelled);
  EXPECT_LT(cancelled->tokens.size(), free_run->tokens.size());
  EXPECT_EQ(cancelled->tokens,
            std::vector<int32_t>(free_run->tokens.begin(),
                                 free_run->tokens.begin() + cancelled->tokens.size()));
  EXPECT_EQ(seen, cancelled->text);
  EXPECT_EQ(free_run->text.substr(0, seen.size()), seen);
}

// A prompt 6 short of the context: the 6 free positions are decoded into, and one more token can
// be sampled from the last position's logits; then the context is full.
TEST_F(Generate, StopsWhenTheContextIsFull) {
  const int context = engine_.config().context_length;
  GenerateRequest r = greedy_request();
  r.prompt = TinyRandom(8).tokens(context - 6, kTinyVocab);
  r.prefill_chunk = 64;
  r.sampling.max_tokens = 100;
  auto result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::context_full);
  EXPECT_EQ(result->tokens.size(), 7u);

  // The largest prompt allowed leaves one position: exactly two tokens come out.
  r.prompt = TinyRandom(8).tokens(context - 1, kTinyVocab);
  result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->finish, FinishReason::context_full);
  EXPECT_EQ(result->tokens.size(), 2u);
}

TEST_F(Generate, SeededSamplingIsReproducible) {
  GenerateRequest r = greedy_request();
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = 40;
  r.sampling.seed = 1234;
  auto a = run(r);
  auto b = run(r);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->tokens.size(), static_cast<size_t>(kMaxTokens));
  for (int32_t t : a->tokens) EXPECT_TRUE(t >= 0 && t < kTinyVocab);
}

TEST_F(Generate, LogprobsDescribeTheChoice) {
  GenerateRequest r = greedy_request();
  r.sampling.logprobs = 3;
  r.sampling.max_tokens = 4;
  auto result = run(r);
  ASSERT_TRUE(result.ok()) << result.error().message();
  for (const SampleResult& s : result->samples) {
    ASSERT_EQ(s.top_logprobs.size(), 3u);
    EXPECT_EQ(s.top_logprobs[0].first, s.token);  // greedy takes the most likely
    EXPECT_LE(s.logprob, 0.0f);
    EXPECT_GE(s.top_logprobs[0].second, s.top_logprobs[1].second);
  }
}

}  // namespace
}  // namespace icam::llm::testing
