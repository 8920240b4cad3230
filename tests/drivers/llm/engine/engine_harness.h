// Running tiny models on the CPU backend and comparing logits, shared by the engine tests.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::llm::testing {

// A loaded tiny model and a CPU backend over it. The backend points into the model, so it is
// declared second (destroyed first).
struct TinyEngine {
  std::unique_ptr<Model> model;
  std::unique_ptr<CpuBackend> backend;

  const ModelConfig& config() const { return model->config(); }
  KvPool& pool() { return backend->kv_pool(); }
};

struct EngineOptions {
  int page_tokens = 16;
  int threads = 1;
  uint64_t kv_bytes = 4ull << 20;
};

// An engine over the undamaged model of `spec` (the shared file from tiny_model_file).
Result<TinyEngine> make_engine(const TinySpec& spec, const EngineOptions& options = {});

// One forward step of one sequence.
Status forward_one(Backend& backend, std::span<const int32_t> tokens, int32_t start_pos,
                   std::span<const int32_t> pages, LogitsWanted wanted, std::vector<float>& logits);

// Runs `tokens` from position 0 in one step in a fresh block table and returns the logits of
// every position (tokens.size() rows).
Result<std::vector<float>> forward_all(Backend& backend, std::span<const int32_t> tokens);

// Largest |got - want| over all entries, divided by the largest |want|: the error relative to
// the scale of the logits. Rows that disagree in size give infinity.
double logit_error(std::span<const float> got, std::span<const double> want);
double logit_error(std::span<const float> got, std::span<const float> want);

// The root-mean-square difference divided by the root-mean-square of `want`: the typical error
// rather than the worst one.
double logit_rms_error(std::span<const float> got, std::span<const double> want);

// The highest entry of a row (ties: the lowest index), and the gap to the runner-up.
int32_t argmax(std::span<const float> row);
int32_t argmax(std::span<const double> row);
double top2_gap(std::span<const double> row);

std::string type_name(GgmlType type);

}  // namespace icam::llm::testing
