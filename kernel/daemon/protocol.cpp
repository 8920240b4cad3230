#include "kernel/daemon/protocol.h"

namespace icam::daemon {

using nlohmann::json;

int rpc_code_for(Errc errc) {
  switch (errc) {
    case Errc::invalid_argument:
      return rpc_code::invalid_params;
    case Errc::not_found:
      return rpc_code::not_found;
    case Errc::permission_denied:
      return rpc_code::permission_denied;
    case Errc::resource_exhausted:
      return rpc_code::resource_exhausted;
    case Errc::unavailable:
      return rpc_code::unavailable;
    case Errc::internal:
      return rpc_code::internal_error;
    case Errc::timed_out:
      return rpc_code::timed_out;
    case Errc::io:
    case Errc::corrupt:
    case Errc::unsupported:
    case Errc::cancelled:
      return rpc_code::failed;
  }
  return rpc_code::failed;
}

Errc errc_for_rpc(int code, const json& data) {
  if (data.is_object() && data.contains("errc") && data["errc"].is_string()) {
    const std::string name = data["errc"].get<std::string>();
    for (Errc e : {Errc::invalid_argument, Errc::not_found, Errc::io, Errc::corrupt,
                   Errc::unsupported, Errc::resource_exhausted, Errc::unavailable,
                   Errc::permission_denied, Errc::cancelled, Errc::timed_out, Errc::internal}) {
      if (errc_name(e) == name) return e;
    }
  }
  switch (code) {
    case rpc_code::parse_error:
    case rpc_code::invalid_request:
    case rpc_code::invalid_params:
      return Errc::invalid_argument;
    case rpc_code::method_not_found:
      return Errc::unsupported;
    case rpc_code::not_found:
      return Errc::not_found;
    case rpc_code::permission_denied:
      return Errc::permission_denied;
    case rpc_code::resource_exhausted:
      return Errc::resource_exhausted;
    case rpc_code::unavailable:
      return Errc::unavailable;
    case rpc_code::timed_out:
      return Errc::timed_out;
    default:
      return Errc::internal;
  }
}

std::string dump_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<Request, RequestError> parse_request(std::string_view line) {
  // nlohmann reports syntax errors only by exception; it is caught here, at the boundary.
  json message;
  try {
    message = json::parse(line);
  } catch (const json::exception& e) {
    return RequestError{nullptr, rpc_code::parse_error, std::string("parse error: ") + e.what()};
  }
  if (!message.is_object())
    return RequestError{nullptr, rpc_code::invalid_request, "a request must be a JSON object"};

  json id = nullptr;
  const bool has_id = message.contains("id");
  if (has_id) {
    id = message["id"];
    if (!id.is_string() && !id.is_number_integer())
      return RequestError{nullptr, rpc_code::invalid_request, "\"id\" must be a string or integer"};
  }
  auto invalid = [&](std::string text) {
    return RequestError{id, rpc_code::invalid_request, std::move(text)};
  };
  if (!message.contains("jsonrpc") || message["jsonrpc"] != "2.0")
    return invalid("\"jsonrpc\" must be \"2.0\"");
  if (!message.contains("method") || !message["method"].is_string() ||
      message["method"].get<std::string>().empty())
    return invalid("\"method\" must be a non-empty string");
  for (const auto& [key, value] : message.items()) {
    if (key != "jsonrpc" && key != "id" && key != "method" && key != "params")
      return invalid("unknown member \"" + key + "\"");
  }
  Request request;
  if (has_id) request.id = id;
  request.method = message["method"].get<std::string>();
  if (!message.contains("params")) {
    request.params = json::object();
  } else if (message["params"].is_object()) {
    request.params = message["params"];
  } else {
    return RequestError{id, rpc_code::invalid_params,
                        "\"params\" must be an object (named parameters)"};
  }
  return request;
}

std::string response_line(const json& id, const json& result) {
  return dump_json(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}}) + "\n";
}

std::string error_line(const json& id, int code, std::string_view message,
                       std::optional<Errc> errc) {
  json error = {{"code", code}, {"message", message}};
  if (errc) error["data"] = {{"errc", errc_name(*errc)}};
  return dump_json(json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}}) + "\n";
}

std::string error_line(const json& id, const Error& error) {
  return error_line(id, rpc_code_for(error.code()), error.message(), error.code());
}

std::string notification_line(std::string_view method, const json& params) {
  return dump_json(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}) + "\n";
}

std::string request_line(uint64_t id, std::string_view method, const json& params) {
  return dump_json(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}) +
         "\n";
}

}  // namespace icam::daemon
