#include "tests/drivers/llm/engine/engine_harness.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace icam::llm::testing {

Result<TinyEngine> make_engine(const TinySpec& spec, const EngineOptions& options) {
  TinyEngine e;
  e.model = ICAM_TRY(Model::load(tiny_model_file(spec)));
  e.backend = ICAM_TRY(CpuBackend::create(e.model->config(), e.model->weights(),
                                          KvPoolOptions{options.kv_bytes, options.page_tokens},
                                          options.threads));
  return e;
}

Status forward_one(Backend& backend, std::span<const int32_t> tokens, int32_t start_pos,
                   std::span<const int32_t> pages, LogitsWanted wanted,
                   std::vector<float>& logits) {
  SequenceStep step;
  step.tokens = tokens;
  step.start_pos = start_pos;
  step.pages = pages;
  step.logits = wanted;
  return backend.forward(std::span<const SequenceStep>(&step, 1), logits);
}

Result<std::vector<float>> forward_all(Backend& backend, std::span<const int32_t> tokens) {
  BlockTable table(backend.kv_pool());
  ICAM_TRY(table.reserve(static_cast<int64_t>(tokens.size())));
  std::vector<float> logits;
  ICAM_TRY(forward_one(backend, tokens, 0, table.pages(), LogitsWanted::all, logits));
  return logits;
}

namespace {

template <typename T>
double error_of(std::span<const float> got, std::span<const T> want) {
  if (got.size() != want.size() || want.empty()) return std::numeric_limits<double>::infinity();
  double max_diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = static_cast<double>(want[i]);
    if (!std::isfinite(g)) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, std::abs(g - w));
    scale = std::max(scale, std::abs(w));
  }
  return max_diff / std::max(scale, 1e-30);
}

template <typename T>
int32_t argmax_of(std::span<const T> row) {
  int32_t best = 0;
  for (size_t i = 1; i < row.size(); ++i)
    if (row[i] > row[best]) best = static_cast<int32_t>(i);
  return best;
}

}  // namespace

double logit_error(std::span<const float> got, std::span<const double> want) {
  return error_of(got, want);
}
double logit_error(std::span<const float> got, std::span<const float> want) {
  return error_of(got, want);
}

double logit_rms_error(std::span<const float> got, std::span<const double> want) {
  if (got.size() != want.size() || want.empty()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

int32_t argmax(std::span<const float> row) {
  return argmax_of(row);
}
int32_t argmax(std::span<const double> row) {
  return argmax_of(row);
}

double top2_gap(std::span<const double> row) {
  const int32_t best = argmax(row);
  double second = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < row.size(); ++i)
    if (static_cast<int32_t>(i) != best) second = std::max(second, row[i]);
  return row[best] - second;
}

std::string type_name(GgmlType type) {
  return std::string(ggml_type_name(type));
}

}  // namespace icam::llm::testing
