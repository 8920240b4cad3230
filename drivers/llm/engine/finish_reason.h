// Why a sequence's generation ended. Shared by generate() and the scheduler (sched/), so that a
// single sequence and a scheduled one report the same reasons under the same names.
#pragma once

#include <string_view>

namespace icam::llm {

enum class FinishReason {
  end_of_generation,  // an end-of-generation token (EOS, end of turn) was sampled
  stop_string,        // the output completed one of the sampling params' stop strings
  stop_token,         // one of the sampling params' stop tokens was sampled
  max_tokens,         // the sampling params' max_tokens were produced
  context_full,       // the next token would not fit the model's context (or the KV pool)
  cancelled,          // the caller stopped it
  error,              // the scheduler finished the sequence on an engine or sampling error;
                      // generate() returns its errors instead and never reports this
};

std::string_view finish_reason_name(FinishReason reason);

}  // namespace icam::llm
