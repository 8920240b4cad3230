#include "sched/finish_reason.h"

namespace icam::sched {

bool ends_turn_normally(FinishReason reason) {
  switch (reason) {
    case FinishReason::end_of_generation:
    case FinishReason::stop_string:
    case FinishReason::stop_token:
    case FinishReason::max_tokens:
      return true;
    case FinishReason::context_full:
    case FinishReason::cancelled:
    case FinishReason::error:
      return false;
  }
  return false;
}

}  // namespace icam::sched
