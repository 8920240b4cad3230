// The grammar of one tool call, as a byte automaton: what may follow "<tool_call>" so that the
// call is well formed by construction (kernel/tool_call.h gives the syntax).
//
//   ws? "{" ws? "\"name\"" ws? ":" ws? NAME ws? "," ws? "\"arguments\"" ws? ":" ws? ARGS ws? "}"
//   ws? "</tool_call>"
//
// NAME is a JSON string holding one of the tool names the process may use; ARGS is a JSON value
// matching that syscall's argument schema (syscalls/arg_schema.h's subset): objects with their
// declared properties only, each at most once, in any order, closed only once every required one
// is present; strings within maxLength; integers within minimum/maximum (no fraction, no
// exponent, no leading zeros); numbers without bounds (any JSON number); booleans; arrays of
// `items` (any values when it is absent) within minItems/maxItems; an object whose schema names
// no properties and allows others (tool.call's "arguments") is any JSON object, nested as deep as
// the automaton's stack allows (an open object that names properties is held to those). Whatever
// the automaton accepts up to completion is parsed by parse_tool_call and passes
// validate_syscall_arguments (a test walks it at random to check exactly that).
//
// tool.call with the process's external tools (create()'s `external`: what its drivers listed
// and its job allows). Its ARGS then name a tool the process has and follow that tool's schema,
// in a fixed order, because which schema applies depends on the driver and tool chosen before:
//
//   "{" ws? "\"driver\"" ws? ":" ws? DRIVER ws? "," ws? "\"tool\"" ws? ":" ws? TOOL ws? ","
//   ws? "\"arguments\"" ws? ":" ws? TOOL_ARGS ws? "}"
//
// DRIVER is one of the drivers that listed a tool, TOOL one of that driver's tools, TOOL_ARGS an
// object matching the tool's checked schema (ExternalTool::checked_schema, as tool.call's
// dispatch checks it) or, when it has none (the driver's schema went beyond the subset), any JSON
// object. "arguments" is always written, {} for a tool that takes none. Still valid JSON that
// passes tool.call's own check, and the fixed order keeps the state small: no alternatives are
// tracked, the frame just remembers the driver and tool chosen. Without external tools (or
// without tool.call) tool.call's ARGS are any object with "driver" and "tool" strings, as its
// table schema says.
//
// Choices that keep the grammar small and the model on track:
//   - whitespace ("ws?": a space or a newline) is allowed at most once where JSON allows any;
//   - strings are valid UTF-8 (no overlong forms, no surrogates), control characters only as
//     escapes, "\u" escapes never name a surrogate (so a string cannot be invalid Unicode);
//   - inside a string "</" cannot be written raw (it is written "<\/"), so a string never holds
//     the closing tag at which the scheduler stops the turn.
//
// The state is a small value type: checking whether a token may come next is copying the state
// and feeding it the token's bytes, which is what the token filter (tool_call_filter.h) does for
// each candidate token.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kernel/tool_call.h"

namespace icam::kernel {

class ToolCallGrammar {
 public:
  // `tools`: the names the process may call, each in the syscall table (proc.exit is added when
  // missing). `external`: the tools of the process's external drivers; when `tools` holds
  // tool.call and `external` is not empty, tool.call's arguments are held to them (see above).
  // Errors (invalid_argument): an unknown name, a schema the automaton cannot follow without
  // dead ends (an object with more than 64 properties or requiring one it does not declare,
  // nesting deeper than the automaton's stack, a number with bounds, an empty integer range or
  // item count, an external tool's schema that is not an object), more than 64 drivers or 64
  // tools of one driver, a tool listed twice, a driver or tool name that needs escaping or is
  // longer than tool.call allows. The agent loop then makes the grammar without `external`.
  static Result<ToolCallGrammar> create(const std::vector<std::string>& tools,
                                        const std::vector<ExternalTool>& external = {});

  // One frame of the automaton's stack: a JSON value (or the call itself) being matched.
  struct Frame {
    uint8_t kind = 0;   // FrameKind (tool_grammar.cpp)
    uint8_t phase = 0;  // where in that value's syntax
    uint8_t ws = 0;     // whitespace characters taken at the current optional spot
    uint8_t escape = 0;     // strings: 0, or how far into an escape ("\", "\u", hex digits)
    uint8_t utf8_left = 0;  // strings: continuation bytes still expected
    uint8_t utf8_lo = 0x80, utf8_hi = 0xBF;  // strings: range of the next continuation byte
    bool after_lt = false;  // strings: the last byte was '<'
    bool negative = false;  // integers
    int16_t node = -1;      // the schema node matched (objects, arrays, strings, integers)
    int16_t property = -1;  // objects: the property whose value is being matched; external
                            // calls: the tool chosen (index into the driver's tool choice)
    uint16_t matched = 0;   // choices and literals: bytes matched so far
    uint64_t used = 0;        // objects: properties written; choices: candidates still possible
    int64_t count = 0;        // strings: bytes so far; arrays: items; integers: digits
    int64_t value = 0;        // integers: the magnitude so far; external calls: the driver
  };
  static constexpr int kMaxDepth = 8;

  struct State {
    std::array<Frame, kMaxDepth> stack{};
    int depth = 0;       // frames in use; 0 once the call is complete
    int16_t tool = -1;   // the tool chosen, once its name is complete
    bool failed = false;
  };

  State initial() const;
  // Feeds one byte. False (and the state is marked failed) when the byte cannot come next.
  bool feed(State& state, uint8_t byte) const;
  bool feed(State& state, std::string_view bytes) const;
  // True once the whole call, closing tag included, has been accepted.
  static bool complete(const State& state) { return !state.failed && state.depth == 0; }

  const std::vector<std::string>& tools() const { return tools_; }
  // The tool chosen so far, or "".
  std::string_view chosen_tool(const State& state) const;
  // Whether tool.call's arguments are held to the external tools given to create().
  bool constrains_external_tools() const { return external_node_ >= 0; }

 private:
  // A compiled schema: what the automaton needs of one JSON Schema node, by index.
  struct Node {
    // any: any JSON value (the values of an open object); any_object: an object whose schema
    // declares no properties and allows others, so any keys and values; number: any JSON number;
    // external_call: tool.call's arguments held to the external tools (children: {the driver
    // choice}); choice: a string naming one of `keys` (a driver, or one driver's tool), never a
    // value of its own: the name frame of an external call matches it.
    enum class Type : uint8_t {
      object, string, integer, boolean, array, any, any_object, number, external_call, choice
    };
    Type type = Type::object;
    // objects: property names, in schema order; choices: the names
    std::vector<std::string> keys;
    // objects: each property's node; arrays: {items}; choices: what each name leads to (a
    // driver: the choice of its tools; a tool: its arguments' node)
    std::vector<int16_t> children;
    uint64_t required = 0;          // objects: bit i set when keys[i] is required
    int64_t max_length = INT64_MAX;  // strings: bytes
    int64_t minimum = INT64_MIN, maximum = INT64_MAX;  // integers
    int64_t min_items = 0, max_items = INT64_MAX;      // arrays
  };

  static bool integer_viable(const Node& node, bool negative, int64_t magnitude, int64_t digits);
  Result<int16_t> compile(const nlohmann::json& schema, int depth, const std::string& where);
  // tool.call's arguments held to `external` (tool.call's table schema bounds the names).
  Result<int16_t> compile_external(const std::vector<ExternalTool>& external,
                                   const nlohmann::json& table_schema);
  Result<int16_t> add_node(Node node);
  void push_value(State& state, int16_t node) const;
  // One step of the frame on top; see tool_grammar.cpp.
  // consumed: the byte was taken; reject: it cannot come next; pop_and_refeed: the top frame
  // ended before the byte (a number), which goes to the frame below; refeed: a frame was pushed
  // that takes the byte.
  enum class Step { consumed, reject, pop_and_refeed, refeed };
  Step step_call(State& state, Frame& f, uint8_t c) const;
  Step step_object(State& state, Frame& f, uint8_t c) const;
  Step step_array(State& state, Frame& f, uint8_t c) const;
  Step step_string(State& state, Frame& f, uint8_t c) const;
  Step step_integer(Frame& f, uint8_t c) const;
  Step step_boolean(State& state, Frame& f, uint8_t c) const;
  Step step_any(State& state, Frame& f, uint8_t c) const;
  Step step_any_object(State& state, Frame& f, uint8_t c) const;
  Step step_any_array(State& state, Frame& f, uint8_t c) const;
  Step step_number(Frame& f, uint8_t c) const;
  Step step_external_call(State& state, Frame& f, uint8_t c) const;
  // The shared nodes of open objects: any value, and a string of any length (their keys).
  int16_t any_node();
  int16_t free_string_node();
  // The frame on top ended with the byte just taken: pops it and tells its parent.
  Step close(State& state) const;
  // A child value of the frame below the top just ended.
  void child_done(State& state) const;

  std::vector<std::string> tools_;
  std::vector<int16_t> tool_nodes_;  // arguments schema of each tool
  std::vector<Node> nodes_;
  int16_t any_node_ = -1;
  int16_t free_string_node_ = -1;
  int16_t external_node_ = -1;  // tool.call's arguments, when held to external tools
};

}  // namespace icam::kernel
