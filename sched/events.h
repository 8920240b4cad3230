// What a scheduler tells its owner about the sequences it runs.
//
// Delivery: on the engine thread, at the end of step() once the scheduler's state is consistent
// (and at the end of cancel()), in the order things happened. A callback may call the scheduler's
// submit(), resume(), block(), unblock(), cancel() and release() (events those cause are delivered
// in the same round), but not step(). Events already queued for a sequence that a callback
// releases are still delivered. Callbacks should be quick: the next step waits for them.
#pragma once

#include <cstdint>
#include <string_view>

#include "drivers/llm/sampling/sampler.h"
#include "sched/finish_reason.h"
#include "sched/sequence.h"

namespace icam::sched {

class SchedulerEvents {
 public:
  virtual ~SchedulerEvents() = default;

  // A token was sampled for `id` (sample.token; logprobs when the sampling params asked for
  // them: a greedy step's sample.logprob is NaN otherwise, see Sampler::set_greedy_logprob). `text`
  // is the output that became final with it, possibly empty: the stop matcher holds back what may
  // be the start of a stop string or an incomplete UTF-8 character, and when this token ends the
  // turn without a stop (max_tokens, end of generation, full context), `text` also holds everything
  // still held back. A stop string and an end-of-generation token are never part of the text.
  // Concatenated, the texts equal generate()'s text for the same context.
  virtual void on_token(SequenceId id, const llm::SampleResult& sample, std::string_view text) = 0;

  // A turn of a sequence submitted with OnStop::pause ended normally; the sequence keeps its KV
  // pages and waits for Scheduler::resume() or release().
  virtual void on_pause(SequenceId /*id*/, FinishReason /*reason*/) {}

  // The sequence finished; its KV pages are already free. Its record (state, stats, context)
  // stays until Scheduler::release().
  virtual void on_finish(SequenceId id, FinishReason reason) = 0;
};

}  // namespace icam::sched
