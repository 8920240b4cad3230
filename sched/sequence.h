// What the scheduler knows about one sequence, as plain values: how it is submitted
// (SequenceSpec), how a paused one continues (Continuation), the states it moves through and the
// accounting kept for it.
//
// Life of a sequence:
//
//   submit() ─► waiting ─► prefilling ─► decoding ─► finished          (released by release())
//                  ▲            │    ▲       │  │
//                  │            ▼    │       │  └─► paused ─► resume() ─► prefilling / preempted
//                  └──────── preempted ◄─────┘          (a turn ended with OnStop::pause)
//
// Any runnable state (waiting, prefilling, decoding, preempted) can be block()ed and unblock()ed;
// cancel() finishes any state but finished. A preempted sequence has lost its KV pages to a
// higher-priority one; its whole context (prompt and every token generated or appended so far)
// is prefilled again when it is re-admitted, and its output is the same as if it had never been
// preempted.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/llm/sampling/sampling_params.h"
#include "drivers/llm/sampling/token_filter.h"
#include "sched/finish_reason.h"

namespace icam::sched {

// Sequence ids are assigned by submit(), from 1, and never reused by one Scheduler.
using SequenceId = uint64_t;

// Priorities run from 1 (lowest) to 100; a sequence with no stated priority gets 10. The fair-share
// policy serves runnable sequences in proportion to their priorities (a 20 gets twice the tokens
// of a 10 when both want more than there is); FIFO and round-robin order by arrival and ignore
// them. Every policy's order also decides who is preempted first (the last in its order).
inline constexpr int kMinPriority = 1;
inline constexpr int kMaxPriority = 100;
inline constexpr int kDefaultPriority = 10;

// What happens when a turn ends normally (end of generation, a stop string or token, max_tokens).
enum class OnStop {
  finish,  // the sequence finishes and its KV pages are freed
  pause,   // it pauses with its KV pages kept, waiting for resume() (e.g. with a tool's result)
};

struct SequenceSpec {
  std::vector<int32_t> prompt;   // token ids, BOS included when wanted; 1 .. context_length - 1
  llm::SamplingParams sampling;  // sampling.max_tokens bounds the tokens of each turn
  int priority = kDefaultPriority;
  bool stop_at_end_of_generation = true;  // EOS and end-of-turn tokens end the turn
  OnStop on_stop = OnStop::finish;
  // Restricts sampling while it is active and sees every sampled token (token_filter.h); kept
  // for the sequence's whole life, across resume(). Null: unconstrained.
  std::shared_ptr<llm::TokenFilter> token_filter;
};

// How a paused sequence goes on: `appended` (e.g. a tool's result, already tokenized) is prefilled
// after everything the sequence holds, the stopping token included, and decoding continues with
// the KV pages kept from before. `sampling` replaces the sampling params (a new Sampler seeded from
// it); when empty, the current params and Sampler are kept. Either way a new turn begins: the stop
// matcher starts afresh and sampling.max_tokens counts from zero.
struct Continuation {
  std::vector<int32_t> appended;
  std::optional<llm::SamplingParams> sampling;
};

enum class SequenceState {
  waiting,     // runnable, not yet admitted to the KV pool
  prefilling,  // runnable, admitted, more than one token still to feed
  decoding,    // runnable, admitted, feeding its last sampled token
  preempted,   // runnable, its pages were taken back; its context will be prefilled again
  paused,      // a turn ended with OnStop::pause; waits for resume() or release()
  blocked,     // block()ed; waits for unblock()
  finished,    // done; the record stays until release()
};

std::string_view sequence_state_name(SequenceState state);

// Per-sequence accounting. Times are seconds of the scheduler's steady clock.
struct SequenceStats {
  int prompt_tokens = 0;            // as submitted
  int appended_tokens = 0;          // added by resume()
  int generated_tokens = 0;         // sampled, every turn together, stopping tokens included
  int turns = 1;                    // 1 + the number of resume() calls
  int preemptions = 0;              // times its pages were taken back
  int recomputed_tokens = 0;        // tokens fed again after preemptions
  int shared_tokens = 0;            // positions attached from other sequences' pages, not fed
  double waiting_seconds = 0;       // runnable but not served by the step running
  double running_seconds = 0;       // durations of the steps that served it
  double idle_seconds = 0;          // paused or blocked
  double time_to_first_token = -1;  // submit() to its first sampled token; -1 before that
  // Seconds from the previous sampled token to each token; a turn's first token counts from the
  // moment the turn began (submit or resume), so entry 0 is the time to first token.
  std::vector<double> token_latencies;
};

struct SequenceInfo {
  SequenceState state = SequenceState::waiting;
  std::optional<FinishReason> finish;  // why the last turn ended (paused or finished)
  std::string error;                   // the error when finish == FinishReason::error
  int priority = kDefaultPriority;
  int context_tokens = 0;  // prompt + generated + appended
  int cached_tokens = 0;   // positions whose keys and values are in the KV pool
  int kv_pages = 0;        // pages held
  SequenceStats stats;
};

}  // namespace icam::sched
