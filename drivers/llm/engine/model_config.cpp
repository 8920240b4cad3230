#include "drivers/llm/engine/model_config.h"

#include <cmath>

namespace icam::llm {

std::string_view architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::gemma3:
      return "gemma3";
    case Architecture::llama:
      return "llama";
    case Architecture::qwen2:
      return "qwen2";
    case Architecture::qwen3:
      return "qwen3";
  }
  return "?";
}

namespace {

Result<int> read_positive(const GgufFile& f, const std::string& key, uint32_t max) {
  uint32_t v = ICAM_TRY(f.get_u32(key));
  if (v == 0 || v > max)
    return make_error(Errc::corrupt, f.path(), ": metadata '", key, "' = ", v,
                      " is out of range (1..", max, ")");
  return static_cast<int>(v);
}

Result<int> read_optional_positive(const GgufFile& f, const std::string& key, int fallback,
                                   uint32_t max) {
  if (!f.find(key)) return fallback;
  return read_positive(f, key, max);
}

Result<float> read_optional_float(const GgufFile& f, const std::string& key, float fallback) {
  if (!f.find(key)) return fallback;
  float v = ICAM_TRY(f.get_float(key));
  if (!std::isfinite(v))
    return make_error(Errc::corrupt, f.path(), ": metadata '", key, "' is not finite");
  return v;
}

}  // namespace

Result<ModelConfig> read_model_config(const GgufFile& f) {
  const std::string arch_name(ICAM_TRY(f.get_string("general.architecture")));
  ModelConfig c;
  if (arch_name == "gemma3") {
    c.arch = Architecture::gemma3;
  } else if (arch_name == "llama") {
    c.arch = Architecture::llama;
  } else if (arch_name == "qwen2") {
    c.arch = Architecture::qwen2;
  } else if (arch_name == "qwen3") {
    c.arch = Architecture::qwen3;
  } else {
    return make_error(Errc::unsupported, f.path(), ": architecture '", arch_name,
                      "' is not supported (supported: gemma3, llama, qwen2, qwen3)");
  }
  const std::string p = arch_name + ".";
  constexpr uint32_t kMaxDim = 1u << 20;
  c.n_layers = ICAM_TRY(read_positive(f, p + "block_count", 4096));
  c.d_model = ICAM_TRY(read_positive(f, p + "embedding_length", kMaxDim));
  c.d_ffn = ICAM_TRY(read_positive(f, p + "feed_forward_length", kMaxDim));
  c.n_heads = ICAM_TRY(read_positive(f, p + "attention.head_count", 4096));
  c.n_kv_heads =
      ICAM_TRY(read_optional_positive(f, p + "attention.head_count_kv", c.n_heads, 4096));
  if (c.n_heads % c.n_kv_heads != 0)
    return make_error(Errc::corrupt, f.path(), ": head_count ", c.n_heads,
                      " is not a multiple of head_count_kv ", c.n_kv_heads);
  if (c.d_model % c.n_heads != 0 && !f.find(p + "attention.key_length"))
    return make_error(Errc::corrupt, f.path(), ": embedding_length ", c.d_model,
                      " is not a multiple of head_count ", c.n_heads);
  const int default_head = c.d_model / c.n_heads;
  c.head_dim = ICAM_TRY(read_optional_positive(f, p + "attention.key_length", default_head, 4096));
  if (c.head_dim <= 0 || c.head_dim > 4096)
    return make_error(Errc::unsupported, f.path(), ": head dimension ", c.head_dim,
                      " is out of range (1..4096)");
  const int value_dim =
      ICAM_TRY(read_optional_positive(f, p + "attention.value_length", c.head_dim, 4096));
  if (value_dim != c.head_dim)
    return make_error(Errc::unsupported, f.path(), ": key_length ", c.head_dim,
                      " differs from value_length ", value_dim);
  if (c.head_dim % 2 != 0)
    return make_error(Errc::corrupt, f.path(), ": head dimension ", c.head_dim, " is odd");
  c.context_length = ICAM_TRY(read_optional_positive(f, p + "context_length", 4096, 1u << 24));
  c.rms_eps = ICAM_TRY(read_optional_float(f, p + "attention.layer_norm_rms_epsilon", 1e-6f));
  if (!(c.rms_eps > 0 && c.rms_eps < 1))
    return make_error(Errc::corrupt, f.path(), ": layer_norm_rms_epsilon ", c.rms_eps,
                      " is out of range");
  c.rope_base = ICAM_TRY(read_optional_float(f, p + "rope.freq_base", 10000.0f));
  if (!(c.rope_base > 1))
    return make_error(Errc::corrupt, f.path(), ": rope.freq_base ", c.rope_base, " must be > 1");
  if (f.find(p + "rope.scaling.type")) {
    const std::string_view type = ICAM_TRY(f.get_string(p + "rope.scaling.type"));
    if (type == "linear") {
      float factor = ICAM_TRY(read_optional_float(f, p + "rope.scaling.factor", 1.0f));
      if (!(factor > 0))
        return make_error(Errc::corrupt, f.path(), ": rope.scaling.factor must be positive");
      c.rope_scale = 1.0f / factor;
    } else if (type != "none") {
      return make_error(Errc::unsupported, f.path(), ": rope.scaling.type '", type,
                        "' is not supported (none, linear)");
    }
  }
  c.attention_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  c.layer_is_local.assign(c.n_layers, false);

  switch (c.arch) {
    case Architecture::gemma3: {
      // Gemma 3 interleaves five sliding-window layers with one global layer; the local layers
      // use their own RoPE base of 10,000 and no position scaling.
      c.rope_style = RopeStyle::halves;
      c.activation = FfnActivation::gelu_tanh;
      c.embedding_scale = std::sqrt(static_cast<float>(c.d_model));
      c.qk_norm = true;
      c.post_norms = true;
      c.sliding_window =
          ICAM_TRY(read_optional_positive(f, p + "attention.sliding_window", 0, 1u << 24));
      if (c.sliding_window == 0)
        return make_error(Errc::corrupt, f.path(), ": gemma3 needs attention.sliding_window");
      for (int l = 0; l < c.n_layers; ++l) c.layer_is_local[l] = (l + 1) % 6 != 0;
      // Gemma 3 27B was trained with query_pre_attn_scalar = d_model / n_heads rather than the
      // head size. GGUF does not record the scalar; the 27B is the only one with 62 layers.
      if (c.n_layers == 62)
        c.attention_scale = 1.0f / std::sqrt(static_cast<float>(c.d_model / c.n_heads));
      c.rope_base_local = 10000.0f;
      break;
    }
    case Architecture::llama:
      c.rope_style = RopeStyle::interleaved;
      c.activation = FfnActivation::silu;
      break;
    case Architecture::qwen2:
      c.rope_style = RopeStyle::halves;
      c.activation = FfnActivation::silu;
      c.attention_bias = true;
      break;
    case Architecture::qwen3:
      c.rope_style = RopeStyle::halves;
      c.activation = FfnActivation::silu;
      c.qk_norm = true;
      break;
  }

  if (const auto* tokens = f.find("tokenizer.ggml.tokens"); tokens && tokens->is_array()) {
    c.n_vocab = static_cast<int>(tokens->size());
  }
  if (c.n_vocab <= 0)
    return make_error(Errc::corrupt, f.path(),
                      ": metadata 'tokenizer.ggml.tokens' is missing or empty");
  return c;
}

}  // namespace icam::llm
