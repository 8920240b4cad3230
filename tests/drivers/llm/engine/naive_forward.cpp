#include "tests/drivers/llm/engine/naive_forward.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "drivers/llm/quant/quant.h"

namespace icam::llm::testing {
namespace {

// The tensor's elements as doubles, whatever its element type; the shape is checked against
// what the spec says it must be, so a reference built from the wrong file fails loudly.
Result<std::vector<double>> read_tensor(const GgufFile& file, const std::string& name,
                                        uint64_t cols, uint64_t rows) {
  const GgufTensor* t = file.find_tensor(name);
  if (!t) return make_error(Errc::not_found, "reference: tensor '", name, "' is missing");
  if (t->dims[0] != cols || t->rows() != rows)
    return make_error(Errc::corrupt, "reference: tensor '", name, "' has an unexpected shape");
  std::vector<float> row(cols);
  std::vector<double> out;
  out.reserve(cols * rows);
  const uint64_t row_bytes = ggml_row_bytes(t->type, cols);
  for (uint64_t r = 0; r < rows; ++r) {
    dequantize_row(t->type, t->data + r * row_bytes, row.data(), static_cast<int64_t>(cols));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w,
                             double eps) {
  double sum = 0;
  for (double v : x) sum += v * v;
  const double inv = 1.0 / std::sqrt(sum / static_cast<double>(x.size()) + eps);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * w[i];
  return out;
}

// Normalises each head_dim-long slice of `x` on its own, with the same weight.
void rms_norm_heads(std::vector<double>& x, int head_dim, const std::vector<double>& w,
                    double eps) {
  for (size_t h = 0; h * head_dim < x.size(); ++h) {
    std::vector<double> head(x.begin() + h * head_dim, x.begin() + (h + 1) * head_dim);
    head = rms_norm(head, w, eps);
    std::copy(head.begin(), head.end(), x.begin() + h * head_dim);
  }
}

// Rotates every head of `x` by the angles of position `pos` (already scaled), pair i's frequency
// divided by factors[i] when there are factors.
void rotate(std::vector<double>& x, int head_dim, double pos, double base, bool halves,
            const std::vector<double>& factors) {
  const int half = head_dim / 2;
  for (size_t h = 0; h * head_dim < x.size(); ++h) {
    double* v = x.data() + h * head_dim;
    for (int i = 0; i < half; ++i) {
      double theta = pos * std::pow(base, -2.0 * i / head_dim);
      if (!factors.empty()) theta /= factors[i];
      const int a = halves ? i : 2 * i;
      const int b = halves ? i + half : 2 * i + 1;
      const double x0 = v[a], x1 = v[b];
      v[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

double silu(double x) {
  return x / (1.0 + std::exp(-x));
}

}  // namespace

Result<NaiveModel> NaiveModel::create(const TinySpec& s, const GgufFile& file) {
  NaiveModel m;
  m.spec_ = s;
  m.n_vocab_ = kTinyVocab;
  const uint64_t d = s.d_model, q_dim = s.n_heads * s.head_dim, kv_dim = s.n_kv_heads * s.head_dim;
  auto matrix = [&](const std::string& name, uint64_t rows, uint64_t cols) -> Result<Matrix> {
    Matrix mat{static_cast<int>(rows), static_cast<int>(cols), {}};
    mat.w = ICAM_TRY(read_tensor(file, name, cols, rows));
    return mat;
  };
  auto vector = [&](const std::string& name, uint64_t n) { return read_tensor(file, name, n, 1); };

  m.embedding_ = ICAM_TRY(matrix("token_embd.weight", m.n_vocab_, d));
  m.output_norm_ = ICAM_TRY(vector("output_norm.weight", d));
  if (file.find_tensor("output.weight"))
    m.output_ = ICAM_TRY(matrix("output.weight", m.n_vocab_, d));
  else
    m.output_ = m.embedding_;

  if (file.find_tensor("rope_freqs.weight"))
    m.rope_freq_factors_ = ICAM_TRY(vector("rope_freqs.weight", s.head_dim / 2));

  const bool gemma = s.arch == "gemma3";
  const bool qk_norm = gemma || s.arch == "qwen3";
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer L;
    L.attn_norm = ICAM_TRY(vector(p + "attn_norm.weight", d));
    L.wq = ICAM_TRY(matrix(p + "attn_q.weight", q_dim, d));
    L.wk = ICAM_TRY(matrix(p + "attn_k.weight", kv_dim, d));
    L.wv = ICAM_TRY(matrix(p + "attn_v.weight", kv_dim, d));
    L.wo = ICAM_TRY(matrix(p + "attn_output.weight", d, q_dim));
    if (s.arch == "qwen2") {
      L.bq = ICAM_TRY(vector(p + "attn_q.bias", q_dim));
      L.bk = ICAM_TRY(vector(p + "attn_k.bias", kv_dim));
      L.bv = ICAM_TRY(vector(p + "attn_v.bias", kv_dim));
    }
    if (qk_norm) {
      L.q_norm = ICAM_TRY(vector(p + "attn_q_norm.weight", s.head_dim));
      L.k_norm = ICAM_TRY(vector(p + "attn_k_norm.weight", s.head_dim));
    }
    if (gemma) {
      L.post_attn_norm = ICAM_TRY(vector(p + "post_attention_norm.weight", d));
      L.post_ffn_norm = ICAM_TRY(vector(p + "post_ffw_norm.weight", d));
    }
    L.ffn_norm = ICAM_TRY(vector(p + "ffn_norm.weight", d));
    L.gate = ICAM_TRY(matrix(p + "ffn_gate.weight", s.d_ffn, d));
    L.up = ICAM_TRY(matrix(p + "ffn_up.weight", s.d_ffn, d));
    L.down = ICAM_TRY(matrix(p + "ffn_down.weight", d, s.d_ffn));
    m.layers_.push_back(std::move(L));
  }
  return m;
}

std::vector<double> NaiveModel::matvec(const Matrix& m, const std::vector<double>& x) {
  std::vector<double> y(m.rows, 0.0);
  for (int r = 0; r < m.rows; ++r) {
    const double* row = m.w.data() + static_cast<size_t>(r) * m.cols;
    const double* in = x.data();
    double sum = 0;
    for (int c = 0; c < m.cols; ++c) sum += row[c] * in[c];
    y[r] = sum;
  }
  return y;
}

std::vector<double> NaiveModel::forward(std::span<const int32_t> tokens,
                                        const ReferenceFault& fault) const {
  const TinySpec& s = spec_;
  const int T = static_cast<int>(tokens.size());
  const int d = s.d_model, hd = s.head_dim;
  const bool gemma = s.arch == "gemma3";
  const bool qk_norm = (gemma || s.arch == "qwen3") && !fault.skip_qk_norm;
  const bool halves = (s.arch != "llama") != fault.swap_rope_style;
  const bool gelu = gemma != fault.swap_activation;
  const double eps = s.rms_eps;

  // The residual stream of every position.
  std::vector<std::vector<double>> x(T, std::vector<double>(d));
  const double emb_scale = gemma && !fault.skip_embedding_scale ? std::sqrt(double(d)) : 1.0;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < d; ++i)
      x[t][i] = embedding_.w[static_cast<size_t>(tokens[t]) * d + i] * emb_scale;

  for (int l = 0; l < s.n_layers; ++l) {
    const Layer& L = layers_[l];
    const bool local = gemma && (l + 1) % 6 != 0;
    double base = s.rope_base;
    double pos_scale =
        s.rope_linear_factor > 0 && !fault.ignore_rope_scaling ? 1.0 / s.rope_linear_factor : 1.0;
    if (local && !fault.local_layers_use_global_rope) {
      base = 10000.0;
      pos_scale = 1.0;
    }

    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      const std::vector<double> h = rms_norm(x[t], L.attn_norm, eps);
      q[t] = matvec(L.wq, h);
      k[t] = matvec(L.wk, h);
      v[t] = matvec(L.wv, h);
      if (!L.bq.empty() && !fault.skip_attention_bias) {
        for (size_t i = 0; i < q[t].size(); ++i) q[t][i] += L.bq[i];
        for (size_t i = 0; i < k[t].size(); ++i) k[t][i] += L.bk[i];
        for (size_t i = 0; i < v[t].size(); ++i) v[t][i] += L.bv[i];
      }
      if (qk_norm) {
        rms_norm_heads(q[t], hd, L.q_norm, eps);
        rms_norm_heads(k[t], hd, L.k_norm, eps);
      }
      rotate(q[t], hd, t * pos_scale, base, halves, rope_freq_factors_);
      rotate(k[t], hd, t * pos_scale, base, halves, rope_freq_factors_);
    }

    int window = 0;  // 0: the whole causal prefix
    if (local && !fault.no_sliding_window) window = s.sliding_window + fault.window_delta;
    const double scale_dim = gemma && s.n_layers == 62 ? double(d) / s.n_heads : double(hd);
    const double scale = fault.unscaled_attention ? 1.0 : 1.0 / std::sqrt(scale_dim);
    const int group = s.n_heads / s.n_kv_heads;

    for (int t = 0; t < T; ++t) {
      std::vector<double> attn(static_cast<size_t>(s.n_heads) * hd, 0.0);
      const int first = window > 0 ? std::max(0, t - window + 1) : 0;
      for (int h = 0; h < s.n_heads; ++h) {
        const int kvh = fault.interleave_kv_heads ? h % s.n_kv_heads : h / group;
        std::vector<double> score(t - first + 1);
        double best = -INFINITY;
        for (int j = first; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += q[t][h * hd + i] * k[j][kvh * hd + i];
          score[j - first] = dot * scale;
          best = std::max(best, score[j - first]);
        }
        double total = 0;
        for (double& sc : score) total += (sc = std::exp(sc - best));
        for (int j = first; j <= t; ++j)
          for (int i = 0; i < hd; ++i)
            attn[h * hd + i] += score[j - first] / total * v[j][kvh * hd + i];
      }
      std::vector<double> o = matvec(L.wo, attn);
      if (gemma && !fault.skip_post_norms) o = rms_norm(o, L.post_attn_norm, eps);
      for (int i = 0; i < d; ++i) x[t][i] += o[i];
    }

    for (int t = 0; t < T; ++t) {
      const std::vector<double> h = rms_norm(x[t], L.ffn_norm, eps);
      std::vector<double> g = matvec(L.gate, h);
      const std::vector<double> u = matvec(L.up, h);
      for (size_t i = 0; i < g.size(); ++i) g[i] = (gelu ? gelu_tanh(g[i]) : silu(g[i])) * u[i];
      std::vector<double> f = matvec(L.down, g);
      if (gemma && !fault.skip_post_norms) f = rms_norm(f, L.post_ffn_norm, eps);
      for (int i = 0; i < d; ++i) x[t][i] += f[i];
    }
  }

  std::vector<double> logits;
  logits.reserve(static_cast<size_t>(T) * n_vocab_);
  for (int t = 0; t < T; ++t) {
    const std::vector<double> row = matvec(output_, rms_norm(x[t], output_norm_, eps));
    logits.insert(logits.end(), row.begin(), row.end());
  }
  return logits;
}

}  // namespace icam::llm::testing
