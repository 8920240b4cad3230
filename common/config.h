// icam's configuration: built-in defaults, then a JSON file, then environment variables, each
// overriding the one before. The table of keys lives in config.cpp (config_keys()) and is the
// single source for parsing, `icamctl config` and docs/configuration.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam {

struct Config {
  std::string home;            // ICAM_HOME: cache and state root (models/ lives under it)
  std::string model;           // path of the model loaded when none is named
  std::string log_level;       // trace|debug|info|warn|error|off
  int threads = 0;             // worker threads for the engine; 0 = one per online core
  uint64_t kv_pool_bytes = 0;  // bytes of KV cache pool
  std::string backend;         // cpu|cuda|auto
  std::string socket;          // icamd's Unix socket path

  // Where each key's value came from: "default", "file:<path>" or "env:<NAME>".
  std::map<std::string, std::string> origin;
};

struct ConfigKey {
  const char* name;         // key in the JSON file
  const char* env;          // environment variable that overrides it
  const char* description;  // one line for the docs
};

const std::vector<ConfigKey>& config_keys();

// Loads the configuration. `file` names a JSON file; when empty, $ICAM_CONFIG is used, and when
// that is unset, ~/.config/icam/config.json if it exists. A file that exists but is malformed, an
// unknown key, or a value of the wrong type is an error naming the file and the key.
Result<Config> load_config(const std::string& file = "");

// Parses a config from JSON text (used by load_config and tests); `source` names it in errors.
Status apply_config_json(Config& config, const std::string& text, const std::string& source);

// The default model file name and its location under `home`.
inline constexpr const char* kDefaultModelFile = "gemma-3-270m-q4_k_m.gguf";

// Markdown table of every key with its default value and environment variable.
std::string config_reference_markdown();

}  // namespace icam
