// The hyper-parameters of a supported architecture, read from GGUF metadata and checked for
// consistency before any weight is touched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/gguf/gguf.h"

namespace icam::llm {

enum class Architecture { gemma3, llama, qwen2, qwen3 };
std::string_view architecture_name(Architecture arch);

// How rotary embeddings pair dimensions: `interleaved` rotates (0,1),(2,3),... (llama);
// `halves` rotates (i, i + d/2) (GPT-NeoX style; gemma3, qwen2, qwen3).
enum class RopeStyle { interleaved, halves };

enum class FfnActivation { gelu_tanh, silu };

struct ModelConfig {
  Architecture arch = Architecture::llama;
  int n_layers = 0;
  int d_model = 0;
  int d_ffn = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // key and value length per head (icam requires them equal)
  int n_vocab = 0;
  int context_length = 0;
  float rms_eps = 1e-6f;
  float rope_base = 10000.0f;        // global attention layers
  float rope_base_local = 10000.0f;  // sliding-window layers (gemma3)
  float rope_scale = 1.0f;           // linear position scaling for global layers (1 = none)
  RopeStyle rope_style = RopeStyle::interleaved;
  FfnActivation activation = FfnActivation::silu;
  float attention_scale = 0;         // multiplies q·k
  float embedding_scale = 1.0f;      // gemma multiplies token embeddings by sqrt(d_model)
  int sliding_window = 0;            // 0 = every layer attends to the whole context
  std::vector<bool> layer_is_local;  // true: sliding-window layer
  bool qk_norm = false;              // per-head RMSNorm of q and k (gemma3, qwen3)
  bool post_norms = false;           // RMSNorm after attention and after the FFN (gemma3)
  bool attention_bias = false;       // q/k/v biases (qwen2)

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the configuration. Unknown architectures are Errc::unsupported; missing or
// inconsistent hyper-parameters are Errc::corrupt, naming the key.
Result<ModelConfig> read_model_config(const GgufFile& file);

}  // namespace icam::llm
