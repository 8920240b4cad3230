// Why a sequence's turn ended. The scheduler's own list: the engine's generate() has no `error`,
// because it returns errors instead of finishing a sequence with one.
#pragma once

#include <string_view>

namespace icam::sched {

enum class FinishReason {
  end_of_generation,  // an end-of-generation token (EOS, end of turn) was sampled
  stop_string,        // the output completed one of the sampling params' stop strings
  stop_token,         // one of the sampling params' stop tokens was sampled
  max_tokens,         // the turn produced sampling.max_tokens tokens
  context_full,       // the next token would not fit the model's context or the whole KV pool
  cancelled,          // cancel() was called
  error,              // sampling failed or the engine refused the step; see SequenceInfo::error
};

std::string_view finish_reason_name(FinishReason reason);

// True for the reasons that end a turn normally, after which a sequence submitted with
// OnStop::pause waits for resume() instead of finishing.
bool ends_turn_normally(FinishReason reason);

}  // namespace icam::sched
