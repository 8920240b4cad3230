#include "drivers/llm/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/sampling/stop_condition.h"

namespace icam::llm {

Result<GenerateResult> generate(Backend& backend, const Tokenizer& tokenizer,
                                const GenerateRequest& request, const TextSink& sink) {
  using Clock = std::chrono::steady_clock;
  const ModelConfig& config = backend.config();
  if (request.prompt.empty())
    return make_error(Errc::invalid_argument, "generate: the prompt is empty");
  if (static_cast<int64_t>(request.prompt.size()) >= config.context_length)
    return make_error(Errc::invalid_argument, "generate: the prompt has ", request.prompt.size(),
                      " tokens, which leaves no room in the model's context of ",
                      config.context_length);
  if (request.prefill_chunk <= 0)
    return make_error(Errc::invalid_argument, "generate: prefill_chunk must be positive");
  ICAM_TRY(validate(request.sampling));
  Sampler sampler = ICAM_TRY(Sampler::create(request.sampling));
  StopMatcher stops(request.sampling);

  GenerateResult result;
  result.prompt_tokens = static_cast<int>(request.prompt.size());
  BlockTable table(backend.kv_pool());
  std::vector<int32_t> history = request.prompt;
  std::vector<float> logits;

  // Prefill in chunks; only the last chunk asks for logits.
  const auto t0 = Clock::now();
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  for (int64_t start = 0; start < n_prompt; start += request.prefill_chunk) {
    const int64_t count = std::min<int64_t>(request.prefill_chunk, n_prompt - start);
    ICAM_TRY(table.reserve(start + count));
    SequenceStep step;
    step.tokens = std::span<const int32_t>(request.prompt).subspan(start, count);
    step.start_pos = static_cast<int32_t>(start);
    step.pages = table.pages();
    step.logits = start + count == n_prompt ? LogitsWanted::last : LogitsWanted::none;
    ICAM_TRY(backend.forward(std::span<const SequenceStep>(&step, 1), logits));
  }
  const auto t1 = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  auto emit = [&](const std::string& text) -> bool {
    if (text.empty()) return true;
    result.text += text;
    return !sink || sink(text);
  };

  int64_t pos = n_prompt;
  for (int produced = 0;; ++produced) {
    if (produced >= request.sampling.max_tokens) {
      result.finish = FinishReason::max_tokens;
      break;
    }
    SampleResult sample = ICAM_TRY(sampler.sample(logits, history));
    const int32_t token = sample.token;
    result.tokens.push_back(token);
    result.samples.push_back(std::move(sample));
    history.push_back(token);

    const bool end_of_generation =
        request.stop_at_end_of_generation && tokenizer.is_end_of_generation(token);
    const std::string piece = end_of_generation ? std::string() : tokenizer.token_piece(token);
    StopResult stop = stops.feed(token, piece);
    if (!emit(stop.text_to_emit)) {
      result.finish = FinishReason::cancelled;
      break;
    }
    if (stop.stopped) {
      result.finish =
          stop.reason == StopReason::token ? FinishReason::stop_token : FinishReason::stop_string;
      break;
    }
    if (end_of_generation) {
      result.finish = FinishReason::end_of_generation;
      break;
    }
    if (pos + 1 > config.context_length) {
      result.finish = FinishReason::context_full;
      break;
    }
    ICAM_TRY(table.reserve(pos + 1));
    SequenceStep step;
    step.tokens = std::span<const int32_t>(&history.back(), 1);
    step.start_pos = static_cast<int32_t>(pos);
    step.pages = table.pages();
    step.logits = LogitsWanted::last;
    ICAM_TRY(backend.forward(std::span<const SequenceStep>(&step, 1), logits));
    ++pos;
  }
  if (result.finish != FinishReason::stop_string && result.finish != FinishReason::stop_token &&
      result.finish != FinishReason::cancelled)
    emit(stops.flush());
  result.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return result;
}

}  // namespace icam::llm
