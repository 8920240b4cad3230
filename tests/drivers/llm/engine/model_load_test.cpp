// Model::load on valid tiny models: the configuration read from the metadata is what the test
// wrote, per architecture, and the other parts of a model (tokenizer, chat format, weight
// traffic) come with it.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {
namespace {

class ModelLoad : public ::testing::TestWithParam<const char*> {};

TEST_P(ModelLoad, ConfigurationIsWhatWasWritten) {
  const TinySpec spec = tiny_spec(GetParam());
  auto model = Model::load(tiny_model_file(spec));
  ASSERT_TRUE(model.ok()) << model.error().message();
  const ModelConfig& c = (*model)->config();
  EXPECT_EQ(architecture_name(c.arch), spec.arch);
  EXPECT_EQ(c.n_layers, spec.n_layers);
  EXPECT_EQ(c.d_model, spec.d_model);
  EXPECT_EQ(c.d_ffn, spec.d_ffn);
  EXPECT_EQ(c.n_heads, spec.n_heads);
  EXPECT_EQ(c.n_kv_heads, spec.n_kv_heads);
  EXPECT_EQ(c.head_dim, spec.head_dim);
  EXPECT_EQ(c.n_vocab, kTinyVocab);
  EXPECT_EQ(c.context_length, spec.context_length);
  EXPECT_FLOAT_EQ(c.rms_eps, spec.rms_eps);
  EXPECT_FLOAT_EQ(c.rope_base, spec.rope_base);
  EXPECT_FLOAT_EQ(c.attention_scale, 1.0f / std::sqrt(static_cast<float>(spec.head_dim)));

  const bool gemma = spec.arch == "gemma3";
  EXPECT_EQ(c.rope_style, spec.arch == "llama" ? RopeStyle::interleaved : RopeStyle::halves);
  EXPECT_EQ(c.activation, gemma ? FfnActivation::gelu_tanh : FfnActivation::silu);
  EXPECT_EQ(c.qk_norm, gemma || spec.arch == "qwen3");
  EXPECT_EQ(c.post_norms, gemma);
  EXPECT_EQ(c.attention_bias, spec.arch == "qwen2");
  EXPECT_FLOAT_EQ(c.embedding_scale, gemma ? std::sqrt(static_cast<float>(spec.d_model)) : 1.0f);
  ASSERT_EQ(c.layer_is_local.size(), static_cast<size_t>(spec.n_layers));
  for (int l = 0; l < spec.n_layers; ++l)
    EXPECT_EQ(c.layer_is_local[l], gemma && l != 5) << "layer " << l;
  if (gemma) {
    EXPECT_EQ(c.sliding_window, spec.sliding_window);
    EXPECT_FLOAT_EQ(c.rope_base_local, 10000.0f);
    EXPECT_FLOAT_EQ(c.rope_scale, 1.0f / spec.rope_linear_factor);
  } else {
    EXPECT_FLOAT_EQ(c.rope_scale, 1.0f);
  }

  EXPECT_EQ((*model)->tokenizer().vocab_size(), kTinyVocab);
  EXPECT_EQ((*model)->tokenizer().bos(), kTinyBos);
  EXPECT_EQ((*model)->tokenizer().eos(), kTinyEos);
  EXPECT_EQ((*model)->chat_family(), gemma ? ChatFamily::gemma : ChatFamily::chatml);
}

// Every tensor is read once per decoded token, except the token embedding, of which only a row is
// read, unless it doubles as the output projection.
TEST_P(ModelLoad, WeightBytesPerToken) {
  const TinySpec spec = tiny_spec(GetParam(), GgmlType::Q8_0);
  auto model = Model::load(tiny_model_file(spec));
  ASSERT_TRUE(model.ok()) << model.error().message();
  uint64_t all = 0, embedding = 0;
  for (const GgufTensor& t : (*model)->file().tensors()) {
    all += t.n_bytes;
    if (t.name == "token_embd.weight") embedding = t.n_bytes;
  }
  ASSERT_GT(embedding, 0u);
  EXPECT_EQ((*model)->weight_bytes_per_token(), spec.tied_output ? all : all - embedding);
}

INSTANTIATE_TEST_SUITE_P(Architectures, ModelLoad,
                         ::testing::Values("gemma3", "llama", "qwen2", "qwen3"));

}  // namespace
}  // namespace icam::llm::testing
