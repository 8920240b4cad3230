// The driver SDK: a driver is a set of tools and a loop that serves them over stdio.
//
//   int main() {
//     icam::driver::Driver driver("echo", "1.0");
//     driver.tool("echo", "Returns its text", schema,
//                 [](const nlohmann::json& args) -> icam::Result<icam::driver::ToolOutput> {
//                   ICAM_TRY(icam::driver::require_string(args, "text"));
//                   return icam::driver::ToolOutput::text(args["text"]);
//                 });
//     return driver.serve();
//   }
//
// The loop answers initialize (the MCP handshake) but does not require it, so stateless clients
// can call tools/list and tools/call directly. See docs/drivers.md for the protocol and a tutorial.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/sdk/protocol.h"

namespace icam::driver {

// A tool handler gets the call's arguments, already checked against the tool's input schema
// (required properties present, top-level types right). An Error it returns, or an exception it
// throws, becomes a tool result with isError set and the message as text.
using ToolHandler = std::function<Result<ToolOutput>(const nlohmann::json& arguments)>;

class Driver {
 public:
  Driver(std::string name, std::string version);

  // Registers a tool. `input_schema` is a JSON Schema object ({"type": "object", ...}).
  Driver& tool(std::string name, std::string description, nlohmann::json input_schema,
               ToolHandler handler);

  // Serves requests from `in_fd` until end of input; answers go to `out_fd`. Returns the process
  // exit code: 0 at end of input, 1 when the output cannot be written.
  int serve(int in_fd = 0, int out_fd = 1);

  // Handles one line and returns the line to answer with (ending in "\n"), or nothing for a
  // notification. The building block of serve(), public for tests.
  std::optional<std::string> handle_line(std::string_view line);

 private:
  struct Tool {
    ToolInfo info;
    ToolHandler handler;
  };

  nlohmann::json handle_initialize(const nlohmann::json& params) const;
  std::string handle_call(const nlohmann::json& id, const nlohmann::json& params);

  std::string name_;
  std::string version_;
  std::vector<Tool> tools_;
};

// Checks `arguments` against the parts of a JSON Schema tools use: an object, "required"
// properties, and each property's "type". Returns an error naming the first violation.
Status check_arguments(const nlohmann::json& schema, const nlohmann::json& arguments);

// Typed argument accessors for handlers; errors name the argument.
Result<std::string> string_arg(const nlohmann::json& arguments, std::string_view key);
Result<int64_t> int_arg(const nlohmann::json& arguments, std::string_view key,
                        std::optional<int64_t> fallback = std::nullopt);

// Builds {"type": "object", "properties": ..., "required": [...]} for the common case.
nlohmann::json object_schema(nlohmann::json properties, std::vector<std::string> required = {});

}  // namespace icam::driver
