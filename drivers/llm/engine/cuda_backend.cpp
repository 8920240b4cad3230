#include "drivers/llm/engine/cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <utility>

#include "common/log.h"
#include "common/thread_pool.h"
#include "drivers/llm/engine/ops.h"
#include "drivers/llm/quant/quant.h"
#include "gpu/cuda_device.h"
#include "gpu/dequantize.h"
#include "gpu/device_memory.h"
#include "gpu/matmul.h"
#include "gpu/ops.h"
#include "gpu/weight_format.h"

namespace icam::llm {
namespace {

// Device addresses in the one buffer holding every weight are aligned to this (cudaMalloc's own
// alignment), so float4 loads and half loads of any tensor are aligned.
constexpr uint64_t kWeightAlign = 256;

struct DeviceLayer {
  gpu::DeviceWeight wq, wk, wv, wo, w_gate, w_up, w_down;
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  const float* post_attn_norm = nullptr;
  const float* post_ffn_norm = nullptr;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  const float* bq = nullptr;
  const float* bk = nullptr;
  const float* bv = nullptr;
};

// Scratch for one step, grown to the largest step seen.
struct Scratch {
  int64_t rows = 0;        // token rows the float buffers hold
  int64_t logit_rows = 0;  // rows of out_rows and logits
  int64_t n_ints = 0;      // int32 entries of `ints`
  gpu::DeviceBuffer x, h, q, k, v, attn, o, gate, up, rope_global, rope_local;
  gpu::DeviceBuffer out_rows, logits, ints;
};

uint64_t weight_bytes(const Weight& w) {
  return ggml_row_bytes(w.type, static_cast<uint64_t>(w.cols)) * static_cast<uint64_t>(w.rows);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& config, const ModelWeights& weights, KvPool pool)
      : config_(config), weights_(weights), pool_(std::move(pool)) {}

  Status init(const CudaBackendOptions& options);

  std::string_view name() const override { return "cuda"; }
  const ModelConfig& config() const override { return config_; }
  KvPool& kv_pool() override { return pool_; }
  Status forward(std::span<const SequenceStep> batch, std::vector<float>& logits) override;
  BackendStats stats() const override { return stats_; }
  // The host's cores sit idle while the device steps: a step's sequences are sampled on them in
  // parallel (the scheduler's sampling, see Backend::parallel_for_each).
  void parallel_for_each(size_t n, const std::function<void(size_t)>& fn) override {
    host_threads_.parallel_for(n, 1, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) fn(i);
    });
  }
  const CudaBackendInfo& info() const { return info_; }
  // Copies one page between the device pool and the host KvPool's bytes.
  Status copy_page(int32_t page, bool to_host);

 private:
  Status check_shapes() const;
  Status upload_weights();
  Status ensure_scratch(int64_t rows, int64_t logit_rows, int64_t ints);
  Status run_layers(int64_t n);
  gpu::StreamHandle stream() const { return stream_.handle(); }

  const ModelConfig& config_;
  const ModelWeights& weights_;
  KvPool pool_;
  int device_ = 0;
  gpu::Stream stream_;
  gpu::Matmul matmul_;
  gpu::DeviceBuffer weight_buffer_;
  gpu::DeviceBuffer kv_;
  gpu::KvGeometry geo_;
  std::vector<DeviceLayer> layers_;
  gpu::DeviceWeight token_embedding_, output_;
  const float* output_norm_ = nullptr;
  bool any_local_ = false;
  Scratch s_;
  BackendStats stats_;
  CudaBackendInfo info_;
  ThreadPool host_threads_{0};  // one thread per online core

  // Host staging for a step's integers: tokens | pos | table offsets | logit rows | pages |
  // attention tiles.
  std::vector<int32_t> host_ints_;
  std::vector<float> host_rope_global_, host_rope_local_;
  // Device views into s_.ints for the current step.
  const int32_t* d_tokens_ = nullptr;
  const int32_t* d_logit_rows_ = nullptr;
  const int32_t* d_tiles_ = nullptr;  // attention tiles (pairs); n_tiles_ == 0: per-row kernel
  int64_t n_tiles_ = 0;
  gpu::StepRows step_rows_;
};

Status CudaBackend::check_shapes() const {
  const ModelConfig& c = config_;
  if (c.head_dim % 2 != 0 || c.head_dim > gpu::kMaxAttentionHeadDim)
    return make_error(Errc::unsupported, "cuda backend: head_dim ", c.head_dim,
                      " must be even and at most ", gpu::kMaxAttentionHeadDim);
  auto matrix = [](const Weight& w, const char* what) -> Status {
    if (!gpu::weight_format_supported(static_cast<uint32_t>(w.type)))
      return make_error(Errc::unsupported, "cuda backend: ", what, " has element type ",
                        ggml_type_name(w.type), ", which the CUDA kernels do not read");
    const int block = gpu::weight_block_elems(static_cast<gpu::WeightFormat>(w.type));
    if (w.cols % block != 0 || (block > 1 && w.cols % 32 != 0))
      return make_error(Errc::unsupported, "cuda backend: ", what, " has ", w.cols,
                        " columns, not whole blocks");
    return ok_status();
  };
  auto vector = [](const Weight& w, const char* what) -> Status {
    if (w && w.type != GgmlType::F32)
      return make_error(Errc::unsupported, "cuda backend: ", what, " is ", ggml_type_name(w.type),
                        ", expected f32");
    return ok_status();
  };
  ICAM_TRY(matrix(weights_.token_embedding, "token_embd"));
  ICAM_TRY(matrix(weights_.output, "output"));
  ICAM_TRY(vector(weights_.output_norm, "output_norm"));
  using Named = std::pair<const Weight*, const char*>;
  for (const LayerWeights& w : weights_.layers) {
    const Named matrices[] = {{&w.wq, "attn_q"},      {&w.wk, "attn_k"},       {&w.wv, "attn_v"},
                              {&w.wo, "attn_output"}, {&w.w_gate, "ffn_gate"}, {&w.w_up, "ffn_up"},
                              {&w.w_down, "ffn_down"}};
    for (const auto& [m, what] : matrices) ICAM_TRY(matrix(*m, what));
    const Named vectors[] = {{&w.attn_norm, "attn_norm"},
                             {&w.ffn_norm, "ffn_norm"},
                             {&w.post_attn_norm, "post_attention_norm"},
                             {&w.post_ffn_norm, "post_ffw_norm"},
                             {&w.q_norm, "attn_q_norm"},
                             {&w.k_norm, "attn_k_norm"},
                             {&w.bq, "attn_q.bias"},
                             {&w.bk, "attn_k.bias"},
                             {&w.bv, "attn_v.bias"}};
    for (const auto& [v, what] : vectors) ICAM_TRY(vector(*v, what));
  }
  return ok_status();
}

// Every tensor goes into one device buffer, each at an aligned offset; a tensor met twice (the
// tied output) is stored once.
Status CudaBackend::upload_weights() {
  std::vector<const Weight*> all = {&weights_.token_embedding, &weights_.output,
                                    &weights_.output_norm};
  for (const LayerWeights& w : weights_.layers)
    for (const Weight* p :
         {&w.attn_norm, &w.wq, &w.wk, &w.wv, &w.wo, &w.bq, &w.bk, &w.bv, &w.q_norm, &w.k_norm,
          &w.post_attn_norm, &w.ffn_norm, &w.w_gate, &w.w_up, &w.w_down, &w.post_ffn_norm})
      all.push_back(p);
  std::unordered_map<const void*, uint64_t> offsets;
  uint64_t total = 0;
  for (const Weight* w : all) {
    if (!*w || offsets.count(w->data)) continue;
    offsets[w->data] = total;
    total += (weight_bytes(*w) + kWeightAlign - 1) / kWeightAlign * kWeightAlign;
  }
  weight_buffer_ = ICAM_TRY(gpu::DeviceBuffer::allocate(total, "model weights"));
  auto* base = weight_buffer_.as<uint8_t>();
  for (const auto& [host, offset] : offsets) {
    const Weight* w = nullptr;
    for (const Weight* p : all)
      if (p->data == host) w = p;
    ICAM_TRY(gpu::copy_to_device(base + offset, host, weight_bytes(*w), stream()));
  }
  ICAM_TRY(stream_.synchronize());
  info_.weight_bytes = total;

  auto matrix = [&](const Weight& w) {
    return gpu::DeviceWeight{static_cast<gpu::WeightFormat>(w.type), base + offsets.at(w.data),
                             w.rows, w.cols};
  };
  auto vec = [&](const Weight& w) -> const float* {
    return w ? reinterpret_cast<const float*>(base + offsets.at(w.data)) : nullptr;
  };
  token_embedding_ = matrix(weights_.token_embedding);
  output_ = matrix(weights_.output);
  output_norm_ = vec(weights_.output_norm);
  for (const LayerWeights& w : weights_.layers) {
    DeviceLayer& d = layers_.emplace_back();
    d.wq = matrix(w.wq);
    d.wk = matrix(w.wk);
    d.wv = matrix(w.wv);
    d.wo = matrix(w.wo);
    d.w_gate = matrix(w.w_gate);
    d.w_up = matrix(w.w_up);
    d.w_down = matrix(w.w_down);
    d.attn_norm = vec(w.attn_norm);
    d.ffn_norm = vec(w.ffn_norm);
    d.post_attn_norm = vec(w.post_attn_norm);
    d.post_ffn_norm = vec(w.post_ffn_norm);
    d.q_norm = vec(w.q_norm);
    d.k_norm = vec(w.k_norm);
    d.bq = vec(w.bq);
    d.bk = vec(w.bk);
    d.bv = vec(w.bv);
  }
  return ok_status();
}

Status CudaBackend::init(const CudaBackendOptions& options) {
  const ModelConfig& c = config_;
  ICAM_TRY(check_shapes());
  const std::vector<gpu::DeviceInfo> devices = ICAM_TRY(gpu::list_devices());
  if (options.device < 0 || options.device >= static_cast<int>(devices.size()))
    return make_error(Errc::invalid_argument, "cuda backend: device ", options.device,
                      " does not exist (", devices.size(), " visible)");
  device_ = options.device;
  info_.device_name = devices[device_].name;
  ICAM_TRY(gpu::set_device(device_));
  any_local_ =
      std::find(c.layer_is_local.begin(), c.layer_is_local.end(), true) != c.layer_is_local.end();

  // Refuse early, with the whole bill, rather than fail halfway through the uploads.
  uint64_t weights_total = 0;
  {
    std::unordered_map<const void*, bool> seen;
    auto add = [&](const Weight& w) {
      if (w && !seen[w.data]) {
        seen[w.data] = true;
        weights_total += weight_bytes(w) + kWeightAlign;
      }
    };
    add(weights_.token_embedding);
    add(weights_.output);
    add(weights_.output_norm);
    for (const LayerWeights& w : weights_.layers)
      for (const Weight* p :
           {&w.attn_norm, &w.wq, &w.wk, &w.wv, &w.wo, &w.bq, &w.bk, &w.bv, &w.q_norm, &w.k_norm,
            &w.post_attn_norm, &w.ffn_norm, &w.w_gate, &w.w_up, &w.w_down, &w.post_ffn_norm})
        add(*p);
  }
  gpu::MatmulOptions mo;
  mo.tf32 = options.tf32;
  mo.use_cublas = options.use_cublas;
  const uint64_t scratch_guess = mo.tile_bytes + (16ull << 20);
  const gpu::MemoryInfo mem = ICAM_TRY(gpu::memory_info());
  const uint64_t needed = weights_total + pool_.bytes() + scratch_guess;
  if (needed > mem.free_bytes)
    return make_error(Errc::resource_exhausted, "cuda backend: the model needs ", needed,
                      " bytes of device memory (weights ", weights_total, ", KV pool ",
                      pool_.bytes(), ", scratch ", scratch_guess, ") but device ", device_, " (",
                      info_.device_name, ") has ", mem.free_bytes, " of ", mem.total_bytes,
                      " bytes free; use a smaller KV pool or a smaller model");

  stream_ = ICAM_TRY(gpu::Stream::create());
  matmul_ = ICAM_TRY(gpu::Matmul::create(stream(), mo));
  info_.matmul = matmul_.cublas_note();
  ICAM_TRY(upload_weights());

  kv_ = ICAM_TRY(gpu::DeviceBuffer::allocate(pool_.bytes(), "KV pool"));
  ICAM_TRY(gpu::fill_zero(kv_.data(), kv_.bytes(), stream()));
  info_.kv_bytes = kv_.bytes();
  geo_.page_tokens = pool_.page_tokens();
  geo_.kv_dim = pool_.kv_dim();
  geo_.slab_bytes = static_cast<uint64_t>(geo_.page_tokens) * geo_.kv_dim * sizeof(uint16_t);
  geo_.page_bytes = pool_.page_bytes();
  if (geo_.page_bytes != geo_.slab_bytes * 2 * static_cast<uint64_t>(c.n_layers))
    return make_error(
        Errc::internal, "cuda backend: KvPool pages are ", geo_.page_bytes,
        " bytes, expected [layer][K|V][token][kv_dim] halves = ", geo_.slab_bytes * 2 * c.n_layers);

  ICAM_TRY(ensure_scratch(64, 8, 1024));
  ICAM_TRY(stream_.synchronize());
  info_.scratch_bytes = matmul_.scratch_bytes() + s_.x.bytes() + s_.h.bytes() + s_.q.bytes() +
                        s_.k.bytes() + s_.v.bytes() + s_.attn.bytes() + s_.o.bytes() +
                        s_.gate.bytes() + s_.up.bytes() + s_.rope_global.bytes() +
                        s_.rope_local.bytes() + s_.out_rows.bytes() + s_.logits.bytes() +
                        s_.ints.bytes();
  info_.device_free_bytes = ICAM_TRY(gpu::memory_info()).free_bytes;
  log::info("cuda", "device ", device_, " (", info_.device_name, "): weights ", info_.weight_bytes,
            " bytes, KV pool ", info_.kv_bytes, " bytes, scratch ", info_.scratch_bytes, " bytes, ",
            info_.device_free_bytes, " bytes free; ", info_.matmul);
  return ok_status();
}

Status CudaBackend::ensure_scratch(int64_t rows, int64_t logit_rows, int64_t ints) {
  const ModelConfig& c = config_;
  auto alloc = [](gpu::DeviceBuffer& b, int64_t count, uint64_t elem, const char* what) -> Status {
    b = gpu::DeviceBuffer();  // free first: the old and new buffers need not fit together
    b = ICAM_TRY(gpu::DeviceBuffer::allocate(static_cast<uint64_t>(count) * elem, what));
    return ok_status();
  };
  if (rows > s_.rows) {
    // Round up so that slowly growing prefill chunks do not reallocate every step.
    rows = std::max<int64_t>((rows + 63) / 64 * 64, s_.rows * 2);
    ICAM_TRY(stream_.synchronize());  // the previous step's kernels may still read the buffers
    // Until every buffer is in place a smaller step must not use them: capacity 0 meanwhile.
    s_.rows = 0;
    const int64_t d = c.d_model;
    ICAM_TRY(alloc(s_.x, rows * d, sizeof(float), "activations"));
    ICAM_TRY(alloc(s_.h, rows * d, sizeof(float), "activations"));
    ICAM_TRY(alloc(s_.o, rows * d, sizeof(float), "activations"));
    ICAM_TRY(alloc(s_.q, rows * c.q_dim(), sizeof(float), "queries"));
    ICAM_TRY(alloc(s_.attn, rows * c.q_dim(), sizeof(float), "attention output"));
    ICAM_TRY(alloc(s_.k, rows * c.kv_dim(), sizeof(float), "keys"));
    ICAM_TRY(alloc(s_.v, rows * c.kv_dim(), sizeof(float), "values"));
    ICAM_TRY(alloc(s_.gate, rows * c.d_ffn, sizeof(float), "FFN activations"));
    ICAM_TRY(alloc(s_.up, rows * c.d_ffn, sizeof(float), "FFN activations"));
    ICAM_TRY(alloc(s_.rope_global, rows * c.head_dim, sizeof(float), "RoPE angles"));
    if (any_local_) ICAM_TRY(alloc(s_.rope_local, rows * c.head_dim, sizeof(float), "RoPE angles"));
    s_.rows = rows;
  }
  if (logit_rows > s_.logit_rows) {
    logit_rows = std::max<int64_t>((logit_rows + 7) / 8 * 8, s_.logit_rows * 2);
    ICAM_TRY(stream_.synchronize());
    s_.logit_rows = 0;
    ICAM_TRY(alloc(s_.out_rows, logit_rows * c.d_model, sizeof(float), "final norm rows"));
    ICAM_TRY(alloc(s_.logits, logit_rows * c.n_vocab, sizeof(float), "logits"));
    s_.logit_rows = logit_rows;
  }
  if (ints > s_.n_ints) {
    ints = std::max<int64_t>(ints, s_.n_ints * 2);
    ICAM_TRY(stream_.synchronize());
    s_.n_ints = 0;
    ICAM_TRY(alloc(s_.ints, ints, sizeof(int32_t), "step indices"));
    s_.n_ints = ints;
  }
  return ok_status();
}

Status CudaBackend::forward(std::span<const SequenceStep> batch, std::vector<float>& logits) {
  ICAM_TRY(validate_batch(batch, config_, pool_));
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = config_;
  ICAM_TRY(gpu::set_device(device_));

  // Flatten the batch on the host, exactly as the CPU backend does.
  int64_t n = 0, n_pages = 0;
  for (const SequenceStep& step : batch) {
    n += static_cast<int64_t>(step.tokens.size());
    n_pages += static_cast<int64_t>(step.pages.size());
  }
  std::vector<int32_t> logit_rows;
  std::vector<int32_t> pos(n), table_offset(n), tokens(n);
  std::vector<int32_t> pages;
  pages.reserve(n_pages);
  // Steps where some sequence brings several tokens (prefill) use the tiled attention kernel:
  // tiles of up to kAttentionTileRows consecutive rows of one sequence (first row, count).
  bool multi_token = false;
  for (const SequenceStep& step : batch) multi_token |= step.tokens.size() > 1;
  std::vector<int32_t> tiles;
  {
    int64_t r = 0;
    for (const SequenceStep& step : batch) {
      const auto offset = static_cast<int32_t>(pages.size());
      pages.insert(pages.end(), step.pages.begin(), step.pages.end());
      if (multi_token) {
        const auto len = static_cast<int64_t>(step.tokens.size());
        for (int64_t t = 0; t < len; t += gpu::kAttentionTileRows) {
          tiles.push_back(static_cast<int32_t>(r + t));
          tiles.push_back(
              static_cast<int32_t>(std::min<int64_t>(gpu::kAttentionTileRows, len - t)));
        }
      }
      for (size_t t = 0; t < step.tokens.size(); ++t, ++r) {
        tokens[r] = step.tokens[t];
        pos[r] = step.start_pos + static_cast<int32_t>(t);
        table_offset[r] = offset;
        const bool last = t + 1 == step.tokens.size();
        if (step.logits == LogitsWanted::all || (step.logits == LogitsWanted::last && last))
          logit_rows.push_back(static_cast<int32_t>(r));
      }
    }
  }
  const auto m = static_cast<int64_t>(logit_rows.size());
  host_ints_.clear();
  for (const auto* part : {&tokens, &pos, &table_offset, &logit_rows, &pages, &tiles})
    host_ints_.insert(host_ints_.end(), part->begin(), part->end());
  ICAM_TRY(ensure_scratch(n, std::max<int64_t>(m, 1), static_cast<int64_t>(host_ints_.size())));

  // RoPE angles on the host with the CPU's own function, so both backends rotate by the same
  // floats: head_dim values per row, cosines then sines.
  const int half = c.head_dim / 2;
  host_rope_global_.resize(static_cast<size_t>(n) * c.head_dim);
  if (any_local_) host_rope_local_.resize(static_cast<size_t>(n) * c.head_dim);
  for (int64_t r = 0; r < n; ++r) {
    float* g = host_rope_global_.data() + r * c.head_dim;
    ops::rope_angles(c.head_dim, pos[r], c.rope_base, c.rope_scale,
                     weights_.rope_freqs ? weights_.rope_freqs.f32() : nullptr, g, g + half);
    if (!any_local_) continue;
    float* l = host_rope_local_.data() + r * c.head_dim;
    ops::rope_angles(c.head_dim, pos[r], c.rope_base_local, 1.0f, nullptr, l, l + half);
  }

  // Uploads (pageable host memory: each returns once the host buffer may be reused).
  auto* ints = s_.ints.as<int32_t>();
  ICAM_TRY(
      gpu::copy_to_device(ints, host_ints_.data(), host_ints_.size() * sizeof(int32_t), stream()));
  d_tokens_ = ints;
  step_rows_.pos = ints + n;
  step_rows_.table_offset = ints + 2 * n;
  d_logit_rows_ = ints + 3 * n;
  step_rows_.pages = ints + 3 * n + m;
  d_tiles_ = ints + 3 * n + m + static_cast<int64_t>(pages.size());
  n_tiles_ = static_cast<int64_t>(tiles.size()) / 2;
  ICAM_TRY(gpu::copy_to_device(s_.rope_global.data(), host_rope_global_.data(),
                               host_rope_global_.size() * sizeof(float), stream()));
  if (any_local_)
    ICAM_TRY(gpu::copy_to_device(s_.rope_local.data(), host_rope_local_.data(),
                                 host_rope_local_.size() * sizeof(float), stream()));

  ICAM_TRY(gpu::embed_rows(token_embedding_, d_tokens_, n, c.embedding_scale, s_.x.as<float>(),
                           stream()));
  ICAM_TRY(run_layers(n));

  // Final norm and the output projection, only for the rows that want logits.
  logits.resize(static_cast<size_t>(m) * c.n_vocab);
  if (m > 0) {
    ICAM_TRY(gpu::rms_norm_gather(s_.x.as<float>(), d_logit_rows_, output_norm_,
                                  s_.out_rows.as<float>(), m, c.d_model, c.rms_eps, stream()));
    ICAM_TRY(matmul_.run(output_, s_.out_rows.as<float>(), m, s_.logits.as<float>(), c.n_vocab));
    ICAM_TRY(gpu::copy_to_host(logits.data(), s_.logits.data(), logits.size() * sizeof(float),
                               stream()));
  }
  ICAM_TRY(stream_.synchronize());

  stats_.steps += 1;
  stats_.tokens += static_cast<uint64_t>(n);
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ok_status();
}

// The layers of cpu_backend.cpp's forward, one kernel (or product) per CPU loop.
Status CudaBackend::run_layers(int64_t n) {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model;
  const gpu::StreamHandle st = stream();
  float* x = s_.x.as<float>();
  float* h = s_.h.as<float>();
  float* q = s_.q.as<float>();
  float* k = s_.k.as<float>();
  float* v = s_.v.as<float>();
  float* attn = s_.attn.as<float>();
  float* o = s_.o.as<float>();
  float* gate = s_.gate.as<float>();
  float* up = s_.up.as<float>();
  const gpu::RopePairing pairing =
      c.rope_style == RopeStyle::halves ? gpu::RopePairing::halves : gpu::RopePairing::interleaved;
  const gpu::GatedActivation act = c.activation == FfnActivation::gelu_tanh
                                       ? gpu::GatedActivation::gelu_tanh
                                       : gpu::GatedActivation::silu;
  for (int l = 0; l < c.n_layers; ++l) {
    const DeviceLayer& w = layers_[l];
    const bool local = c.layer_is_local[l];
    const float* rope_table = local ? s_.rope_local.as<float>() : s_.rope_global.as<float>();

    ICAM_TRY(gpu::rms_norm(x, w.attn_norm, h, n, static_cast<int>(d), c.rms_eps, st));
    ICAM_TRY(matmul_.run(w.wq, h, n, q, c.q_dim()));
    ICAM_TRY(matmul_.run(w.wk, h, n, k, c.kv_dim()));
    ICAM_TRY(matmul_.run(w.wv, h, n, v, c.kv_dim()));
    if (c.attention_bias) {
      ICAM_TRY(gpu::add_bias(q, w.bq, n, c.q_dim(), st));
      ICAM_TRY(gpu::add_bias(k, w.bk, n, c.kv_dim(), st));
      ICAM_TRY(gpu::add_bias(v, w.bv, n, c.kv_dim(), st));
    }
    if (c.qk_norm) {
      ICAM_TRY(gpu::rms_norm(q, w.q_norm, q, n * c.n_heads, c.head_dim, c.rms_eps, st));
      ICAM_TRY(gpu::rms_norm(k, w.k_norm, k, n * c.n_kv_heads, c.head_dim, c.rms_eps, st));
    }
    ICAM_TRY(gpu::rope(q, n, c.n_heads, c.head_dim, rope_table, pairing, c.attention_scale, st));
    ICAM_TRY(gpu::rope(k, n, c.n_kv_heads, c.head_dim, rope_table, pairing, 1.0f, st));
    ICAM_TRY(gpu::store_kv(kv_.as<uint8_t>(), geo_, l, k, v, n, step_rows_, st));

    gpu::AttentionShape shape;
    shape.n_heads = c.n_heads;
    shape.n_kv_heads = c.n_kv_heads;
    shape.head_dim = c.head_dim;
    shape.sliding_window = local ? c.sliding_window : 0;
    if (n_tiles_ > 0)
      ICAM_TRY(gpu::paged_attention_tiled(q, kv_.as<uint8_t>(), geo_, l, shape, d_tiles_, n_tiles_,
                                          step_rows_, attn, st));
    else
      ICAM_TRY(gpu::paged_attention(q, kv_.as<uint8_t>(), geo_, l, shape, n, step_rows_, attn, st));

    ICAM_TRY(matmul_.run(w.wo, attn, n, o, d));
    if (c.post_norms)
      ICAM_TRY(gpu::rms_norm(o, w.post_attn_norm, o, n, static_cast<int>(d), c.rms_eps, st));
    ICAM_TRY(gpu::add_in_place(x, o, n * d, st));
    ICAM_TRY(gpu::rms_norm(x, w.ffn_norm, h, n, static_cast<int>(d), c.rms_eps, st));

    ICAM_TRY(matmul_.run(w.w_gate, h, n, gate, c.d_ffn));
    ICAM_TRY(matmul_.run(w.w_up, h, n, up, c.d_ffn));
    ICAM_TRY(gpu::gated_activation(gate, up, gate, n * c.d_ffn, act, st));
    ICAM_TRY(matmul_.run(w.w_down, gate, n, o, d));
    if (c.post_norms)
      ICAM_TRY(gpu::rms_norm(o, w.post_ffn_norm, o, n, static_cast<int>(d), c.rms_eps, st));
    ICAM_TRY(gpu::add_in_place(x, o, n * d, st));
  }
  return ok_status();
}

Status CudaBackend::copy_page(int32_t page, bool to_host) {
  if (!pool_.valid(page))
    return make_error(Errc::invalid_argument, "cuda backend: page ", page, " is not in use");
  ICAM_TRY(gpu::set_device(device_));
  uint8_t* device_page = kv_.as<uint8_t>() + static_cast<uint64_t>(page) * geo_.page_bytes;
  if (to_host)
    ICAM_TRY(gpu::copy_to_host(pool_.page_data(page), device_page, geo_.page_bytes, stream()));
  else
    ICAM_TRY(gpu::copy_to_device(device_page, pool_.page_data(page), geo_.page_bytes, stream()));
  return stream_.synchronize();
}

}  // namespace

Status pull_kv_page_to_host(Backend& backend, int32_t page) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  return cuda ? cuda->copy_page(page, true) : ok_status();
}

Status push_kv_page_to_device(Backend& backend, int32_t page) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  return cuda ? cuda->copy_page(page, false) : ok_status();
}

Result<std::unique_ptr<Backend>> create_cuda_backend(const ModelConfig& config,
                                                     const ModelWeights& weights,
                                                     const CudaBackendOptions& options) {
  // Without a device, say so before reserving anything.
  ICAM_TRY(gpu::list_devices());
  KvPool pool = ICAM_TRY(KvPool::create(config, options.kv));
  auto backend = std::make_unique<CudaBackend>(config, weights, std::move(pool));
  ICAM_TRY(backend->init(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

const CudaBackendInfo* cuda_backend_info(const Backend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  return cuda ? &cuda->info() : nullptr;
}

}  // namespace icam::llm
