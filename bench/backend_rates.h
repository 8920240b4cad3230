// Measurements of an engine Backend shared by the engine benchmarks (engine_bench on the CPU,
// cuda_bench on a device), so both produce their figures the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/backend.h"

namespace icam::bench {

double seconds_since(std::chrono::steady_clock::time_point t);

// Deterministic pseudo-text tokens, avoiding the first (control) ids of the vocabulary.
std::vector<int32_t> make_tokens(int n, int vocab, uint32_t seed);

// Prefills `count` sequences with `prompt` tokens each, then decodes `steps` steps of one token
// per sequence, all sequences in one batch, each next token chosen by a greedy Sampler as the
// scheduler does (the sequences in parallel, Backend::parallel_for_each). Returns aggregate
// decode tokens/s.
Result<double> decode_rate(llm::Backend& backend, int count, int prompt, int steps);

}  // namespace icam::bench
