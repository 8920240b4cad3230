#include "sched/policy.h"

#include "sched/fair_share_policy.h"
#include "sched/fifo_policy.h"
#include "sched/round_robin_policy.h"

namespace icam::sched {

Result<PolicyKind> parse_policy_kind(std::string_view name) {
  if (name == "fifo") return PolicyKind::fifo;
  if (name == "round_robin" || name == "rr") return PolicyKind::round_robin;
  if (name == "fair_share" || name == "fair") return PolicyKind::fair_share;
  return make_error(Errc::invalid_argument, "scheduling policy '", name,
                    "' is unknown (fifo, round_robin, fair_share)");
}

std::string_view policy_kind_name(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::fifo:
      return "fifo";
    case PolicyKind::round_robin:
      return "round_robin";
    case PolicyKind::fair_share:
      return "fair_share";
  }
  return "?";
}

Result<std::unique_ptr<Policy>> make_policy(const PolicyOptions& options) {
  switch (options.kind) {
    case PolicyKind::fifo:
      return std::unique_ptr<Policy>(new FifoPolicy());
    case PolicyKind::round_robin:
      if (options.quantum < 1)
        return make_error(Errc::invalid_argument,
                          "round robin: the quantum must be at least 1 token, got ",
                          options.quantum);
      return std::unique_ptr<Policy>(new RoundRobinPolicy(options.quantum));
    case PolicyKind::fair_share:
      return std::unique_ptr<Policy>(new FairSharePolicy());
  }
  return make_error(Errc::invalid_argument, "scheduling policy: unknown kind");
}

}  // namespace icam::sched
