// Generation for one sequence: prefill the prompt in chunks, then decode token by token with a
// sampler, streaming text as it becomes final. Used by `icamctl generate`, the tests and the
// benchmarks; the scheduler drives many sequences through Backend::forward directly.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/engine/backend.h"
#include "drivers/llm/engine/finish_reason.h"
#include "drivers/llm/sampling/sampler.h"
#include "drivers/llm/sampling/sampling_params.h"
#include "drivers/llm/tokenizer/tokenizer.h"

namespace icam::llm {

struct GenerateRequest {
  std::vector<int32_t> prompt;  // already tokenized, BOS included when wanted
  SamplingParams sampling;
  int prefill_chunk = 512;                // prompt tokens per forward step
  bool stop_at_end_of_generation = true;  // EOS and end-of-turn tokens end the generation
};

struct GenerateResult {
  std::vector<int32_t> tokens;        // generated ids, the stopping token included
  std::vector<SampleResult> samples;  // per token, with logprobs when requested
  std::string text;                   // visible text (stop string and held-back bytes excluded)
  FinishReason finish = FinishReason::max_tokens;
  int prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Receives text as it becomes final; returning false cancels the generation.
using TextSink = std::function<bool(std::string_view)>;

Result<GenerateResult> generate(Backend& backend, const Tokenizer& tokenizer,
                                const GenerateRequest& request, const TextSink& sink = {});

}  // namespace icam::llm
