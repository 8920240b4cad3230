#include "bench/backend_rates.h"

#include <algorithm>
#include <span>

#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/sampling/sampler.h"

namespace icam::bench {

using llm::BlockTable;
using llm::LogitsWanted;
using llm::SequenceStep;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::vector<int32_t> make_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint32_t x = seed * 2654435761u + 1;
  const int span = std::max(1, std::min(vocab - 1000, 50000));
  for (auto& v : t) {
    x = x * 1664525u + 1013904223u;
    v = std::min(vocab - 1, 1000 + static_cast<int32_t>(x % static_cast<uint32_t>(span)));
  }
  return t;
}

Result<double> decode_rate(llm::Backend& backend, int count, int prompt, int steps) {
  const int vocab = backend.config().n_vocab;
  // Each sequence's next token is chosen as the scheduler chooses it: by a greedy Sampler of
  // its own (no logprob asked for), the step's sequences in parallel on the backend's threads.
  llm::SamplingParams greedy;
  greedy.temperature = 0.0f;
  std::vector<llm::Sampler> samplers(static_cast<size_t>(count), llm::Sampler(greedy));
  for (llm::Sampler& sampler : samplers) sampler.set_greedy_logprob(false);
  std::vector<Status> sampled(static_cast<size_t>(count));
  std::vector<BlockTable> tables;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<float> logits;
  tables.reserve(count);
  for (int s = 0; s < count; ++s) {
    tables.emplace_back(backend.kv_pool());
    tokens.push_back(make_tokens(prompt, vocab, 100 + s));
    ICAM_TRY(tables.back().reserve(prompt + steps + 1));
    SequenceStep step{tokens[s], 0, tables[s].pages(), LogitsWanted::last};
    ICAM_TRY(backend.forward(std::span<const SequenceStep>(&step, 1), logits));
    tokens[s].push_back(
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  const auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    std::vector<SequenceStep> batch;
    for (int s = 0; s < count; ++s)
      batch.push_back({std::span<const int32_t>(&tokens[s].back(), 1),
                       static_cast<int32_t>(tokens[s].size() - 1), tables[s].pages(),
                       LogitsWanted::last});
    ICAM_TRY(backend.forward(batch, logits));
    backend.parallel_for_each(static_cast<size_t>(count), [&](size_t s) {
      const std::span<const float> row(logits.data() + s * static_cast<size_t>(vocab),
                                       static_cast<size_t>(vocab));
      auto next = samplers[s].sample(row, tokens[s], nullptr);
      if (!next.ok()) {
        sampled[s] = Status(next.error());
        return;
      }
      tokens[s].push_back(next->token);
    });
    for (const Status& st : sampled) ICAM_TRY(st);
  }
  return static_cast<double>(count) * steps / seconds_since(t);
}

}  // namespace icam::bench
