#include "drivers/llm/sampling/sampling_params.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

namespace icam::llm {
namespace {

Error out_of_range(std::string_view field, double value, std::string_view allowed) {
  return make_error(Errc::invalid_argument, "sampling params: ", field, " must be ", allowed,
                    ", got ", value);
}

Status check_penalty(std::string_view field, float value) {
  if (!std::isfinite(value) || value < -kMaxAbsPenalty || value > kMaxAbsPenalty) {
    return out_of_range(field, value, "finite and in [-2, 2]");
  }
  return ok_status();
}

// Typed readers for sampling_params_from_json. Each names the key in its error.

Error wrong_type(std::string_view key, std::string_view expected, const nlohmann::json& value) {
  return make_error(Errc::invalid_argument, "sampling params: key '", key, "' must be ", expected,
                    ", got ", value.type_name());
}

Result<float> read_float(std::string_view key, const nlohmann::json& value) {
  if (!value.is_number()) return wrong_type(key, "a number", value);
  double d = value.get<double>();
  // A double beyond float's range has no float value (the conversion would be undefined).
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
    return make_error(Errc::invalid_argument, "sampling params: key '", key,
                      "' must be a finite number that fits a float, got ", value.dump());
  }
  return static_cast<float>(d);
}

template <typename Int>
Result<Int> read_int(std::string_view key, const nlohmann::json& value) {
  if (!value.is_number_integer()) return wrong_type(key, "an integer", value);
  bool fits =
      value.is_number_unsigned()
          ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<Int>::max())
          : value.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<Int>::min()) &&
                value.get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<Int>::max());
  if (!fits) {
    return make_error(Errc::invalid_argument, "sampling params: key '", key, "' value ",
                      value.dump(), " does not fit in [", std::numeric_limits<Int>::min(), ", ",
                      std::numeric_limits<Int>::max(), "]");
  }
  return value.get<Int>();
}

Result<uint64_t> read_seed(std::string_view key, const nlohmann::json& value) {
  if (!value.is_number_integer()) return wrong_type(key, "an integer", value);
  if (!value.is_number_unsigned() && value.get<int64_t>() < 0) {
    return make_error(Errc::invalid_argument, "sampling params: key '", key,
                      "' must be a non-negative integer, got ", value.dump());
  }
  return value.get<uint64_t>();
}

Result<std::vector<std::string>> read_strings(std::string_view key, const nlohmann::json& value) {
  if (!value.is_array()) return wrong_type(key, "an array of strings", value);
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) return wrong_type(key, "an array of strings", item);
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::vector<int32_t>> read_tokens(std::string_view key, const nlohmann::json& value) {
  if (!value.is_array()) return wrong_type(key, "an array of integers", value);
  std::vector<int32_t> out;
  for (const auto& item : value) out.push_back(ICAM_TRY(read_int<int32_t>(key, item)));
  return out;
}

}  // namespace

Status validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f || p.temperature > kMaxTemperature) {
    return out_of_range("temperature", p.temperature, "finite and in [0, 100] (0 = greedy)");
  }
  if (p.top_k < 0) return out_of_range("top_k", p.top_k, ">= 0 (0 = off)");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return out_of_range("top_p", p.top_p, "in (0, 1] (1 = off)");
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return out_of_range("min_p", p.min_p, "in [0, 1] (0 = off)");
  }
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= kMaxRepetitionPenalty)) {
    return out_of_range("repetition_penalty", p.repetition_penalty, "in (0, 10] (1 = off)");
  }
  if (p.repetition_window < 0) {
    return out_of_range("repetition_window", p.repetition_window, ">= 0 (0 = whole history)");
  }
  ICAM_TRY(check_penalty("presence_penalty", p.presence_penalty));
  ICAM_TRY(check_penalty("frequency_penalty", p.frequency_penalty));
  if (p.logprobs < 0 || p.logprobs > kMaxLogprobs) {
    return out_of_range("logprobs", p.logprobs, "in [0, 20]");
  }
  if (p.max_tokens < 1) return out_of_range("max_tokens", p.max_tokens, ">= 1");
  if (p.stop_strings.size() > kMaxStopStrings) {
    return make_error(Errc::invalid_argument, "sampling params: stop_strings may hold at most ",
                      kMaxStopStrings, " strings, got ", p.stop_strings.size());
  }
  for (std::size_t i = 0; i < p.stop_strings.size(); ++i) {
    std::size_t size = p.stop_strings[i].size();
    if (size == 0 || size > kMaxStopStringBytes) {
      return make_error(Errc::invalid_argument, "sampling params: stop_strings[", i,
                        "] must be 1 to ", kMaxStopStringBytes, " bytes long, got ", size);
    }
  }
  for (std::size_t i = 0; i < p.stop_tokens.size(); ++i) {
    if (p.stop_tokens[i] < 0) {
      return make_error(Errc::invalid_argument, "sampling params: stop_tokens[", i,
                        "] must be a token id >= 0, got ", p.stop_tokens[i]);
    }
  }
  return ok_status();
}

Result<SamplingParams> sampling_params_from_json(const nlohmann::json& json) {
  if (!json.is_object()) {
    return make_error(Errc::invalid_argument, "sampling params must be a JSON object, got ",
                      json.type_name());
  }
  SamplingParams p;
  for (const auto& [key, value] : json.items()) {
    if (key == "temperature") {
      p.temperature = ICAM_TRY(read_float(key, value));
    } else if (key == "top_k") {
      p.top_k = ICAM_TRY(read_int<int>(key, value));
    } else if (key == "top_p") {
      p.top_p = ICAM_TRY(read_float(key, value));
    } else if (key == "min_p") {
      p.min_p = ICAM_TRY(read_float(key, value));
    } else if (key == "repetition_penalty") {
      p.repetition_penalty = ICAM_TRY(read_float(key, value));
    } else if (key == "repetition_window") {
      p.repetition_window = ICAM_TRY(read_int<int>(key, value));
    } else if (key == "presence_penalty") {
      p.presence_penalty = ICAM_TRY(read_float(key, value));
    } else if (key == "frequency_penalty") {
      p.frequency_penalty = ICAM_TRY(read_float(key, value));
    } else if (key == "seed") {
      p.seed = ICAM_TRY(read_seed(key, value));
    } else if (key == "logprobs") {
      p.logprobs = ICAM_TRY(read_int<int>(key, value));
    } else if (key == "stop_strings") {
      p.stop_strings = ICAM_TRY(read_strings(key, value));
    } else if (key == "stop_tokens") {
      p.stop_tokens = ICAM_TRY(read_tokens(key, value));
    } else if (key == "max_tokens") {
      p.max_tokens = ICAM_TRY(read_int<int>(key, value));
    } else {
      return make_error(Errc::invalid_argument, "sampling params: unknown key '", key, "'");
    }
  }
  ICAM_TRY(validate(p));
  return p;
}

nlohmann::json to_json(const SamplingParams& p) {
  return nlohmann::json{
      {"temperature", p.temperature},
      {"top_k", p.top_k},
      {"top_p", p.top_p},
      {"min_p", p.min_p},
      {"repetition_penalty", p.repetition_penalty},
      {"repetition_window", p.repetition_window},
      {"presence_penalty", p.presence_penalty},
      {"frequency_penalty", p.frequency_penalty},
      {"seed", p.seed},
      {"logprobs", p.logprobs},
      {"stop_strings", p.stop_strings},
      {"stop_tokens", p.stop_tokens},
      {"max_tokens", p.max_tokens},
  };
}

}  // namespace icam::llm
