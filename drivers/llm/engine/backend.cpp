#include "drivers/llm/engine/backend.h"

#include <unordered_set>

namespace icam::llm {

Status validate_batch(std::span<const SequenceStep> batch, const ModelConfig& config,
                      const KvPool& pool) {
  if (batch.empty()) return make_error(Errc::invalid_argument, "forward: the batch is empty");
  std::unordered_set<int32_t> written;  // pages this step writes keys and values into
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceStep& step = batch[s];
    if (step.tokens.empty())
      return make_error(Errc::invalid_argument, "forward: sequence ", s, " brings no tokens");
    if (step.start_pos < 0)
      return make_error(Errc::invalid_argument, "forward: sequence ", s, " starts at position ",
                        step.start_pos);
    const int64_t end = static_cast<int64_t>(step.start_pos) + step.tokens.size();
    if (end > config.context_length)
      return make_error(Errc::invalid_argument, "forward: sequence ", s, " reaches position ", end,
                        ", beyond the model's context of ", config.context_length, " tokens");
    const int64_t pages_needed = (end + pool.page_tokens() - 1) / pool.page_tokens();
    if (static_cast<int64_t>(step.pages.size()) < pages_needed)
      return make_error(Errc::invalid_argument, "forward: sequence ", s, " needs ", pages_needed,
                        " pages for ", end, " positions but its block table has ",
                        step.pages.size());
    for (int64_t i = 0; i < pages_needed; ++i) {
      if (!pool.valid(step.pages[i]))
        return make_error(Errc::invalid_argument, "forward: sequence ", s, " block table entry ", i,
                          " (page ", step.pages[i], ") is not an allocated page");
    }
    // A step writes the pages covering [start_pos, end). Writing into a page that another sequence
    // also holds (a shared prefix) or that another sequence of this batch writes would corrupt it.
    for (int64_t i = step.start_pos / pool.page_tokens(); i < pages_needed; ++i) {
      const int32_t page = step.pages[i];
      if (pool.ref_count(page) != 1)
        return make_error(Errc::invalid_argument, "forward: sequence ", s,
                          " would write into page ", page, ", which is shared (",
                          pool.ref_count(page), " references); copy it first");
      if (!written.insert(page).second)
        return make_error(Errc::invalid_argument, "forward: sequence ", s,
                          " would write into page ", page,
                          ", which another sequence of the batch also writes");
    }
    for (size_t t = 0; t < step.tokens.size(); ++t) {
      if (step.tokens[t] < 0 || step.tokens[t] >= config.n_vocab)
        return make_error(Errc::invalid_argument, "forward: sequence ", s, " token ", t, " (id ",
                          step.tokens[t], ") is outside the vocabulary of ", config.n_vocab);
    }
  }
  return ok_status();
}

}  // namespace icam::llm
