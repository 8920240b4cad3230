#include "memory/model_identity.h"

#include <algorithm>

namespace icam::memory {
namespace {

constexpr uint64_t kWindow = 4096;

void hash_config(Sha256& h, const llm::ModelConfig& c) {
  h.str(llm::architecture_name(c.arch));
  h.u32(c.n_layers).u32(c.d_model).u32(c.d_ffn).u32(c.n_heads).u32(c.n_kv_heads).u32(c.head_dim);
  h.u32(c.n_vocab).u32(c.context_length);
  h.f32(c.rms_eps).f32(c.rope_base).f32(c.rope_base_local).f32(c.rope_scale);
  h.u32(static_cast<uint32_t>(c.rope_style)).u32(static_cast<uint32_t>(c.activation));
  h.f32(c.attention_scale).f32(c.embedding_scale).u32(c.sliding_window);
  h.u64(c.layer_is_local.size());
  for (bool local : c.layer_is_local) h.u32(local ? 1 : 0);
  h.u32(c.qk_norm ? 1 : 0).u32(c.post_norms ? 1 : 0).u32(c.attention_bias ? 1 : 0);
}

}  // namespace

ModelIdentity config_identity(const llm::ModelConfig& config) {
  Sha256 h;
  h.str("icam model config v1");
  hash_config(h, config);
  return {h.finish()};
}

ModelIdentity model_identity(const llm::GgufFile& file, const llm::ModelConfig& config) {
  Sha256 h;
  h.str("icam model identity v1");
  hash_config(h, config);
  h.u64(file.tensors().size());
  for (const llm::GgufTensor& t : file.tensors()) {
    h.str(t.name).u32(static_cast<uint32_t>(t.type)).u64(t.dims.size());
    for (uint64_t d : t.dims) h.u64(d);
    h.u64(t.n_bytes).u64(t.offset - file.data_offset());
    if (t.n_bytes <= 3 * kWindow) {
      h.bytes({t.data, t.n_bytes});
    } else {
      const uint64_t middle = (t.n_bytes / 2) & ~(kWindow - 1);
      h.bytes({t.data, kWindow});
      h.bytes({t.data + middle, kWindow});
      h.bytes({t.data + t.n_bytes - kWindow, kWindow});
    }
  }
  return {h.finish()};
}

}  // namespace icam::memory
