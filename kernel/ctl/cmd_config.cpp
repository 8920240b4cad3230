#include <iostream>

#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"

namespace icam::ctl {

int cmd_config(const Config& config, const std::vector<std::string>& argv) {
  static const std::vector<OptionSpec> specs = {
      {"markdown", "", false, false,
       "print the reference table of every key (docs/configuration.md)"},
  };
  auto args = Args::parse(argv, specs);
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("markdown")) {
    std::cout << config_reference_markdown();
    return kExitOk;
  }
  auto show = [&](const char* key, const std::string& value) {
    std::cout << key << std::string(16 - std::string(key).size(), ' ') << value << "  ("
              << config.origin.at(key) << ")\n";
  };
  show("home", config.home);
  show("model", config.model);
  show("log_level", config.log_level);
  show("threads", std::to_string(config.threads));
  show("kv_pool_bytes", std::to_string(config.kv_pool_bytes));
  show("backend", config.backend);
  show("socket", config.socket);
  return kExitOk;
}

}  // namespace icam::ctl
