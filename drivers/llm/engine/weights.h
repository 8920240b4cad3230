// The tensors of a model, bound by name from a GGUF file and checked against the configuration.
// A missing tensor, a wrong shape or an element type icam cannot compute is an error at load
// time, so the first forward step never meets a surprise.
#pragma once

#include <vector>

#include "drivers/llm/engine/model_config.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm {

// A weight matrix of `rows` outputs by `cols` inputs (GGUF dims {cols, rows}), or a vector
// (rows == 1). `data` points into the memory-mapped file.
struct Weight {
  const void* data = nullptr;
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  explicit operator bool() const { return data != nullptr; }
  const float* f32() const { return static_cast<const float*>(data); }
};

struct LayerWeights {
  Weight attn_norm, wq, wk, wv, wo;
  Weight bq, bk, bv;      // qwen2
  Weight q_norm, k_norm;  // gemma3, qwen3
  Weight post_attn_norm;  // gemma3
  Weight ffn_norm, w_gate, w_up, w_down;
  Weight post_ffn_norm;  // gemma3
};

struct ModelWeights {
  Weight token_embedding;  // rows = n_vocab, cols = d_model
  Weight output_norm;
  Weight output;      // the token embedding when the model ties them
  Weight rope_freqs;  // optional per-pair RoPE frequency divisors (Llama 3.1+)
  std::vector<LayerWeights> layers;
};

Result<ModelWeights> bind_weights(const GgufFile& file, const ModelConfig& config);

}  // namespace icam::llm
