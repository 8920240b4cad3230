// The CPU implementation of Backend: weights stay memory-mapped in the GGUF file, matrix products
// run on quantized weights with activations quantized per block (drivers/llm/quant), and work is
// spread over a thread pool sized to the cores.
//
// Thread-safety: forward() is called from one thread at a time (the engine thread).
#pragma once

#include <memory>
#include <vector>

#include "common/thread_pool.h"
#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/weights.h"

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
  int threads() const { return threads_.size(); }

 private:
  CpuBackend(const ModelConfig& config, const ModelWeights& weights, KvPool pool, int threads);

  // Where each token of the flattened batch belongs.
  struct TokenRow {
    int seq;
    int32_t pos;
  };

  void matmul(const Weight& w, const float* x, int64_t batch, float* y);
  void attention(int layer, std::span<const SequenceStep> batch, int64_t n_rows);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  KvPool pool_;
  ThreadPool threads_;
  BackendStats stats_;

  // Scratch, grown to the largest batch seen and reused.
  std::vector<TokenRow> rows_;
  std::vector<int64_t> logit_rows_;  // rows of the step that produce logits
  std::vector<float> x_, h_, q_, k_, v_, attn_, o_, gate_, up_, out_rows_;
};

}  // namespace icam::llm
