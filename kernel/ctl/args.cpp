#include "kernel/ctl/args.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace icam::ctl {

Result<Args> Args::parse(const std::vector<std::string>& argv,
                         const std::vector<OptionSpec>& specs) {
  Args args;
  auto find = [&](const std::string& key, bool is_alias) -> const OptionSpec* {
    for (const auto& s : specs)
      if ((is_alias ? s.alias : s.name) == key && !key.empty()) return &s;
    return nullptr;
  };
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      for (size_t j = i + 1; j < argv.size(); ++j) args.positional_.push_back(argv[j]);
      break;
    }
    const bool is_long = a.rfind("--", 0) == 0;
    const bool is_short = !is_long && a.size() > 1 && a[0] == '-';
    if (!is_long && !is_short) {
      args.positional_.push_back(a);
      continue;
    }
    std::string key = a.substr(is_long ? 2 : 1);
    std::optional<std::string> inline_value;
    if (auto eq = key.find('='); is_long && eq != std::string::npos) {
      inline_value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    const OptionSpec* spec = find(key, is_short);
    if (!spec) return make_error(Errc::invalid_argument, "unknown option '", a, "'");
    if (!spec->repeatable && args.values_.count(spec->name))
      return make_error(Errc::invalid_argument, "option --", spec->name, " given twice");
    if (!spec->takes_value) {
      if (inline_value)
        return make_error(Errc::invalid_argument, "option --", spec->name, " takes no value");
      args.values_[spec->name].push_back("");
      continue;
    }
    if (inline_value) {
      args.values_[spec->name].push_back(*inline_value);
    } else if (i + 1 < argv.size()) {
      args.values_[spec->name].push_back(argv[++i]);
    } else {
      return make_error(Errc::invalid_argument, "option --", spec->name, " needs a value");
    }
  }
  return args;
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

Result<int64_t> Args::get_int(const std::string& name, int64_t fallback, int64_t min,
                              int64_t max) const {
  auto v = get(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long parsed = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE)
    return make_error(Errc::invalid_argument, "option --", name, ": '", *v, "' is not an integer");
  if (parsed < min || parsed > max)
    return make_error(Errc::invalid_argument, "option --", name, ": ", parsed, " is out of range (",
                      min, "..", max, ")");
  return static_cast<int64_t>(parsed);
}

Result<double> Args::get_double(const std::string& name, double fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const double parsed = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE)
    return make_error(Errc::invalid_argument, "option --", name, ": '", *v, "' is not a number");
  return parsed;
}

std::string usage_lines(const std::vector<OptionSpec>& specs) {
  std::ostringstream out;
  for (const auto& s : specs) {
    std::string left = "  --" + s.name + (s.takes_value ? " VALUE" : "");
    if (!s.alias.empty())
      left = "  -" + s.alias + ", --" + s.name + (s.takes_value ? " VALUE" : "");
    out << left;
    for (size_t pad = left.size(); pad < 30; ++pad) out << ' ';
    out << ' ' << s.help << "\n";
  }
  return out.str();
}

}  // namespace icam::ctl
