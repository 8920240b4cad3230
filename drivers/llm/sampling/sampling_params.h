// How the next token is chosen and when generation stops, as one plain value that travels from a
// job's JSON through the scheduler to a Sampler and a StopMatcher.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam::llm {

inline constexpr float kMaxTemperature = 100.0f;
inline constexpr float kMaxRepetitionPenalty = 10.0f;
inline constexpr float kMaxAbsPenalty = 2.0f;  // bound on |presence_penalty|, |frequency_penalty|
inline constexpr int kMaxLogprobs = 20;
inline constexpr std::size_t kMaxStopStrings = 16;
inline constexpr std::size_t kMaxStopStringBytes = 256;

struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy (argmax); otherwise (0, 100]
  int top_k = 0;                    // keep the k most likely tokens; 0 = off
  float top_p = 1.0f;               // keep the smallest set with mass >= top_p; (0, 1], 1 = off
  float min_p = 0.0f;               // drop tokens with p < min_p * p_max; [0, 1], 0 = off
  float repetition_penalty = 1.0f;  // (0, 10]; 1 = off (llama.cpp convention, see Sampler)
  int repetition_window = 64;       // last N history tokens the penalties look at; 0 = all
  float presence_penalty = 0.0f;    // [-2, 2], subtracted once from each token seen in the window
  float frequency_penalty = 0.0f;   // [-2, 2], subtracted once per occurrence in the window
  uint64_t seed = 0;                // seeds the Sampler's own generator; same seed, same draws
  int logprobs = 0;                 // return the top-N logprobs per step, 0..20
  std::vector<std::string> stop_strings;  // at most 16, each 1..256 bytes
  std::vector<int32_t> stop_tokens;       // token ids (>= 0) that end generation
  int max_tokens = 256;                   // >= 1; enforced by the caller, not by StopMatcher
};

// Checks every field against the ranges above. The error (invalid_argument) names the first field
// out of range, its value and the allowed range. A Sampler or StopMatcher must only be built from
// params that passed this check.
Status validate(const SamplingParams& params);

// Reads params from a JSON object whose keys are the field names above; a missing key keeps its
// default. Rejects (invalid_argument, naming the key) a value that is not an object, an unknown
// key, a value of the wrong type (integers for top_k, repetition_window, logprobs, max_tokens,
// seed and stop_tokens; numbers for the float fields; an array of strings for stop_strings) or
// one that does not fit the field's type. The result has also passed validate().
Result<SamplingParams> sampling_params_from_json(const nlohmann::json& json);

// Writes every field, so that sampling_params_from_json(to_json(p)) gives p back.
nlohmann::json to_json(const SamplingParams& params);

}  // namespace icam::llm
