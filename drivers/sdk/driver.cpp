#include "drivers/sdk/driver.h"

#include <unistd.h>

#include <cerrno>
#include <exception>

#include "drivers/sdk/line_buffer.h"

namespace icam::driver {
namespace {

using nlohmann::json;

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool has_type(const json& value, std::string_view type) {
  if (type == "string") return value.is_string();
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "null") return value.is_null();
  return true;  // a type this checker does not know: leave it to the handler
}

}  // namespace

Driver::Driver(std::string name, std::string version)
    : name_(std::move(name)), version_(std::move(version)) {}

Driver& Driver::tool(std::string name, std::string description, json input_schema,
                     ToolHandler handler) {
  tools_.push_back({{std::move(name), std::move(description), std::move(input_schema)},
                    std::move(handler)});
  return *this;
}

int Driver::serve(int in_fd, int out_fd) {
  LineBuffer lines;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;  // end of input (or a broken pipe): the client is gone
    lines.append(std::string_view(chunk, static_cast<size_t>(n)));
    for (;;) {
      auto line = lines.next_line();
      if (!line.ok()) {
        if (!write_all(out_fd, encode_error(nullptr, kInvalidRequest, line.error().message()))) {
          return 1;
        }
        continue;
      }
      if (!line->has_value()) break;
      if ((*line)->empty()) continue;
      if (auto answer = handle_line(**line); answer && !write_all(out_fd, *answer)) return 1;
    }
  }
}

std::optional<std::string> Driver::handle_line(std::string_view line) {
  auto parsed = parse_message(line);
  if (!parsed.ok()) return encode_error(nullptr, kParseError, parsed.error().message());
  Message& message = *parsed;
  if (message.kind == Message::Kind::notification) return std::nullopt;  // initialized, cancelled
  if (message.kind != Message::Kind::request) return std::nullopt;  // a response: nothing to do

  const json& id = message.id;
  if (message.method == "initialize") return encode_result(id, handle_initialize(message.params));
  if (message.method == "ping") return encode_result(id, json::object());
  if (message.method == "tools/list") {
    json tools = json::array();
    for (const Tool& tool : tools_) tools.push_back(tool_info_json(tool.info));
    return encode_result(id, {{"tools", std::move(tools)}});
  }
  if (message.method == "tools/call") return handle_call(id, message.params);
  return encode_error(id, kMethodNotFound, "method not found: " + message.method);
}

json Driver::handle_initialize(const json& params) const {
  // Answer with the client's revision when it asks for one: the tool messages icam uses are the
  // same in every revision that has them.
  std::string version(kProtocolVersion);
  if (params.is_object()) {
    auto requested = params.find("protocolVersion");
    if (requested != params.end() && requested->is_string()) version = requested->get<std::string>();
  }
  return {{"protocolVersion", version},
          {"capabilities", {{"tools", {{"listChanged", false}}}}},
          {"serverInfo", {{"name", name_}, {"version", version_}}}};
}

std::string Driver::handle_call(const json& id, const json& params) {
  if (!params.is_object()) return encode_error(id, kInvalidParams, "params must be an object");
  auto name = params.find("name");
  if (name == params.end() || !name->is_string()) {
    return encode_error(id, kInvalidParams, "params.name must be a string");
  }
  const Tool* tool = nullptr;
  for (const Tool& candidate : tools_) {
    if (candidate.info.name == *name) tool = &candidate;
  }
  if (tool == nullptr) {
    return encode_error(id, kInvalidParams, "unknown tool: " + name->get<std::string>());
  }
  json arguments = json::object();
  if (auto given = params.find("arguments"); given != params.end() && !given->is_null()) {
    arguments = *given;
  }
  if (Status valid = check_arguments(tool->info.input_schema, arguments); !valid.ok()) {
    return encode_error(id, kInvalidParams, tool->info.name + ": " + valid.error().message());
  }

  ToolOutput output;
  try {
    Result<ToolOutput> handled = tool->handler(arguments);
    if (handled.ok()) {
      output = std::move(handled).value();
    } else {
      output = ToolOutput::error(str_cat(errc_name(handled.error().code()), ": ",
                                         handled.error().message()));
    }
  } catch (const std::exception& e) {
    output = ToolOutput::error(std::string("internal: ") + e.what());
  }
  return encode_result(id, tool_output_json(output));
}

Status check_arguments(const json& schema, const json& arguments) {
  if (!arguments.is_object()) return make_error(Errc::invalid_argument, "arguments must be an object");
  if (!schema.is_object()) return ok_status();
  if (auto required = schema.find("required"); required != schema.end() && required->is_array()) {
    for (const json& key : *required) {
      if (key.is_string() && !arguments.contains(key.get<std::string>())) {
        return make_error(Errc::invalid_argument, "missing argument \"", key.get<std::string>(), "\"");
      }
    }
  }
  auto properties = schema.find("properties");
  if (properties == schema.end() || !properties->is_object()) return ok_status();
  for (const auto& [key, value] : arguments.items()) {
    auto property = properties->find(key);
    if (property == properties->end() || !property->is_object()) continue;
    auto type = property->find("type");
    if (type == property->end() || !type->is_string()) continue;
    if (!has_type(value, type->get<std::string>())) {
      return make_error(Errc::invalid_argument, "argument \"", key, "\" must be of type ",
                        type->get<std::string>());
    }
  }
  return ok_status();
}

Result<std::string> string_arg(const json& arguments, std::string_view key) {
  auto found = arguments.find(key);
  if (found == arguments.end() || !found->is_string()) {
    return make_error(Errc::invalid_argument, "argument \"", key, "\" must be a string");
  }
  return found->get<std::string>();
}

Result<int64_t> int_arg(const json& arguments, std::string_view key,
                        std::optional<int64_t> fallback) {
  auto found = arguments.find(key);
  if (found == arguments.end() || found->is_null()) {
    if (fallback) return *fallback;
    return make_error(Errc::invalid_argument, "missing argument \"", key, "\"");
  }
  if (!found->is_number_integer()) {
    return make_error(Errc::invalid_argument, "argument \"", key, "\" must be an integer");
  }
  return found->get<int64_t>();
}

json object_schema(json properties, std::vector<std::string> required) {
  json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

}  // namespace icam::driver
