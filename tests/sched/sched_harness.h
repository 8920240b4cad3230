// Shared pieces of the scheduler tests: a tiny model with CPU backends over it, an event recorder,
// solo reference runs with llm::generate(), and a loop that drives a scheduler step by step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/generate.h"
#include "drivers/llm/engine/model.h"
#include "sched/events.h"
#include "sched/policy.h"
#include "sched/scheduler.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::sched {
// For readable test names and failure messages.
inline void PrintTo(PolicyKind kind, std::ostream* os) {
  *os << policy_kind_name(kind);
}
}  // namespace icam::sched

namespace icam::sched::testing {

using llm::testing::kTinyVocab;
using llm::testing::TinyRandom;

// A tiny model loaded once per test and any number of backends over it. Backends point into the
// model, so the model goes last.
struct TinyRig {
  std::unique_ptr<llm::Model> model;

  const llm::Tokenizer& tokenizer() const { return model->tokenizer(); }
  const llm::ModelConfig& config() const { return model->config(); }

  // A single-threaded CPU backend whose pool holds `pages` pages of `page_tokens` tokens.
  // `threads` > 1 runs the products and the scheduler's sampling on a pool.
  Result<std::unique_ptr<llm::CpuBackend>> backend(int page_tokens, int pages,
                                                   int threads = 1) const;
};

// The tiny llama (F32) by default; gemma3 with Q8_0 weights exercises sliding windows and
// quantized activations.
Result<TinyRig> make_rig(const std::string& arch = "llama",
                         llm::GgmlType type = llm::GgmlType::F32);

// What the events said about one sequence.
struct SequenceLog {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<uint64_t> token_steps;  // Recorder::step when each token arrived
  std::vector<FinishReason> pauses;
  std::optional<FinishReason> finished;
};

class Recorder : public SchedulerEvents {
 public:
  void on_token(SequenceId id, const llm::SampleResult& sample, std::string_view text) override;
  void on_pause(SequenceId id, FinishReason reason) override;
  void on_finish(SequenceId id, FinishReason reason) override;

  uint64_t step = 0;  // set by the test's driving loop
  std::map<SequenceId, SequenceLog> logs;
  std::vector<SequenceId> token_order;  // the id of every token event, in order
  // Called after each event is recorded, when set.
  std::function<void(SequenceId, int32_t)> token_hook;
  std::function<void(SequenceId, FinishReason)> finish_hook;
};

// A scheduler over `backend` with `policy` and `options`, reporting to `events`.
Result<std::unique_ptr<Scheduler>> make_scheduler(llm::Backend& backend, const TinyRig& rig,
                                                  const PolicyOptions& policy,
                                                  SchedulerEvents* events,
                                                  const SchedulerOptions& options = {});

// Steps until `max_steps` steps ran, or nothing is runnable and `more_to_come()` (when set) says
// no more work will be submitted. `before_step(step)` (when set) runs before each step and may
// submit. Counts steps in recorder.step. Fails on a step error.
Status drive(Scheduler& scheduler, Recorder& recorder, int max_steps,
             const std::function<void(uint64_t)>& before_step = {},
             const std::function<bool()>& more_to_come = {});

// The reference: the sequence alone, through llm::generate().
struct Solo {
  std::vector<int32_t> tokens;
  std::string text;
  std::string finish;  // finish_reason_name
};
Result<Solo> solo(llm::Backend& backend, const llm::Tokenizer& tokenizer,
                  const std::vector<int32_t>& prompt, const llm::SamplingParams& sampling,
                  bool stop_at_end_of_generation);

SequenceSpec spec(std::vector<int32_t> prompt, int max_tokens, int priority = kDefaultPriority);

// Prompt tokens that avoid the control tokens (<unk>, <s>, </s>) after an initial BOS.
std::vector<int32_t> prompt_tokens(TinyRandom& rng, int n);

}  // namespace icam::sched::testing
