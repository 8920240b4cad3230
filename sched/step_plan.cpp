#include "sched/step_plan.h"

#include <algorithm>

namespace icam::sched {

TokenBudget::TokenBudget(int budget, int decodes)
    : left_(std::max(0, budget)), reserved_(std::clamp(decodes, 0, std::max(0, budget - 1))) {}

int TokenBudget::take(StepKind kind, int pending, int cap) {
  if (left_ <= 0 || pending <= 0) return 0;
  if (kind == StepKind::decode) {
    if (reserved_ > 0) --reserved_;
    --left_;
    return 1;
  }
  const int available = left_ - reserved_;
  const int n = std::min({pending, cap, available});
  if (n <= 0) return 0;
  left_ -= n;
  return n;
}

}  // namespace icam::sched
