// Bad input to the engine's three entry points (Model::load, Backend::forward, generate) is an
// error value whose message names the offending thing; nothing crashes and nothing is written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/engine/generate.h"
#include "tests/drivers/llm/engine/engine_harness.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {
namespace {

using ::testing::HasSubstr;

// ----------------------------------------------------------------------------------------------
// Model::load.

struct LoadCase {
  const char* name;
  const char* arch;
  std::function<void(TinyModel&)> damage;
  MetadataEdit edit;
  Errc code;
  std::vector<std::string> mentions;  // each must appear in the message
};

std::vector<LoadCase> load_cases() {
  std::vector<LoadCase> c;
  c.push_back({"missing_tensor",
               "llama",
               [](TinyModel& m) { m.remove("blk.1.ffn_up.weight"); },
               {},
               Errc::corrupt,
               {"blk.1.ffn_up.weight", "missing"}});
  c.push_back({"wrong_shape",
               "llama",
               [](TinyModel& m) {
                 TinyTensor* t = m.find("blk.0.attn_k.weight");
                 t->dims[1] += 1;
                 t->values.resize(t->dims[0] * t->dims[1]);
               },
               {},
               Errc::corrupt,
               {"blk.0.attn_k.weight", "shape"}});
  c.push_back({"matrix_with_rows_and_cols_swapped",
               "qwen3",
               [](TinyModel& m) {
                 TinyTensor* t = m.find("blk.2.attn_output.weight");
                 std::swap(t->dims[0], t->dims[1]);
               },
               {},
               Errc::corrupt,
               {"blk.2.attn_output.weight", "shape"}});
  c.push_back({"embedding_rows_differ_from_vocabulary",
               "gemma3",
               [](TinyModel& m) {
                 TinyTensor* t = m.find("token_embd.weight");
                 t->dims[1] -= 1;
                 t->values.resize(t->dims[0] * t->dims[1]);
               },
               {},
               Errc::corrupt,
               {"token_embd.weight"}});
  c.push_back({"unsupported_architecture",
               "llama",
               {},
               [](GgufWriter& w) { w.set_string("general.architecture", "mamba"); },
               Errc::unsupported,
               {"mamba"}});
  c.push_back({"norm_in_f16",
               "llama",
               [](TinyModel& m) { m.find("blk.0.ffn_norm.weight")->type = GgmlType::F16; },
               {},
               Errc::unsupported,
               {"blk.0.ffn_norm.weight", "f16"}});
  c.push_back({"matrix_of_uncomputable_type",
               "llama",
               [](TinyModel& m) {
                 // Q4_1 blocks: 32 weights in 20 bytes; icam has no kernels for them.
                 TinyTensor* t = m.find("blk.1.attn_v.weight");
                 t->type = GgmlType::Q4_1;
                 t->raw.assign(t->dims[0] / 32 * 20 * t->dims[1], 0);
               },
               {},
               Errc::unsupported,
               {"blk.1.attn_v.weight", "q4_1"}});
  c.push_back({"qwen2_without_bias",
               "qwen2",
               [](TinyModel& m) { m.remove("blk.0.attn_k.bias"); },
               {},
               Errc::corrupt,
               {"blk.0.attn_k.bias"}});
  c.push_back({"qwen3_without_qk_norm",
               "qwen3",
               [](TinyModel& m) { m.remove("blk.2.attn_q_norm.weight"); },
               {},
               Errc::corrupt,
               {"blk.2.attn_q_norm.weight"}});
  c.push_back({"gemma3_without_post_norm",
               "gemma3",
               [](TinyModel& m) { m.remove("blk.5.post_ffw_norm.weight"); },
               {},
               Errc::corrupt,
               {"blk.5.post_ffw_norm.weight"}});
  c.push_back({"gemma3_without_window",
               "gemma3",
               {},
               [](GgufWriter& w) { w.set_u32("gemma3.attention.sliding_window", 0); },
               Errc::corrupt,
               {"sliding_window"}});
  c.push_back({"kv_heads_do_not_divide_heads",
               "llama",
               {},
               [](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 3); },
               Errc::corrupt,
               {"head_count_kv"}});
  c.push_back({"zero_layers",
               "llama",
               {},
               [](GgufWriter& w) { w.set_u32("llama.block_count", 0); },
               Errc::corrupt,
               {"block_count"}});
  c.push_back({"no_vocabulary",
               "llama",
               {},
               [](GgufWriter& w) { w.set_string_array("tokenizer.ggml.tokens", {}); },
               Errc::corrupt,
               {"tokenizer.ggml.tokens"}});
  return c;
}

void PrintTo(const LoadCase& c, std::ostream* os) {
  *os << c.name;
}

class LoadRejects : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadRejects, WithMessageNamingTheProblem) {
  const LoadCase& c = GetParam();
  TinyModel tiny = make_tiny_model(tiny_spec(c.arch));
  if (c.damage) c.damage(tiny);
  auto model = load_tiny_model(tiny, c.edit);
  ASSERT_FALSE(model.ok()) << "loaded a model with " << c.name;
  EXPECT_EQ(model.error().code(), c.code) << model.error().message();
  for (const std::string& m : c.mentions) EXPECT_THAT(model.error().message(), HasSubstr(m));
}

INSTANTIATE_TEST_SUITE_P(Damage, LoadRejects, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<LoadCase>& p) {
                           return std::string(p.param.name);
                         });

TEST(LoadRejectsFile, MissingFileNamesThePath) {
  const std::string path = temp_model_path("does_not_exist");
  auto model = Model::load(path);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.error().message(), HasSubstr(path));
}

TEST(LoadRejectsFile, NotAGgufFile) {
  const std::string path = temp_model_path("garbage");
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const char junk[] = "this is not a model, just some text long enough to be read";
    std::fwrite(junk, 1, sizeof(junk), f);
    std::fclose(f);
  }
  auto model = Model::load(path);
  std::remove(path.c_str());
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.error().message(), HasSubstr(path));
}

// ----------------------------------------------------------------------------------------------
// Backend::forward.

class ForwardRejects : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = make_engine(tiny_spec("gemma3"), {.page_tokens = 4});
    ASSERT_TRUE(e.ok()) << e.error().message();
    engine_ = std::move(*e);
    table_ = std::make_unique<BlockTable>(engine_.pool());
    ASSERT_TRUE(table_->reserve(12).ok());
  }

  // Runs one step and expects an invalid_argument error mentioning every string given.
  void expect_error(std::span<const SequenceStep> batch, std::vector<std::string> mentions) {
    std::vector<float> logits;
    Status st = engine_.backend->forward(batch, logits);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), Errc::invalid_argument) << st.error().message();
    for (const std::string& m : mentions) EXPECT_THAT(st.error().message(), HasSubstr(m));
  }
  void expect_error(const SequenceStep& step, std::vector<std::string> mentions) {
    expect_error(std::span<const SequenceStep>(&step, 1), std::move(mentions));
  }

  TinyEngine engine_;
  std::unique_ptr<BlockTable> table_;
  std::vector<int32_t> tokens_ = {kTinyBos, 40, 41, 42, 43, 44};
};

TEST_F(ForwardRejects, EmptyBatch) {
  expect_error(std::span<const SequenceStep>(), {"empty"});
}

TEST_F(ForwardRejects, SequenceWithoutTokens) {
  expect_error(SequenceStep{{}, 0, table_->pages(), LogitsWanted::last},
               {"sequence 0", "no tokens"});
}

TEST_F(ForwardRejects, TokenIdOutOfRange) {
  std::vector<int32_t> bad = tokens_;
  bad[3] = kTinyVocab;
  expect_error(SequenceStep{bad, 0, table_->pages(), LogitsWanted::last},
               {"token 3", "300", "vocabulary"});
  bad[3] = -1;
  expect_error(SequenceStep{bad, 0, table_->pages(), LogitsWanted::last}, {"token 3", "-1"});
}

TEST_F(ForwardRejects, BlockTableTooShort) {
  // 6 tokens in pages of 4 need two pages.
  expect_error(SequenceStep{tokens_, 0, table_->pages().first(1), LogitsWanted::last},
               {"needs 2 pages", "has 1"});
  // A decode at position 8 needs a third page.
  const int32_t one = 40;
  expect_error(SequenceStep{std::span(&one, 1), 8, table_->pages().first(2), LogitsWanted::last},
               {"needs 3 pages"});
}

TEST_F(ForwardRejects, UnallocatedPages) {
  const int32_t free_page = engine_.pool().n_pages() - 1;  // handed out last, so still free
  ASSERT_FALSE(engine_.pool().valid(free_page));
  for (int32_t bad : {free_page, -3, engine_.pool().n_pages(), 1 << 30}) {
    std::vector<int32_t> pages(table_->pages().begin(), table_->pages().end());
    pages[1] = bad;
    SCOPED_TRACE(bad);
    expect_error(SequenceStep{tokens_, 0, pages, LogitsWanted::last},
                 {"entry 1", "page " + std::to_string(bad)});
  }
}

TEST_F(ForwardRejects, PositionsBeyondContext) {
  const int context = engine_.config().context_length;
  BlockTable big(engine_.pool());
  ASSERT_TRUE(big.reserve(context).ok());
  // Ends exactly at the context: fine. One more position: refused.
  std::vector<float> logits;
  const int32_t one = 40;
  EXPECT_TRUE(forward_one(*engine_.backend, std::span(&one, 1), context - 1, big.pages(),
                          LogitsWanted::last, logits)
                  .ok());
  expect_error(SequenceStep{std::span(&one, 1), context, big.pages(), LogitsWanted::last},
               {"context", std::to_string(context)});
  expect_error(SequenceStep{tokens_, context - 3, big.pages(), LogitsWanted::last}, {"context"});
  expect_error(SequenceStep{tokens_, -1, big.pages(), LogitsWanted::last}, {"position -1"});
  // Far past the end: the arithmetic must not wrap around into something acceptable.
  expect_error(SequenceStep{tokens_, INT32_MAX - 2, big.pages(), LogitsWanted::last}, {"context"});
}

// A step that fails validation writes nothing: a valid sequence earlier in the same batch leaves
// its pages as they were, and the backend works normally afterwards.
TEST_F(ForwardRejects, FailedStepWritesNothing) {
  KvPool& pool = engine_.pool();
  for (int32_t p : table_->pages()) std::memset(pool.page_data(p), 0x33, pool.page_bytes());
  std::vector<int32_t> bad = tokens_;
  bad.back() = kTinyVocab + 5;
  const SequenceStep batch[] = {{tokens_, 0, table_->pages(), LogitsWanted::last},
                                {bad, 0, table_->pages(), LogitsWanted::last}};
  expect_error(batch, {"sequence 1"});
  std::vector<uint8_t> pattern(pool.page_bytes(), 0x33);
  for (int32_t p : table_->pages())
    EXPECT_EQ(std::memcmp(pool.page_data(p), pattern.data(), pattern.size()), 0) << "page " << p;

  auto after = forward_all(*engine_.backend, tokens_);
  ASSERT_TRUE(after.ok());
  auto fresh = make_engine(tiny_spec("gemma3"));
  ASSERT_TRUE(fresh.ok());
  auto want = forward_all(*fresh->backend, tokens_);
  ASSERT_TRUE(want.ok());
  EXPECT_LT(logit_error(*after, *want), 1e-5);
}

TEST(CpuBackendCreate, RejectsBadPoolOptions) {
  auto model = load_tiny_model(make_tiny_model(tiny_spec("llama")));
  ASSERT_TRUE(model.ok()) << model.error().message();
  auto zero_pages =
      CpuBackend::create((*model)->config(), (*model)->weights(), KvPoolOptions{16, 16}, 1);
  ASSERT_FALSE(zero_pages.ok());
  EXPECT_THAT(zero_pages.error().message(), HasSubstr("less than one page"));
  auto bad_page =
      CpuBackend::create((*model)->config(), (*model)->weights(), KvPoolOptions{1 << 20, 0}, 1);
  ASSERT_FALSE(bad_page.ok());
  EXPECT_THAT(bad_page.error().message(), HasSubstr("page_tokens"));
}

// ----------------------------------------------------------------------------------------------
// generate().

class GenerateRejects : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = make_engine(tiny_spec("qwen2"), {.page_tokens = 8});
    ASSERT_TRUE(e.ok()) << e.error().message();
    engine_ = std::move(*e);
  }

  void expect_error(const GenerateRequest& request, Errc code, std::vector<std::string> mentions) {
    auto result = generate(*engine_.backend, engine_.model->tokenizer(), request);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), code) << result.error().message();
    for (const std::string& m : mentions) EXPECT_THAT(result.error().message(), HasSubstr(m));
    // Whatever failed, every page went back to the pool.
    EXPECT_EQ(engine_.pool().free_pages(), engine_.pool().n_pages());
  }

  GenerateRequest request() const {
    GenerateRequest r;
    r.prompt = {kTinyBos, 50, 60, 70};
    r.sampling.max_tokens = 4;
    return r;
  }

  TinyEngine engine_;
};

TEST_F(GenerateRejects, EmptyPrompt) {
  GenerateRequest r = request();
  r.prompt.clear();
  expect_error(r, Errc::invalid_argument, {"prompt", "empty"});
}

TEST_F(GenerateRejects, PromptFillingOrExceedingTheContext) {
  const int context = engine_.config().context_length;
  GenerateRequest r = request();
  r.prompt = TinyRandom(1).tokens(context, kTinyVocab);
  expect_error(r, Errc::invalid_argument, {std::to_string(context), "context"});
  r.prompt = TinyRandom(1).tokens(context + 44, kTinyVocab);
  expect_error(r, Errc::invalid_argument, {std::to_string(context + 44), "context"});
}

TEST_F(GenerateRejects, PromptTokenOutOfRange) {
  GenerateRequest r = request();
  r.prompt[2] = kTinyVocab + 1;
  expect_error(r, Errc::invalid_argument, {std::to_string(kTinyVocab + 1)});
}

TEST_F(GenerateRejects, OutOfRangeSamplingValues) {
  struct Bad {
    const char* field;
    std::function<void(SamplingParams&)> change;
  };
  const std::vector<Bad> bad = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.5f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = std::nanf(""); }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }},
      {"stop_tokens", [](SamplingParams& p) { p.stop_tokens = {-4}; }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = 21; }},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.field);
    GenerateRequest r = request();
    b.change(r.sampling);
    expect_error(r, Errc::invalid_argument, {b.field});
  }
}

TEST_F(GenerateRejects, NonPositivePrefillChunk) {
  GenerateRequest r = request();
  r.prefill_chunk = 0;
  expect_error(r, Errc::invalid_argument, {"prefill_chunk"});
  r.prefill_chunk = -8;
  expect_error(r, Errc::invalid_argument, {"prefill_chunk"});
}

// A pool too small for the prompt is an error, not a crash, and gives back what it took.
TEST(GenerateRejectsPool, PoolTooSmallForPrompt) {
  const TinySpec spec = tiny_spec("llama");
  auto probe = make_engine(spec, {.page_tokens = 4});
  ASSERT_TRUE(probe.ok());
  const uint64_t page_bytes = probe->pool().page_bytes();
  auto engine = make_engine(spec, {.page_tokens = 4, .kv_bytes = 3 * page_bytes});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  ASSERT_EQ(engine->pool().n_pages(), 3);
  GenerateRequest r;
  r.prompt = TinyRandom(2).tokens(20, kTinyVocab);
  r.prefill_chunk = 4;
  auto result = generate(*engine->backend, engine->model->tokenizer(), r);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), Errc::resource_exhausted) << result.error().message();
  EXPECT_EQ(engine->pool().free_pages(), 3);
}

}  // namespace
}  // namespace icam::llm::testing
