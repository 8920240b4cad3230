// icam-driver-kv: a small key/value store for one agent, kept as a JSON object in a file in the
// workspace (kv-<agent>.json). Every change rewrites the file through a rename, so a crash leaves
// the old or the new store, never half of one.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "drivers/sdk/driver.h"

namespace fs = std::filesystem;
using icam::Errc;
using icam::Result;
using icam::make_error;
using icam::driver::ToolOutput;
using nlohmann::json;

namespace {

constexpr size_t kMaxStoreBytes = 256 * 1024;  // the whole store must fit in one answer
fs::path store_path;

Result<json> load() {
  std::ifstream in(store_path, std::ios::binary);
  if (!in) return json::object();  // no store yet
  json store = json::parse(std::istreambuf_iterator<char>(in), {}, nullptr, false);
  if (store.is_discarded() || !store.is_object()) {
    return make_error(Errc::corrupt, store_path.filename().string(), " is not a JSON object");
  }
  return store;
}

icam::Status save(const json& store) {
  const std::string text = store.dump(1);
  if (text.size() > kMaxStoreBytes) return make_error(Errc::resource_exhausted, "store over ", kMaxStoreBytes, " bytes");
  const fs::path temp = store_path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out.write(text.data(), static_cast<std::streamsize>(text.size())) || !out.flush()) {
      return make_error(Errc::io, "writing ", temp.filename().string());
    }
  }
  if (std::rename(temp.c_str(), store_path.c_str()) != 0) return make_error(Errc::io, "renaming the store");
  return icam::ok_status();
}

Result<ToolOutput> kv_get(const json& args) {
  const std::string key = ICAM_TRY(icam::driver::string_arg(args, "key"));
  const json store = ICAM_TRY(load());
  auto found = store.find(key);
  if (found == store.end()) return make_error(Errc::not_found, "no key \"", key, "\"");
  return ToolOutput::json({{"key", key}, {"value", *found}});
}

Result<ToolOutput> kv_set(const json& args) {
  const std::string key = ICAM_TRY(icam::driver::string_arg(args, "key"));
  json store = ICAM_TRY(load());
  store[key] = args["value"];
  ICAM_TRY(save(store));
  return ToolOutput::json({{"key", key}, {"stored", true}});
}

Result<ToolOutput> kv_delete(const json& args) {
  const std::string key = ICAM_TRY(icam::driver::string_arg(args, "key"));
  json store = ICAM_TRY(load());
  const bool existed = store.erase(key) > 0;
  if (existed) ICAM_TRY(save(store));
  return ToolOutput::json({{"key", key}, {"removed", existed}});
}

Result<ToolOutput> kv_list(const json&) {
  const json store = ICAM_TRY(load());
  json keys = json::array();
  for (const auto& [key, value] : store.items()) keys.push_back(key);
  return ToolOutput::json({{"keys", keys}});
}

}  // namespace

int main(int argc, char** argv) {
  // Usage: icam-driver-kv [agent]. The agent name becomes part of a file name: keep it tame.
  std::string agent = argc > 1 ? argv[1] : "default";
  for (char c : agent) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return 2;
  }
  store_path = fs::current_path() / ("kv-" + agent + ".json");
  const json key = {{"type", "string"}};
  icam::driver::Driver driver("icam-driver-kv", "0.1.0");
  driver.tool("get", "Read the value stored under a key", icam::driver::object_schema({{"key", key}}, {"key"}), kv_get);
  driver.tool("set", "Store a JSON value under a key", icam::driver::object_schema({{"key", key}, {"value", json::object()}}, {"key", "value"}), kv_set);
  driver.tool("delete", "Remove a key", icam::driver::object_schema({{"key", key}}, {"key"}), kv_delete);
  driver.tool("list", "List the stored keys", icam::driver::object_schema(json::object()), kv_list);
  return driver.serve();
}
