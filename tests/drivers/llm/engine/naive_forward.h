// An independent, deliberately plain implementation of the four supported architectures, used as
// the reference the engine's logits are checked against.
//
// It shares only the weight bytes with the engine: tensors are found by name in the GGUF file and
// dequantized, the hyper-parameters come from the TinySpec the test built the model from (not from
// read_model_config), and all arithmetic is done in double over whole sequences, with keys and
// values kept exactly (no f16 cache, no activation quantization, no paging). What each
// architecture means is written out here a second time, from the model definitions:
//   - RMSNorm x / sqrt(mean(x^2) + eps) * w (Gemma's files store 1 + w already);
//   - rotary embeddings with theta_i = pos * base^(-2i / head_dim), rotating (2i, 2i+1) for llama
//     and (i, i + head_dim/2) for gemma3, qwen2 and qwen3;
//   - grouped-query attention, query head h reading key/value head h / (n_heads / n_kv_heads);
//   - causal softmax attention with q.k / sqrt(head_dim);
//   - rope_freqs.weight, when the file has it (Llama 3.1 and later): pair i's frequency divided by
//     factor i;
//   - gemma3: embeddings times sqrt(d_model), per-head q/k norms, norms after attention and after
//     the FFN, GELU(tanh)-gated FFN, layer l local unless (l + 1) % 6 == 0, local layers see the
//     last `sliding_window` positions (themselves included) and use RoPE base 10000 unscaled,
//     global layers use the file's base with linear position scaling; the 62-layer model (Gemma 3
//     27B) scales q.k by 1/sqrt(d_model / n_heads), its query_pre_attn_scalar, which the file
//     does not record (llama.cpp recognises the model by its layer count the same way);
//   - qwen2: q/k/v biases; qwen3: per-head q/k norms; llama, qwen: SiLU-gated FFN;
//   - output projection by output.weight, or the token embedding when the file has none.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/gguf.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {

// Deliberate departures from the true model. The tests use them to show that the comparison with
// the engine notices each kind of mistake an implementation could make.
struct ReferenceFault {
  bool swap_rope_style = false;  // interleaved <-> halves
  bool skip_qk_norm = false;
  bool skip_post_norms = false;
  bool skip_attention_bias = false;
  bool skip_embedding_scale = false;
  bool swap_activation = false;    // GELU <-> SiLU
  bool no_sliding_window = false;  // local layers attend to everything
  int window_delta = 0;            // local layers see sliding_window + delta positions
  bool local_layers_use_global_rope = false;
  bool ignore_rope_scaling = false;
  bool interleave_kv_heads = false;  // query head h reads kv head h % n_kv_heads
  bool unscaled_attention = false;   // q.k without the 1/sqrt(head_dim)
};

class NaiveModel {
 public:
  // Dequantizes every tensor the spec's architecture uses; not_found names a missing one.
  static Result<NaiveModel> create(const TinySpec& spec, const GgufFile& file);

  // Logits for every position of `tokens` processed from position 0: tokens.size() rows of
  // n_vocab values.
  std::vector<double> forward(std::span<const int32_t> tokens,
                              const ReferenceFault& fault = {}) const;

  int n_vocab() const { return n_vocab_; }

 private:
  struct Matrix {
    int rows = 0;
    int cols = 0;
    std::vector<double> w;  // row-major
  };
  struct Layer {
    std::vector<double> attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;
    std::vector<double> bq, bk, bv;
    Matrix wq, wk, wv, wo, gate, up, down;
  };

  static std::vector<double> matvec(const Matrix& m, const std::vector<double>& x);

  TinySpec spec_;
  int n_vocab_ = 0;
  Matrix embedding_;
  Matrix output_;
  std::vector<double> output_norm_;
  std::vector<double> rope_freq_factors_;  // empty: all 1
  std::vector<Layer> layers_;
};

}  // namespace icam::llm::testing
