#include "drivers/llm/sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

namespace icam::llm {
namespace {

using nlohmann::json;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct BadCase {
  const char* what;
  std::function<void(SamplingParams&)> change;
  const char* field;  // must appear in the message
  const char* range;  // must appear in the message
};

TEST(SamplingParamsTest, DefaultsAreValidAndGreedy) {
  SamplingParams p;
  EXPECT_TRUE(validate(p).ok());
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_EQ(p.max_tokens, 256);
}

TEST(SamplingParamsTest, EdgesOfEveryRangeAreValid) {
  SamplingParams p;
  p.temperature = 100.0f;
  p.top_k = 1;
  p.top_p = 1e-6f;
  p.min_p = 1.0f;
  p.repetition_penalty = 10.0f;
  p.repetition_window = 0;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.logprobs = 20;
  p.max_tokens = 1;
  p.stop_strings.assign(16, std::string(256, 'x'));
  p.stop_tokens = {0, 1};
  Status s = validate(p);
  EXPECT_TRUE(s.ok()) << s.error().message();
}

TEST(SamplingParamsTest, EachOutOfRangeFieldIsNamedWithItsRange) {
  const BadCase cases[] = {
      {"negative temperature", [](auto& p) { p.temperature = -0.1f; }, "temperature", "[0, 100]"},
      {"huge temperature", [](auto& p) { p.temperature = 100.5f; }, "temperature", "[0, 100]"},
      {"NaN temperature", [](auto& p) { p.temperature = kNaN; }, "temperature", "finite"},
      {"inf temperature", [](auto& p) { p.temperature = kInf; }, "temperature", "finite"},
      {"negative top_k", [](auto& p) { p.top_k = -1; }, "top_k", ">= 0"},
      {"zero top_p", [](auto& p) { p.top_p = 0.0f; }, "top_p", "(0, 1]"},
      {"top_p above 1", [](auto& p) { p.top_p = 1.01f; }, "top_p", "(0, 1]"},
      {"NaN top_p", [](auto& p) { p.top_p = kNaN; }, "top_p", "(0, 1]"},
      {"negative min_p", [](auto& p) { p.min_p = -0.01f; }, "min_p", "[0, 1]"},
      {"min_p above 1", [](auto& p) { p.min_p = 1.5f; }, "min_p", "[0, 1]"},
      {"NaN min_p", [](auto& p) { p.min_p = kNaN; }, "min_p", "[0, 1]"},
      {"zero repetition_penalty", [](auto& p) { p.repetition_penalty = 0.0f; },
       "repetition_penalty", "(0, 10]"},
      {"huge repetition_penalty", [](auto& p) { p.repetition_penalty = 11.0f; },
       "repetition_penalty", "(0, 10]"},
      {"negative repetition_window", [](auto& p) { p.repetition_window = -1; }, "repetition_window",
       ">= 0"},
      {"presence_penalty too low", [](auto& p) { p.presence_penalty = -2.5f; }, "presence_penalty",
       "[-2, 2]"},
      {"presence_penalty NaN", [](auto& p) { p.presence_penalty = kNaN; }, "presence_penalty",
       "finite"},
      {"frequency_penalty too high", [](auto& p) { p.frequency_penalty = 2.5f; },
       "frequency_penalty", "[-2, 2]"},
      {"frequency_penalty inf", [](auto& p) { p.frequency_penalty = -kInf; }, "frequency_penalty",
       "finite"},
      {"negative logprobs", [](auto& p) { p.logprobs = -1; }, "logprobs", "[0, 20]"},
      {"too many logprobs", [](auto& p) { p.logprobs = 21; }, "logprobs", "[0, 20]"},
      {"zero max_tokens", [](auto& p) { p.max_tokens = 0; }, "max_tokens", ">= 1"},
      {"empty stop string",
       [](auto& p) {
         p.stop_strings = {"ok", ""};
       },
       "stop_strings[1]", "1 to 256 bytes"},
      {"long stop string", [](auto& p) { p.stop_strings = {std::string(257, 'x')}; },
       "stop_strings[0]", "1 to 256 bytes"},
      {"too many stop strings", [](auto& p) { p.stop_strings.assign(17, "x"); }, "stop_strings",
       "at most 16"},
      {"negative stop token",
       [](auto& p) {
         p.stop_tokens = {3, -1};
       },
       "stop_tokens[1]", ">= 0"},
  };
  for (const BadCase& c : cases) {
    SamplingParams p;
    c.change(p);
    Status s = validate(p);
    ASSERT_FALSE(s.ok()) << c.what;
    EXPECT_EQ(s.error().code(), Errc::invalid_argument) << c.what;
    EXPECT_NE(s.error().message().find(c.field), std::string::npos)
        << c.what << ": " << s.error().message();
    EXPECT_NE(s.error().message().find(c.range), std::string::npos)
        << c.what << ": " << s.error().message();
  }
}

TEST(SamplingParamsTest, JsonRoundTripKeepsEveryField) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 40;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  p.repetition_penalty = 1.1f;
  p.repetition_window = 128;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = -0.25f;
  p.seed = 0xFFFFFFFFFFFFFFFFull;
  p.logprobs = 5;
  p.stop_strings = {"</s>", "\n\n"};
  p.stop_tokens = {1, 106};
  p.max_tokens = 77;
  auto back = sampling_params_from_json(to_json(p));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->temperature, p.temperature);
  EXPECT_EQ(back->top_k, p.top_k);
  EXPECT_EQ(back->top_p, p.top_p);
  EXPECT_EQ(back->min_p, p.min_p);
  EXPECT_EQ(back->repetition_penalty, p.repetition_penalty);
  EXPECT_EQ(back->repetition_window, p.repetition_window);
  EXPECT_EQ(back->presence_penalty, p.presence_penalty);
  EXPECT_EQ(back->frequency_penalty, p.frequency_penalty);
  EXPECT_EQ(back->seed, p.seed);
  EXPECT_EQ(back->logprobs, p.logprobs);
  EXPECT_EQ(back->stop_strings, p.stop_strings);
  EXPECT_EQ(back->stop_tokens, p.stop_tokens);
  EXPECT_EQ(back->max_tokens, p.max_tokens);
}

TEST(SamplingParamsTest, JsonMissingKeysKeepDefaultsAndIntegersServeAsFloats) {
  auto p = sampling_params_from_json(json{{"temperature", 1}, {"top_k", 5}});
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->temperature, 1.0f);
  EXPECT_EQ(p->top_k, 5);
  EXPECT_EQ(p->top_p, 1.0f);
  EXPECT_EQ(p->max_tokens, 256);
}

void expect_json_error(const json& input, const std::string& needle) {
  auto p = sampling_params_from_json(input);
  ASSERT_FALSE(p.ok()) << input.dump();
  EXPECT_EQ(p.error().code(), Errc::invalid_argument);
  EXPECT_NE(p.error().message().find(needle), std::string::npos)
      << input.dump() << " -> " << p.error().message();
}

TEST(SamplingParamsTest, JsonRejectsBadInputNamingTheKey) {
  expect_json_error(json::array(), "must be a JSON object");
  expect_json_error(json{{"temprature", 0.5}}, "unknown key 'temprature'");
  expect_json_error(json{{"temperature", "hot"}}, "'temperature' must be a number, got string");
  expect_json_error(json{{"top_k", 2.5}}, "'top_k' must be an integer");
  expect_json_error(json{{"top_k", true}}, "'top_k' must be an integer, got boolean");
  expect_json_error(json{{"max_tokens", 5000000000LL}}, "'max_tokens' value 5000000000");
  expect_json_error(json{{"seed", -1}}, "'seed' must be a non-negative integer");
  expect_json_error(json{{"seed", 1.5}}, "'seed' must be an integer");
  expect_json_error(json{{"stop_strings", "</s>"}}, "'stop_strings' must be an array of strings");
  expect_json_error(json{{"stop_strings", {"a", 3}}}, "'stop_strings' must be an array of strings");
  expect_json_error(json{{"stop_tokens", {1, "2"}}}, "'stop_tokens' must be an integer");
  expect_json_error(json{{"stop_tokens", {1, 3000000000LL}}}, "'stop_tokens' value 3000000000");
  expect_json_error(json{{"top_p", 1e300}}, "'top_p' must be a finite number that fits a float");
  // Well-typed but out of range: validate() runs on the result.
  expect_json_error(json{{"top_p", 0}}, "top_p must be in (0, 1]");
  expect_json_error(json{{"logprobs", 50}}, "logprobs must be in [0, 20]");
}

}  // namespace
}  // namespace icam::llm
