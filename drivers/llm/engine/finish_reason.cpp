#include "drivers/llm/engine/finish_reason.h"

namespace icam::llm {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::end_of_generation:
      return "end_of_generation";
    case FinishReason::stop_string:
      return "stop_string";
    case FinishReason::stop_token:
      return "stop_token";
    case FinishReason::max_tokens:
      return "max_tokens";
    case FinishReason::context_full:
      return "context_full";
    case FinishReason::cancelled:
      return "cancelled";
    case FinishReason::error:
      return "error";
  }
  return "?";
}

}  // namespace icam::llm
