#include "drivers/llm/engine/weights.h"

#include <string>

#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

enum class Need { required, optional };

// Binds `name` and checks that it is a matrix of rows×cols (or a vector of `cols` when rows is 0)
// whose element type can be computed; vectors (norms, biases) must be F32.
Result<Weight> bind_tensor(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols,
                           Need need) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) {
    if (need == Need::optional) return Weight{};
    return make_error(Errc::corrupt, f.path(), ": tensor '", name, "' is missing");
  }
  const bool vector = rows == 0;
  const size_t want_rank = vector ? 1 : 2;
  bool shape_ok = t->dims.size() == want_rank && t->dims[0] == static_cast<uint64_t>(cols) &&
                  (vector || t->dims[1] == static_cast<uint64_t>(rows));
  if (!shape_ok) {
    std::string got;
    for (size_t i = 0; i < t->dims.size(); ++i) got += (i ? ", " : "") + std::to_string(t->dims[i]);
    return make_error(Errc::corrupt, f.path(), ": tensor '", name, "' has shape [", got,
                      "], expected [", cols, vector ? "" : ", " + std::to_string(rows), "]");
  }
  if (vector ? t->type != GgmlType::F32 : !is_computable(t->type))
    return make_error(Errc::unsupported, f.path(), ": tensor '", name, "' has element type ",
                      ggml_type_name(t->type),
                      vector ? ", expected f32" : ", which icam cannot compute");
  Weight w;
  w.data = t->data;
  w.type = t->type;
  w.rows = vector ? 1 : rows;
  w.cols = cols;
  return w;
}

}  // namespace

Result<ModelWeights> bind_weights(const GgufFile& f, const ModelConfig& c) {
  ModelWeights m;
  m.token_embedding =
      ICAM_TRY(bind_tensor(f, "token_embd.weight", c.n_vocab, c.d_model, Need::required));
  m.output_norm = ICAM_TRY(bind_tensor(f, "output_norm.weight", 0, c.d_model, Need::required));
  m.output = ICAM_TRY(bind_tensor(f, "output.weight", c.n_vocab, c.d_model, Need::optional));
  if (!m.output) m.output = m.token_embedding;  // tied embeddings
  m.rope_freqs = ICAM_TRY(bind_tensor(f, "rope_freqs.weight", 0, c.head_dim / 2, Need::optional));

  const bool bias = c.attention_bias;
  const Need qk = c.qk_norm ? Need::required : Need::optional;
  const Need post = c.post_norms ? Need::required : Need::optional;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = ICAM_TRY(bind_tensor(f, p + "attn_norm.weight", 0, c.d_model, Need::required));
    w.wq = ICAM_TRY(bind_tensor(f, p + "attn_q.weight", c.q_dim(), c.d_model, Need::required));
    w.wk = ICAM_TRY(bind_tensor(f, p + "attn_k.weight", c.kv_dim(), c.d_model, Need::required));
    w.wv = ICAM_TRY(bind_tensor(f, p + "attn_v.weight", c.kv_dim(), c.d_model, Need::required));
    w.wo = ICAM_TRY(bind_tensor(f, p + "attn_output.weight", c.d_model, c.q_dim(), Need::required));
    if (bias) {
      w.bq = ICAM_TRY(bind_tensor(f, p + "attn_q.bias", 0, c.q_dim(), Need::required));
      w.bk = ICAM_TRY(bind_tensor(f, p + "attn_k.bias", 0, c.kv_dim(), Need::required));
      w.bv = ICAM_TRY(bind_tensor(f, p + "attn_v.bias", 0, c.kv_dim(), Need::required));
    }
    if (c.qk_norm) {
      w.q_norm = ICAM_TRY(bind_tensor(f, p + "attn_q_norm.weight", 0, c.head_dim, qk));
      w.k_norm = ICAM_TRY(bind_tensor(f, p + "attn_k_norm.weight", 0, c.head_dim, qk));
    }
    if (c.post_norms) {
      w.post_attn_norm =
          ICAM_TRY(bind_tensor(f, p + "post_attention_norm.weight", 0, c.d_model, post));
      w.post_ffn_norm = ICAM_TRY(bind_tensor(f, p + "post_ffw_norm.weight", 0, c.d_model, post));
    }
    w.ffn_norm = ICAM_TRY(bind_tensor(f, p + "ffn_norm.weight", 0, c.d_model, Need::required));
    w.w_gate = ICAM_TRY(bind_tensor(f, p + "ffn_gate.weight", c.d_ffn, c.d_model, Need::required));
    w.w_up = ICAM_TRY(bind_tensor(f, p + "ffn_up.weight", c.d_ffn, c.d_model, Need::required));
    w.w_down = ICAM_TRY(bind_tensor(f, p + "ffn_down.weight", c.d_model, c.d_ffn, Need::required));
    m.layers.push_back(w);
  }
  return m;
}

}  // namespace icam::llm
