// The CPU implementation of Backend: matrix products run on quantized weights with activations
// quantized per block (drivers/llm/quant), and work is spread over a thread pool sized to the
// cores. Weights of the types with packed kernels (quant/packed.h) are repacked once, at
// creation, into the backend's own memory; the others are read from the GGUF mapping.
//
// Thread-safety: forward() is called from one thread at a time (the engine thread).
#pragma once

#include <memory>
#include <vector>

#include "common/thread_pool.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/weights.h"
#include "drivers/llm/quant/packed.h"

namespace icam::llm {

class CpuBackend final : public Backend {
 public:
  // `config` and `weights` must outlive the backend (they point into the model's mapping).
  static Result<std::unique_ptr<CpuBackend>> create(const ModelConfig& config,
                                                    const ModelWeights& weights,
                                                    const KvPoolOptions& kv, int threads);

  std::string_view name() const override { return "cpu"; }
  const ModelConfig& config() const override { return config_; }
  KvPool& kv_pool() override { return pool_; }
  Status forward(std::span<const SequenceStep> batch, std::vector<float>& logits) override;
  BackendStats stats() const override { return stats_; }
  void parallel_for_each(size_t n, const std::function<void(size_t)>& fn) override {
    threads_.parallel_for(n, 1, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) fn(i);
    });
  }
  int threads() const { return threads_.size(); }

 private:
  CpuBackend(const ModelConfig& config, const ModelWeights& weights, KvPool pool, int threads);

  // Where each token of the flattened batch belongs.
  struct TokenRow {
    int seq;
    int32_t pos;
  };

  // A layer's matrices as the products read them.
  struct PackedLayer {
    PackedWeight wq, wk, wv, wo, w_gate, w_up, w_down;
  };

  // A run of one row's visible keys, attended as one (see kKeyChunk in cpu_backend.cpp): keys
  // [first, first + count), one of `of` chunks; `slot` holds its partial result when of > 1 and
  // the chunks run as tasks of their own.
  struct KeyChunk {
    int64_t row;
    int32_t first;
    int32_t count;
    int32_t of;
    int64_t slot;
  };

  void pack_weights();
  void attention(int layer, std::span<const SequenceStep> batch, int64_t n_rows);
  // Attention of query heads [head0, head0 + heads), which share kv_head, over one chunk of a
  // row's keys. A row's only chunk writes its output (normalized) to `out`; otherwise `out`
  // receives the unnormalized weighted sums, `maxima` and `sums` each head's largest score and
  // sum of exponentials, for merge_chunks.
  void attend(int layer, const SequenceStep& step, const KeyChunk& chunk, int kv_head, int head0,
              int heads, float* out, float* maxima, double* sums);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  KvPool pool_;
  ThreadPool threads_;
  BackendStats stats_;
  std::vector<PackedLayer> packed_;
  PackedWeight output_;

  // Scratch, grown to the largest batch seen and reused.
  std::vector<TokenRow> rows_;
  std::vector<int64_t> logit_rows_;  // rows of the step that produce logits
  std::vector<float> x_, h_, q_, k_, v_, attn_, o_, gate_, up_, out_rows_;
  // Per row of the step: RoPE cosines then sines (head_dim / 2 each) of its position, for the
  // global layers and for the sliding-window ones (their own base), computed once per step.
  std::vector<float> rope_global_, rope_local_;
  // Attention's key chunks, the index of each row's first chunk (and one past the last row's
  // last), and the partial results of chunks that run as tasks of their own.
  std::vector<KeyChunk> chunks_;
  std::vector<int64_t> row_chunks_;
  std::vector<float> partial_out_, partial_max_;
  std::vector<double> partial_sum_;
};

}  // namespace icam::llm
