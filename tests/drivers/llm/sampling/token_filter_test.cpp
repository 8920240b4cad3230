// Sampling under a TokenFilter (token_filter.h): the choice is always an allowed token, the best
// one for greedy decoding, drawn in proportion to the model's probabilities otherwise.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "drivers/llm/sampling/sampler.h"
#include "drivers/llm/sampling/token_filter.h"

namespace icam::llm {
namespace {

// Allows the tokens whose id is a multiple of `modulus`; counts how it is asked.
class MultiplesOf : public TokenFilter {
 public:
  explicit MultiplesOf(int32_t modulus, bool active = true) : modulus_(modulus), active_(active) {}
  bool active() const override { return active_; }
  bool allows(int32_t token) const override {
    ++asked_one;
    return token % modulus_ == 0;
  }
  void allowed_tokens(int32_t vocab_size, std::vector<uint8_t>& allowed) const override {
    ++asked_all;
    allowed.assign(static_cast<size_t>(vocab_size), 0);
    for (int32_t t = 0; t < vocab_size; t += modulus_) allowed[t] = 1;
  }
  void accept(int32_t) override {}

  mutable int asked_one = 0;
  mutable int asked_all = 0;

 private:
  int32_t modulus_;
  bool active_;
};

Sampler make_sampler(SamplingParams params) {
  auto s = Sampler::create(params);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

TEST(TokenFilter, GreedyTakesTheBestAllowedToken) {
  SamplingParams params;
  params.temperature = 0.0f;
  Sampler sampler = make_sampler(params);
  const std::vector<float> logits = {1.0f, 9.0f, 3.0f, 7.0f, 5.0f, 8.0f, 2.0f};
  MultiplesOf even(2);
  auto r = sampler.sample(logits, {}, &even);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token, 4);  // 1 (9.0) and 5 (8.0) and 3 (7.0) are odd
  EXPECT_EQ(even.asked_all, 1);
  // The model's own choice allowed: one question, no full mask.
  MultiplesOf any(1);
  r = sampler.sample(logits, {}, &any);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token, 1);
  EXPECT_EQ(any.asked_one, 1);
  EXPECT_EQ(any.asked_all, 0);
  // An inactive filter is not consulted.
  MultiplesOf idle(2, /*active=*/false);
  r = sampler.sample(logits, {}, &idle);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token, 1);
  EXPECT_EQ(idle.asked_one, 0);
}

TEST(TokenFilter, DrawsFollowTheRestrictedDistribution) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.seed = 7;
  Sampler sampler = make_sampler(params);
  // Odd tokens carry most of the mass; among the even ones 0 : 2 : 4 = 1 : e : e^2.
  const std::vector<float> logits = {0.0f, 5.0f, 1.0f, 5.0f, 2.0f, 5.0f};
  MultiplesOf even(2);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto r = sampler.sample(logits, {}, &even);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->token % 2, 0);
    ++counts[r->token];
  }
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  for (int32_t t : {0, 2, 4}) {
    const double expected = n * std::exp(static_cast<double>(t / 2)) / z;
    EXPECT_NEAR(counts[t], expected, 5 * std::sqrt(expected)) << "token " << t;
  }
}

TEST(TokenFilter, NothingAllowedIsAnError) {
  SamplingParams params;
  params.temperature = 0.0f;
  Sampler sampler = make_sampler(params);
  const float inf = std::numeric_limits<float>::infinity();
  // The only finite logits are on odd tokens.
  const std::vector<float> logits = {-inf, 1.0f, -inf, 2.0f};
  MultiplesOf even(2);
  auto r = sampler.sample(logits, {}, &even);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("filter"), std::string::npos);
}

}  // namespace
}  // namespace icam::llm
