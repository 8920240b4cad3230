// A small command-line parser for icam's tools: long options with values (--name VALUE or
// --name=VALUE), short aliases, flags, and positional arguments. Unknown options and missing
// values are errors that name the option.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam::ctl {

struct OptionSpec {
  std::string name;   // "temperature" for --temperature
  std::string alias;  // "n" for -n; may be empty
  bool takes_value = true;
  bool repeatable = false;
  std::string help;
};

class Args {
 public:
  static Result<Args> parse(const std::vector<std::string>& argv,
                            const std::vector<OptionSpec>& specs);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::vector<std::string> get_all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

  Result<int64_t> get_int(const std::string& name, int64_t fallback, int64_t min,
                          int64_t max) const;
  Result<double> get_double(const std::string& name, double fallback) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

std::string usage_lines(const std::vector<OptionSpec>& specs);

}  // namespace icam::ctl
