// The driver ABI's messages: JSON-RPC 2.0, one message per line, in the shape of the Model Context
// Protocol (initialize, tools/list, tools/call, ping). Shared by the driver SDK (the server side,
// drivers/sdk/driver.h) and icam's client (sandbox/driver_client.h). See docs/drivers.md.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::driver {

// The MCP revision icam speaks when a driver takes the initialize handshake.
inline constexpr std::string_view kProtocolVersion = "2025-06-18";

// JSON-RPC 2.0 error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// Nesting deeper than this is refused before parsing: no tool needs it and it bounds the work a
// hostile line can cause.
inline constexpr int kMaxJsonDepth = 64;

struct Message {
  enum class Kind { request, notification, response, error };
  Kind kind = Kind::notification;
  nlohmann::json id;      // string or integer; null for notifications
  std::string method;     // requests and notifications
  nlohmann::json params;  // requests and notifications; null when absent
  nlohmann::json result;  // responses
  int error_code = 0;     // errors
  std::string error_message;
  nlohmann::json error_data;
};

// Parses one line. Never throws: malformed JSON, a batch, a missing "jsonrpc": "2.0", a bad id or
// method is an error (Errc::corrupt) whose message says which.
Result<Message> parse_message(std::string_view line);

// Encoders; each returns one line ending in "\n". Invalid UTF-8 in strings is replaced, so the
// output is always valid JSON.
std::string encode_request(const nlohmann::json& id, std::string_view method,
                           const nlohmann::json& params);
std::string encode_notification(std::string_view method, const nlohmann::json& params);
std::string encode_result(const nlohmann::json& id, const nlohmann::json& result);
std::string encode_error(const nlohmann::json& id, int code, std::string_view message);

// A tool as tools/list describes it.
struct ToolInfo {
  std::string name;
  std::string description;
  nlohmann::json input_schema = nlohmann::json::object();
};
nlohmann::json tool_info_json(const ToolInfo& tool);
Result<ToolInfo> tool_info_from_json(const nlohmann::json& value);

// What tools/call returns: MCP content blocks, optional structured content, and whether the tool
// itself failed (a tool failure is data for the model, not a protocol error).
struct ToolOutput {
  nlohmann::json content = nlohmann::json::array();
  nlohmann::json structured;  // null when absent
  bool is_error = false;

  static ToolOutput text(std::string text);
  // A JSON value, as structured content and as its text for clients that read only text.
  static ToolOutput json(nlohmann::json value);
  static ToolOutput error(std::string message);

  // The text blocks joined by newlines.
  std::string joined_text() const;
};
nlohmann::json tool_output_json(const ToolOutput& output);
Result<ToolOutput> tool_output_from_json(const nlohmann::json& value);

// A short printable excerpt of untrusted bytes for error messages.
std::string excerpt(std::string_view bytes, size_t max_chars = 80);

}  // namespace icam::driver
