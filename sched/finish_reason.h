// Why a sequence's turn ended, and which reasons end a turn normally.
#pragma once

#include "drivers/llm/engine/finish_reason.h"

namespace icam::sched {

// The engine's list (drivers/llm/engine/finish_reason.h), under the scheduler's namespace.
using FinishReason = llm::FinishReason;
using llm::finish_reason_name;

// True for the reasons that end a turn normally, after which a sequence submitted with
// OnStop::pause waits for resume() instead of finishing.
bool ends_turn_normally(FinishReason reason);

}  // namespace icam::sched
