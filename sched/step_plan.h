// One engine step as the scheduler planned it: which sequences feed which tokens, and how the
// step's token budget is shared between decodes and prefill chunks.
#pragma once

#include <cstdint>
#include <vector>

#include "sched/sequence.h"

namespace icam::sched {

enum class StepKind {
  prefill,  // a chunk of prompt, appended or recomputed tokens (possibly a single token)
  decode,   // the one token sampled in the previous step
};

struct StepMember {
  SequenceId id = 0;
  StepKind kind = StepKind::prefill;
  int32_t start_pos = 0;
  int32_t count = 0;       // tokens fed
  bool samples = false;    // the chunk reaches the end of the context: a token is sampled
  int32_t recomputed = 0;  // of `count`, tokens fed before (lost to a preemption)
};

struct StepPlan {
  std::vector<StepMember> members;  // in batch order (the policy's order)
  int tokens = 0;
  int prefill_members = 0;
  int decode_members = 0;
  int preemptions = 0;  // sequences whose pages were taken back while planning this step

  bool mixed() const { return prefill_members > 0 && decode_members > 0; }
  void clear() { *this = StepPlan(); }
};

// Shares a step's token budget out in the policy's order. Decodes cost one token each and are
// served ahead of prefill chunks: `decodes` tokens (at most budget - 1) are set aside for the
// decoding sequences that could join the step, and prefill chunks take only what is left beyond
// that reserve, so a long prompt cannot stall the sequences already generating. The reserve never
// takes the whole budget, so a prefill first in the order always gets at least one token.
class TokenBudget {
 public:
  TokenBudget(int budget, int decodes);

  // Tokens for the next candidate in order: 1 for a decode (while any budget is left), and for a
  // prefill min(pending, cap, what the reserve leaves). 0: the candidate does not join this step.
  int take(StepKind kind, int pending, int cap);
  // Returns tokens taken for a candidate that could not join after all (e.g. no KV pages).
  void give_back(int tokens) { left_ += tokens; }

  int left() const { return left_; }
  int reserved() const { return reserved_; }

 private:
  int left_;
  int reserved_;
};

}  // namespace icam::sched
