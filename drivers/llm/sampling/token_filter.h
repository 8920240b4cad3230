// A constraint on which token may come next, consulted by the Sampler (sampler.h) for each step
// while it is active. The kernel's tool-call filter (kernel/tool_call_filter.h) is one: once the
// model opens a tool call, only tokens that keep the call well formed may follow.
//
// The sampler first makes its usual choice and asks allows() about that one token; only when the
// filter refuses it does it ask for the whole allowed set (allowed_tokens()) and choose again
// among those. With fresh randomness for the second draw that is exactly sampling from the
// distribution restricted to the allowed tokens (a rejected draw costs one more), and for greedy
// decoding it is the best allowed token, so a filter that mostly agrees with the model costs one
// allows() call per step.
#pragma once

#include <cstdint>
#include <vector>

namespace icam::llm {

class TokenFilter {
 public:
  virtual ~TokenFilter() = default;
  // Whether the next token is constrained at all; when false the sampler ignores the filter.
  virtual bool active() const = 0;
  // Whether `token` may come next.
  virtual bool allows(int32_t token) const = 0;
  // Sets allowed[t] to 1 when token t may come next and 0 otherwise, for every t < vocab_size.
  // The default asks allows() for each token; filters can do better.
  virtual void allowed_tokens(int32_t vocab_size, std::vector<uint8_t>& allowed) const {
    allowed.assign(static_cast<size_t>(vocab_size), 0);
    for (int32_t t = 0; t < vocab_size; ++t) allowed[t] = allows(t) ? 1 : 0;
  }
  // `token` was chosen; called for every token of the sequence's output, constrained or not
  // (a filter may watch the output to know when to become active).
  virtual void accept(int32_t token) = 0;
};

}  // namespace icam::llm
