#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {

Result<std::unique_ptr<llm::CpuBackend>> TinyRig::backend(int page_tokens, int pages,
                                                           int threads) const {
  const llm::ModelConfig& c = model->config();
  const uint64_t page_bytes = 2ull * c.n_layers * page_tokens * c.kv_dim() * sizeof(uint16_t);
  return llm::CpuBackend::create(c, model->weights(),
                                 llm::KvPoolOptions{page_bytes * pages, page_tokens}, threads);
}

Result<TinyRig> make_rig(const std::string& arch, llm::GgmlType type) {
  TinyRig rig;
  rig.model = ICAM_TRY(
      llm::Model::load(llm::testing::tiny_model_file(llm::testing::tiny_spec(arch, type))));
  return rig;
}

void Recorder::on_token(SequenceId id, const llm::SampleResult& sample, std::string_view text) {
  SequenceLog& log = logs[id];
  log.tokens.push_back(sample.token);
  log.text += text;
  log.token_steps.push_back(step);
  token_order.push_back(id);
  if (token_hook) token_hook(id, sample.token);
}

void Recorder::on_pause(SequenceId id, FinishReason reason) {
  logs[id].pauses.push_back(reason);
}

void Recorder::on_finish(SequenceId id, FinishReason reason) {
  logs[id].finished = reason;
  if (finish_hook) finish_hook(id, reason);
}

Result<std::unique_ptr<Scheduler>> make_scheduler(llm::Backend& backend, const TinyRig& rig,
                                                  const PolicyOptions& policy,
                                                  SchedulerEvents* events,
                                                  const SchedulerOptions& options) {
  std::unique_ptr<Policy> p = ICAM_TRY(make_policy(policy));
  return Scheduler::create(backend, rig.tokenizer(), std::move(p), events, options);
}

Status drive(Scheduler& scheduler, Recorder& recorder, int max_steps,
             const std::function<void(uint64_t)>& before_step,
             const std::function<bool()>& more_to_come) {
  for (int i = 0; i < max_steps; ++i) {
    if (before_step) before_step(recorder.step);
    if (!scheduler.has_work() && !(more_to_come && more_to_come())) break;
    ICAM_TRY(scheduler.step());
    ++recorder.step;
  }
  return ok_status();
}

Result<Solo> solo(llm::Backend& backend, const llm::Tokenizer& tokenizer,
                  const std::vector<int32_t>& prompt, const llm::SamplingParams& sampling,
                  bool stop_at_end_of_generation) {
  llm::GenerateRequest request;
  request.prompt = prompt;
  request.sampling = sampling;
  request.stop_at_end_of_generation = stop_at_end_of_generation;
  llm::GenerateResult r = ICAM_TRY(llm::generate(backend, tokenizer, request));
  return Solo{std::move(r.tokens), std::move(r.text),
              std::string(llm::finish_reason_name(r.finish))};
}

SequenceSpec spec(std::vector<int32_t> prompt, int max_tokens, int priority) {
  SequenceSpec s;
  s.prompt = std::move(prompt);
  s.sampling.max_tokens = max_tokens;
  s.priority = priority;
  return s;
}

std::vector<int32_t> prompt_tokens(TinyRandom& rng, int n) {
  std::vector<int32_t> p = {llm::testing::kTinyBos};
  while (static_cast<int>(p.size()) < n) p.push_back(3 + rng.below(kTinyVocab - 3));
  return p;
}

}  // namespace icam::sched::testing
