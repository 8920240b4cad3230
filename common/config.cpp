#include "common/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/log.h"

namespace icam {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return (value && *value) ? std::string(value) : fallback;
}

std::string user_home() {
  return env_or("HOME", "/root");
}

Config defaults() {
  Config c;
  c.home = env_or("XDG_CACHE_HOME", user_home() + "/.cache") + "/icam";
  c.model = "";  // derived from home after overrides, see finish()
  c.log_level = "warn";
  c.threads = 0;
  c.kv_pool_bytes = 256ull << 20;
  c.backend = "cpu";  // the CUDA backend has not yet been validated on a device (docs/gpu.md)
  const std::string runtime = env_or("XDG_RUNTIME_DIR", "/tmp/icam-" + std::to_string(::getuid()));
  c.socket = runtime + "/icam/icamd.sock";
  for (const auto& key : config_keys()) c.origin[key.name] = "default";
  return c;
}

Status check_backend(const std::string& value, const std::string& source) {
  if (value == "cpu" || value == "cuda" || value == "auto") return ok_status();
  return make_error(Errc::invalid_argument, source, ": backend must be cpu, cuda or auto, not '",
                    value, "'");
}

Status check_log_level(const std::string& value, const std::string& source) {
  if (log::parse_level(value)) return ok_status();
  return make_error(Errc::invalid_argument, source,
                    ": log_level must be trace, debug, info, warn, error or off, not '", value,
                    "'");
}

Result<uint64_t> parse_u64(const std::string& text, const std::string& source) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
    return make_error(Errc::invalid_argument, source, ": expected a non-negative integer, got '",
                      text, "'");
  return std::stoull(text);
}

Status apply_env(Config& c) {
  auto take = [&](const char* env, std::string& field, const char* key) {
    if (const char* v = std::getenv(env); v && *v) {
      field = v;
      c.origin[key] = std::string("env:") + env;
    }
  };
  take("ICAM_HOME", c.home, "home");
  take("ICAM_MODEL", c.model, "model");
  take("ICAM_LOG_LEVEL", c.log_level, "log_level");
  take("ICAM_BACKEND", c.backend, "backend");
  take("ICAM_SOCKET", c.socket, "socket");
  if (const char* v = std::getenv("ICAM_THREADS"); v && *v) {
    uint64_t n = ICAM_TRY(parse_u64(v, "ICAM_THREADS"));
    if (n > 1024) return make_error(Errc::invalid_argument, "ICAM_THREADS: at most 1024, got ", n);
    c.threads = static_cast<int>(n);
    c.origin["threads"] = "env:ICAM_THREADS";
  }
  if (const char* v = std::getenv("ICAM_KV_POOL_BYTES"); v && *v) {
    c.kv_pool_bytes = ICAM_TRY(parse_u64(v, "ICAM_KV_POOL_BYTES"));
    c.origin["kv_pool_bytes"] = "env:ICAM_KV_POOL_BYTES";
  }
  ICAM_TRY(check_backend(c.backend, c.origin["backend"]));
  ICAM_TRY(check_log_level(c.log_level, c.origin["log_level"]));
  return ok_status();
}

void finish(Config& c) {
  if (c.model.empty()) c.model = c.home + "/models/" + kDefaultModelFile;
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = {
      {"home", "ICAM_HOME", "Cache and state directory; the default model lives in home/models/"},
      {"model", "ICAM_MODEL", "GGUF model loaded when a command names none"},
      {"log_level", "ICAM_LOG_LEVEL", "Least severe log level written to stderr"},
      {"threads", "ICAM_THREADS", "Engine worker threads; 0 means one per online core"},
      {"kv_pool_bytes", "ICAM_KV_POOL_BYTES", "Size of the KV cache pool in bytes"},
      {"backend", "ICAM_BACKEND", "Inference backend: cpu, cuda or auto (CUDA if a device is present)"},
      {"socket", "ICAM_SOCKET", "Unix socket of the daemon icamd"},
  };
  return keys;
}

Status apply_config_json(Config& c, const std::string& text, const std::string& source) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return make_error(Errc::invalid_argument, source, ": not valid JSON");
  if (!doc.is_object())
    return make_error(Errc::invalid_argument, source, ": the top level must be a JSON object");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    const auto& value = it.value();
    const std::string where = source + ": key '" + key + "'";
    auto want_string = [&](std::string& field) -> Status {
      if (!value.is_string())
        return make_error(Errc::invalid_argument, where, ": expected a string");
      field = value.get<std::string>();
      return ok_status();
    };
    auto want_uint = [&](uint64_t& out) -> Status {
      if (!value.is_number_unsigned())
        return make_error(Errc::invalid_argument, where, ": expected a non-negative integer");
      out = value.get<uint64_t>();
      return ok_status();
    };
    if (key == "home") {
      ICAM_TRY(want_string(c.home));
    } else if (key == "model") {
      ICAM_TRY(want_string(c.model));
    } else if (key == "log_level") {
      ICAM_TRY(want_string(c.log_level));
      ICAM_TRY(check_log_level(c.log_level, where));
    } else if (key == "backend") {
      ICAM_TRY(want_string(c.backend));
      ICAM_TRY(check_backend(c.backend, where));
    } else if (key == "socket") {
      ICAM_TRY(want_string(c.socket));
    } else if (key == "threads") {
      uint64_t n = 0;
      ICAM_TRY(want_uint(n));
      if (n > 1024) return make_error(Errc::invalid_argument, where, ": at most 1024");
      c.threads = static_cast<int>(n);
    } else if (key == "kv_pool_bytes") {
      ICAM_TRY(want_uint(c.kv_pool_bytes));
    } else {
      return make_error(Errc::invalid_argument, source, ": unknown key '", key, "'");
    }
    c.origin[key] = "file:" + source;
  }
  return ok_status();
}

Result<Config> load_config(const std::string& file) {
  Config c = defaults();
  std::string path = file.empty() ? env_or("ICAM_CONFIG", "") : file;
  bool required = !path.empty();
  if (path.empty())
    path = env_or("XDG_CONFIG_HOME", user_home() + "/.config") + "/icam/config.json";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path);
    if (!in) return make_error(Errc::io, path, ": cannot open config file");
    std::stringstream buffer;
    buffer << in.rdbuf();
    ICAM_TRY(apply_config_json(c, buffer.str(), path));
  } else if (required) {
    return make_error(Errc::not_found, path, ": config file does not exist");
  }
  ICAM_TRY(apply_env(c));
  finish(c);
  log::set_level(*log::parse_level(c.log_level));
  return c;
}

std::string config_reference_markdown() {
  Config d = defaults();
  finish(d);
  auto default_of = [&](const std::string& key) -> std::string {
    if (key == "home") return "$XDG_CACHE_HOME/icam or ~/.cache/icam";
    if (key == "model") return "<home>/models/" + std::string(kDefaultModelFile);
    if (key == "log_level") return d.log_level;
    if (key == "threads") return std::to_string(d.threads);
    if (key == "kv_pool_bytes") return std::to_string(d.kv_pool_bytes);
    if (key == "backend") return d.backend;
    if (key == "socket")
      return "$XDG_RUNTIME_DIR/icam/icamd.sock or /tmp/icam-<uid>/icam/icamd.sock";
    return "";
  };
  std::ostringstream out;
  out << "| key | environment | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& key : config_keys())
    out << "| `" << key.name << "` | `" << key.env << "` | `" << default_of(key.name) << "` | "
        << key.description << " |\n";
  return out.str();
}

}  // namespace icam
