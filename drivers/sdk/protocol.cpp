#include "drivers/sdk/protocol.h"

#include <cstdio>

namespace icam::driver {
namespace {

using nlohmann::json;

std::string dump_line(const json& value) {
  std::string line = value.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

// Bracket depth outside strings; a cheap scan that needs no parse.
bool too_deep(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

bool valid_id(const json& id) {
  return id.is_string() || id.is_number_integer() || id.is_number_unsigned();
}

}  // namespace

Result<Message> parse_message(std::string_view line) {
  if (too_deep(line)) {
    return make_error(Errc::corrupt, "JSON nested deeper than ", kMaxJsonDepth, " levels");
  }
  json value = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return make_error(Errc::corrupt, "not JSON: ", excerpt(line));
  if (value.is_array()) return make_error(Errc::corrupt, "JSON-RPC batches are not supported");
  if (!value.is_object()) return make_error(Errc::corrupt, "not a JSON-RPC object: ", excerpt(line));
  auto version = value.find("jsonrpc");
  if (version == value.end() || !version->is_string() || *version != "2.0") {
    return make_error(Errc::corrupt, "missing \"jsonrpc\": \"2.0\"");
  }

  Message message;
  auto id = value.find("id");
  const bool has_id = id != value.end() && !id->is_null();
  if (has_id) {
    if (!valid_id(*id)) return make_error(Errc::corrupt, "id must be a string or an integer");
    message.id = *id;
  }

  auto method = value.find("method");
  if (method != value.end()) {
    if (!method->is_string()) return make_error(Errc::corrupt, "method must be a string");
    message.method = method->get<std::string>();
    message.kind = has_id ? Message::Kind::request : Message::Kind::notification;
    auto params = value.find("params");
    if (params != value.end()) {
      if (!params->is_object() && !params->is_array()) {
        return make_error(Errc::corrupt, "params must be an object or an array");
      }
      message.params = std::move(*params);
    }
    return message;
  }

  auto result = value.find("result");
  auto error = value.find("error");
  if ((result != value.end()) == (error != value.end())) {
    return make_error(Errc::corrupt, "a message needs a method, a result or an error");
  }
  if (result != value.end()) {
    if (!has_id) return make_error(Errc::corrupt, "a response needs an id");
    message.kind = Message::Kind::response;
    message.result = std::move(*result);
    return message;
  }
  // An error response may have a null id (the peer could not read ours).
  if (!error->is_object()) return make_error(Errc::corrupt, "error must be an object");
  auto code = error->find("code");
  auto text = error->find("message");
  if (code == error->end() || !code->is_number_integer()) {
    return make_error(Errc::corrupt, "error.code must be an integer");
  }
  if (text == error->end() || !text->is_string()) {
    return make_error(Errc::corrupt, "error.message must be a string");
  }
  const int64_t code_value = code->get<int64_t>();
  if (code_value < INT32_MIN || code_value > INT32_MAX) {
    return make_error(Errc::corrupt, "error.code out of range");
  }
  message.kind = Message::Kind::error;
  message.error_code = static_cast<int>(code_value);
  message.error_message = text->get<std::string>();
  if (auto data = error->find("data"); data != error->end()) message.error_data = std::move(*data);
  return message;
}

std::string encode_request(const json& id, std::string_view method, const json& params) {
  json message = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) message["params"] = params;
  return dump_line(message);
}

std::string encode_notification(std::string_view method, const json& params) {
  json message = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) message["params"] = params;
  return dump_line(message);
}

std::string encode_result(const json& id, const json& result) {
  return dump_line({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string encode_error(const json& id, int code, std::string_view message) {
  return dump_line(
      {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
}

json tool_info_json(const ToolInfo& tool) {
  return {{"name", tool.name}, {"description", tool.description}, {"inputSchema", tool.input_schema}};
}

Result<ToolInfo> tool_info_from_json(const json& value) {
  if (!value.is_object()) return make_error(Errc::corrupt, "a tool must be an object");
  ToolInfo tool;
  auto name = value.find("name");
  if (name == value.end() || !name->is_string() || name->get<std::string>().empty()) {
    return make_error(Errc::corrupt, "a tool needs a non-empty string name");
  }
  tool.name = name->get<std::string>();
  if (auto description = value.find("description");
      description != value.end() && description->is_string()) {
    tool.description = description->get<std::string>();
  }
  if (auto schema = value.find("inputSchema"); schema != value.end()) {
    if (!schema->is_object()) {
      return make_error(Errc::corrupt, "tool ", tool.name, ": inputSchema must be an object");
    }
    tool.input_schema = *schema;
  }
  return tool;
}

ToolOutput ToolOutput::text(std::string text) {
  ToolOutput output;
  output.content.push_back({{"type", "text"}, {"text", std::move(text)}});
  return output;
}

ToolOutput ToolOutput::json(nlohmann::json value) {
  ToolOutput output = text(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  output.structured = std::move(value);
  return output;
}

ToolOutput ToolOutput::error(std::string message) {
  ToolOutput output = text(std::move(message));
  output.is_error = true;
  return output;
}

std::string ToolOutput::joined_text() const {
  std::string joined;
  if (!content.is_array()) return joined;
  for (const auto& block : content) {
    if (!block.is_object()) continue;
    auto type = block.find("type");
    auto text = block.find("text");
    if (type == block.end() || *type != "text" || text == block.end() || !text->is_string()) continue;
    if (!joined.empty()) joined.push_back('\n');
    joined += text->get<std::string>();
  }
  return joined;
}

json tool_output_json(const ToolOutput& output) {
  json result = {{"content", output.content}, {"isError", output.is_error}};
  if (!output.structured.is_null()) result["structuredContent"] = output.structured;
  return result;
}

Result<ToolOutput> tool_output_from_json(const json& value) {
  if (!value.is_object()) return make_error(Errc::corrupt, "a tool result must be an object");
  ToolOutput output;
  auto content = value.find("content");
  if (content == value.end() || !content->is_array()) {
    return make_error(Errc::corrupt, "a tool result needs a content array");
  }
  output.content = *content;
  if (auto structured = value.find("structuredContent"); structured != value.end()) {
    output.structured = *structured;
  }
  if (auto is_error = value.find("isError"); is_error != value.end()) {
    if (!is_error->is_boolean()) return make_error(Errc::corrupt, "isError must be a boolean");
    output.is_error = is_error->get<bool>();
  }
  return output;
}

std::string excerpt(std::string_view bytes, size_t max_chars) {
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  out.push_back('"');
  if (bytes.size() > max_chars) out += "...";
  return out;
}

}  // namespace icam::driver
