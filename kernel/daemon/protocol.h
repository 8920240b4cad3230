// The daemon's wire protocol: JSON-RPC 2.0, one JSON object per line ("\n"-terminated, UTF-8),
// over a Unix stream socket. Shared by the daemon (server) and its clients. The methods are
// listed in api.h and documented in docs/daemon-api.md.
//
// Messages are bounded (kMaxMessageBytes) in both directions so that neither side can be made to
// buffer without limit. Errors carry a JSON-RPC code and, in "data", icam's error class:
//   {"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"no process 12",
//                                      "data":{"errc":"not_found"}}}
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"

namespace icam::daemon {

// The API version a daemon speaks; daemon.info reports it and clients check it.
inline constexpr int kApiVersion = 1;

// Longest message (one line, newline excluded) either side accepts.
inline constexpr size_t kMaxMessageBytes = 1 << 20;

// JSON-RPC error codes: the standard ones, then icam's (one per Errc that can reach a client).
namespace rpc_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int not_found = -32001;           // no such process (or not yours)
inline constexpr int permission_denied = -32002;   // the caller may not do this
inline constexpr int resource_exhausted = -32003;  // too many processes, KV pool, limits
inline constexpr int timed_out = -32004;           // proc.wait's timeout passed
inline constexpr int unavailable = -32005;         // the daemon is shutting down
inline constexpr int failed = -32006;              // the operation failed (the message says why)
}  // namespace rpc_code

// The JSON-RPC code for an icam error class.
int rpc_code_for(Errc errc);
// The error class a client reports for a JSON-RPC error (from "data.errc" when present).
Errc errc_for_rpc(int code, const nlohmann::json& data);

// A parsed request or notification. `id` is absent for notifications (no response is sent).
struct Request {
  std::optional<nlohmann::json> id;  // a string or an integer
  std::string method;
  nlohmann::json params;  // an object (an absent "params" becomes {})
};

// A line that is not a valid request: what to answer (the id when one could be read).
struct RequestError {
  nlohmann::json id;  // null when unknown
  int code = rpc_code::invalid_request;
  std::string message;
};

// Parses one line (newline excluded). Positional (array) params are refused: every method takes
// named params.
std::variant<Request, RequestError> parse_request(std::string_view line);

// Serialized messages, each ending in "\n". Invalid UTF-8 in strings is replaced, never thrown.
std::string response_line(const nlohmann::json& id, const nlohmann::json& result);
std::string error_line(const nlohmann::json& id, int code, std::string_view message,
                       std::optional<Errc> errc = std::nullopt);
std::string error_line(const nlohmann::json& id, const Error& error);
std::string notification_line(std::string_view method, const nlohmann::json& params);
std::string request_line(uint64_t id, std::string_view method, const nlohmann::json& params);

// Serializes without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& value);

}  // namespace icam::daemon
