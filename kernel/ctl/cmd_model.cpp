#include <iostream>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/model_info.h"
#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"

namespace icam::ctl {

int cmd_model(const Config& config, const std::vector<std::string>& argv) {
  static const std::vector<OptionSpec> specs = {
      {"json", "", false, false, "print JSON instead of a table"},
      {"help", "h", false, false, "show this help"},
  };
  if (argv.empty() || argv[0] != "info")
    return fail(kExitUsage, "usage: icamctl model info [PATH] [--json]");
  auto args = Args::parse(std::vector<std::string>(argv.begin() + 1, argv.end()), specs);
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamctl model info [PATH] [--json]\n" << usage_lines(specs);
    return kExitOk;
  }
  if (args->positional().size() > 1) return fail(kExitUsage, "model info takes at most one PATH");
  const std::string path = args->positional().empty() ? config.model : args->positional()[0];

  auto file = llm::GgufFile::open(path);
  if (!file.ok()) return fail(kExitFailure, file.error().message());
  auto info = llm::describe_model(**file);
  if (!info.ok()) return fail(kExitFailure, info.error().message());
  if (args->has("json")) {
    std::cout << llm::model_info_json(*info).dump(2) << "\n";
  } else {
    std::cout << llm::model_info_text(*info);
  }
  return kExitOk;
}

}  // namespace icam::ctl
