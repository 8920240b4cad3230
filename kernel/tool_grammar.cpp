#include "kernel/tool_grammar.h"

#include <algorithm>

#include "kernel/tool_call.h"
#include "syscalls/syscall_table.h"

namespace icam::kernel {
namespace {

using nlohmann::json;

enum FrameKind : uint8_t {
  kCall, kObject, kArray, kString, kInteger, kBoolean, kKey, kName,
  kAny,        // a JSON value of any type, not begun yet: becomes one of the kinds below
  kAnyObject,  // an object with any keys and values
  kAnyArray,   // an array of any values
  kNumber,     // a JSON number (sign, fraction, exponent)
  kExternalCall,  // tool.call's arguments held to the external tools
};
// A JSON number's bytes at most; longer ones are refused.
constexpr int64_t kMaxNumberBytes = 32;

// The call's own syntax, and that of tool.call's arguments held to external tools, one step per
// phase of their frame. name: the syscall; arguments: the syscall's, or the external tool's;
// driver and tool: the external call's choices.
enum class CallStep : uint8_t { ws, literal, name, arguments, driver, tool };
struct CallPart {
  CallStep step;
  std::string_view text;  // literal steps
};
constexpr CallPart kCallParts[] = {
    {CallStep::ws, ""},         {CallStep::literal, "{"},           {CallStep::ws, ""},
    {CallStep::literal, "\"name\""}, {CallStep::ws, ""},           {CallStep::literal, ":"},
    {CallStep::ws, ""},         {CallStep::name, ""},                {CallStep::ws, ""},
    {CallStep::literal, ","},   {CallStep::ws, ""},                  {CallStep::literal, "\"arguments\""},
    {CallStep::ws, ""},         {CallStep::literal, ":"},            {CallStep::ws, ""},
    {CallStep::arguments, ""},  {CallStep::ws, ""},                  {CallStep::literal, "}"},
    {CallStep::ws, ""},         {CallStep::literal, kToolCallClose},
};
constexpr int kCallPhases = static_cast<int>(std::size(kCallParts));
// In this order only: the tool's schema is known once the driver and the tool are.
constexpr CallPart kExternalParts[] = {
    {CallStep::literal, "{"},          {CallStep::ws, ""},      {CallStep::literal, "\"driver\""},
    {CallStep::ws, ""},                {CallStep::literal, ":"}, {CallStep::ws, ""},
    {CallStep::driver, ""},            {CallStep::ws, ""},      {CallStep::literal, ","},
    {CallStep::ws, ""},                {CallStep::literal, "\"tool\""}, {CallStep::ws, ""},
    {CallStep::literal, ":"},          {CallStep::ws, ""},      {CallStep::tool, ""},
    {CallStep::ws, ""},                {CallStep::literal, ","}, {CallStep::ws, ""},
    {CallStep::literal, "\"arguments\""}, {CallStep::ws, ""},  {CallStep::literal, ":"},
    {CallStep::ws, ""},                {CallStep::arguments, ""}, {CallStep::ws, ""},
    {CallStep::literal, "}"},
};
constexpr int kExternalPhases = static_cast<int>(std::size(kExternalParts));

// A bit set of the first n of 64 candidates.
uint64_t first_bits(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// Whitespace taken at one optional spot: enough for "{ " or ",\n", not for indentation runs a
// small model could loop in.
constexpr uint8_t kMaxWhitespace = 1;
// Integers beyond this many digits are refused (the table's ranges are far smaller).
constexpr int64_t kMaxIntegerDigits = 17;

// Whether a number whose sign is `negative` and whose digits so far give `magnitude` (`digits`
// of them; 0 = none yet) can still be completed within [node.minimum, node.maximum]: some
// k >= 0 more digits give magnitudes [m * 10^k, (m + 1) * 10^k - 1] (k = 0 only for a lone 0,
// which takes no more digits, and k >= 1 when no digit was written yet).
bool integer_viable_range(int64_t minimum, int64_t maximum, bool negative, int64_t magnitude,
                          int64_t digits, int64_t max_digits) {
  for (int64_t k = digits == 0 ? 1 : 0; digits + k <= max_digits; ++k) {
    if (digits > 0 && magnitude == 0 && k > 0) break;  // no leading zeros
    __int128 scale = 1;
    for (int64_t i = 0; i < k; ++i) scale *= 10;
    __int128 lo = static_cast<__int128>(magnitude) * scale;
    __int128 hi = static_cast<__int128>(magnitude + 1) * scale - 1;
    if (digits == 0) lo = negative ? 1 : 0;  // no digit yet: any k-digit magnitude
    if (negative) {
      const __int128 vlo = -hi, vhi = -lo;
      if (vhi >= minimum && vlo <= maximum) return true;
      if (vhi < minimum) break;  // more digits only go further down
    } else {
      if (hi >= minimum && lo <= maximum) return true;
      if (lo > maximum) break;  // more digits only go further up
    }
  }
  return false;
}

bool is_whitespace(uint8_t c) { return c == ' ' || c == '\n'; }

// An optional whitespace spot: takes `c` when it is whitespace and the spot has room left;
// otherwise moves the frame past the spot, and the caller gives `c` to the next phase.
bool take_whitespace(ToolCallGrammar::Frame& f, uint8_t c) {
  if (is_whitespace(c) && f.ws < kMaxWhitespace) {
    ++f.ws;
    return true;
  }
  f.ws = 0;
  ++f.phase;
  return false;
}

// A whitespace or literal part of a fixed syntax of `phases` parts (the call's, or tool.call's
// held arguments'), fed byte `c`.
enum class FixedPart { consumed, next_part, reject, last_byte };
FixedPart take_fixed_part(const CallPart& part, ToolCallGrammar::Frame& f, uint8_t c,
                          int phases) {
  if (part.step == CallStep::ws)
    return take_whitespace(f, c) ? FixedPart::consumed : FixedPart::next_part;
  if (static_cast<uint8_t>(part.text[f.matched]) != c) return FixedPart::reject;
  if (++f.matched == part.text.size()) {
    f.matched = 0;
    if (++f.phase == phases) return FixedPart::last_byte;
  }
  return FixedPart::consumed;
}

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Keys and tool names are matched byte for byte inside quotes, so they must need no escaping.
bool plain_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<uint8_t>(ch);
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
  });
}

// Narrows a choice among `names` (bit i: names[i] still possible) by byte `c` at `matched`.
uint64_t narrow(const std::vector<std::string>& names, uint64_t candidates, size_t matched,
                uint8_t c) {
  uint64_t out = 0;
  for (size_t i = 0; i < names.size(); ++i)
    if ((candidates >> i & 1) && names[i].size() > matched &&
        static_cast<uint8_t>(names[i][matched]) == c)
      out |= uint64_t{1} << i;
  return out;
}

// The candidate whose whole name was matched, or -1.
int exact(const std::vector<std::string>& names, uint64_t candidates, size_t matched) {
  for (size_t i = 0; i < names.size(); ++i)
    if ((candidates >> i & 1) && names[i].size() == matched) return static_cast<int>(i);
  return -1;
}

}  // namespace

bool ToolCallGrammar::integer_viable(const Node& node, bool negative, int64_t magnitude,
                                     int64_t digits) {
  return integer_viable_range(node.minimum, node.maximum, negative, magnitude, digits,
                              kMaxIntegerDigits);
}

Result<ToolCallGrammar> ToolCallGrammar::create(const std::vector<std::string>& tools,
                                                const std::vector<ExternalTool>& external) {
  ToolCallGrammar g;
  std::vector<std::string> names = tools;
  if (std::find(names.begin(), names.end(), syscalls::kSyscallProcExit) == names.end())
    names.emplace_back(syscalls::kSyscallProcExit);
  if (names.size() > 64)
    return make_error(Errc::invalid_argument, "tool-call grammar: ", names.size(),
                      " tools; at most 64");
  for (const std::string& name : names) {
    if (std::find(g.tools_.begin(), g.tools_.end(), name) != g.tools_.end()) continue;
    const syscalls::SyscallSpec* spec = syscalls::find_syscall(name);
    if (!spec)
      return make_error(Errc::invalid_argument, "tool-call grammar: unknown tool '", name, "'");
    if (!plain_name(name))
      return make_error(Errc::invalid_argument, "tool-call grammar: tool name '", name,
                        "' needs escaping");
    // The call frame and the arguments object take two levels of the stack.
    int16_t node = -1;
    if (spec->server == syscalls::Server::external && !external.empty()) {
      node = ICAM_TRY(g.compile_external(external, spec->arguments));
      g.external_node_ = node;
    } else {
      node = ICAM_TRY(g.compile(spec->arguments, 1, name));
    }
    g.tools_.push_back(name);
    g.tool_nodes_.push_back(node);
  }
  return g;
}

Result<int16_t> ToolCallGrammar::compile(const json& schema, int depth, const std::string& where) {
  // A value at `depth` may push one more frame (an object's key) above its own.
  if (depth + 2 > kMaxDepth)
    return make_error(Errc::invalid_argument, "tool-call grammar: ", where, " nests too deeply");
  if (!schema.is_object() || !schema.contains("type") || !schema["type"].is_string())
    return make_error(Errc::invalid_argument, "tool-call grammar: ", where, " has no type");
  if (nodes_.size() >= INT16_MAX)
    return make_error(Errc::invalid_argument, "tool-call grammar: too many schema nodes");
  const std::string type = schema["type"].get<std::string>();
  Node node;
  const bool open = !schema.contains("additionalProperties") ||
                    schema["additionalProperties"] != json(false);
  if (type == "object") {
    // A required property the object does not declare could never be written (an open object
    // takes any keys, but the automaton does not track which), so the object could never be
    // closed.
    const json properties = schema.value("properties", json::object());
    for (const json& name : schema.value("required", json::array()))
      if (!name.is_string() || !properties.contains(name.get<std::string>()))
        return make_error(Errc::invalid_argument, "tool-call grammar: ", where, " requires ",
                          name.dump(), ", which it does not declare");
  }
  if (type == "object" && open && schema.value("properties", json::object()).empty()) {
    node.type = Node::Type::any_object;
    any_node();
    free_string_node();
  } else if (type == "object") {
    node.type = Node::Type::object;
    const json properties = schema.value("properties", json::object());
    if (properties.size() > 64)
      return make_error(Errc::invalid_argument, "tool-call grammar: ", where,
                        " has more than 64 properties");
    const json required = schema.value("required", json::array());
    for (const auto& [key, child] : properties.items()) {
      if (!plain_name(key))
        return make_error(Errc::invalid_argument, "tool-call grammar: ", where, " property '",
                          key, "' needs escaping");
      if (std::find(required.begin(), required.end(), json(key)) != required.end())
        node.required |= uint64_t{1} << node.keys.size();
      node.keys.push_back(key);
      node.children.push_back(ICAM_TRY(compile(child, depth + 1, where + "/" + key)));
    }
  } else if (type == "string") {
    node.type = Node::Type::string;
    node.max_length = schema.value("maxLength", INT64_MAX);
  } else if (type == "integer") {
    node.type = Node::Type::integer;
    node.minimum = schema.value("minimum", INT64_MIN);
    node.maximum = schema.value("maximum", INT64_MAX);
    // An integer must be writable, or the value is a dead end.
    if (node.minimum > node.maximum ||
        (!integer_viable(node, false, 0, 0) && !integer_viable(node, true, 0, 0)))
      return make_error(Errc::invalid_argument, "tool-call grammar: ", where,
                        " admits no integer of at most ", kMaxIntegerDigits, " digits");
  } else if (type == "number") {
    // Bounds on fractions and exponents would need exact decimal comparisons against a double
    // to avoid both dead ends and accepted values the check refuses: not supported.
    if (schema.contains("minimum") || schema.contains("maximum"))
      return make_error(Errc::invalid_argument, "tool-call grammar: ", where,
                        " is a number with bounds");
    node.type = Node::Type::number;
  } else if (type == "boolean") {
    node.type = Node::Type::boolean;
  } else if (type == "array") {
    node.type = Node::Type::array;
    node.min_items = schema.value("minItems", int64_t{0});
    node.max_items = schema.value("maxItems", INT64_MAX);
    if (node.min_items > node.max_items)
      return make_error(Errc::invalid_argument, "tool-call grammar: ", where,
                        " has minItems above maxItems");
    // Without "items" the elements may be anything (as validate_arguments checks them).
    if (schema.contains("items"))
      node.children.push_back(ICAM_TRY(compile(schema["items"], depth + 1, where + "/items")));
    else
      node.children.push_back(any_node());
  } else {
    return make_error(Errc::invalid_argument, "tool-call grammar: ", where, " has type '", type,
                      "'");
  }
  return add_node(std::move(node));
}

Result<int16_t> ToolCallGrammar::add_node(Node node) {
  if (nodes_.size() >= INT16_MAX)
    return make_error(Errc::invalid_argument, "tool-call grammar: too many schema nodes");
  nodes_.push_back(std::move(node));
  return static_cast<int16_t>(nodes_.size() - 1);
}

Result<int16_t> ToolCallGrammar::compile_external(const std::vector<ExternalTool>& external,
                                                  const json& table_schema) {
  // The names are matched byte for byte and must pass tool.call's own check.
  const json& properties = table_schema.at("properties");
  const int64_t max_driver = properties.at("driver").value("maxLength", INT64_MAX);
  const int64_t max_tool = properties.at("tool").value("maxLength", INT64_MAX);
  // The tools grouped by driver, drivers in the order they first appear.
  std::vector<std::string> drivers;
  std::vector<std::vector<const ExternalTool*>> tools_of;
  for (const ExternalTool& t : external) {
    if (!plain_name(t.driver) || static_cast<int64_t>(t.driver.size()) > max_driver)
      return make_error(Errc::invalid_argument, "tool-call grammar: driver name '", t.driver,
                        "' needs escaping or is too long");
    if (!plain_name(t.name) || static_cast<int64_t>(t.name.size()) > max_tool)
      return make_error(Errc::invalid_argument, "tool-call grammar: tool name '", t.name,
                        "' of driver '", t.driver, "' needs escaping or is too long");
    const size_t d = static_cast<size_t>(
        std::find(drivers.begin(), drivers.end(), t.driver) - drivers.begin());
    if (d == drivers.size()) {
      drivers.push_back(t.driver);
      tools_of.emplace_back();
    }
    for (const ExternalTool* seen : tools_of[d])
      if (seen->name == t.name)
        return make_error(Errc::invalid_argument, "tool-call grammar: tool '", t.driver, "/",
                          t.name, "' listed twice");
    tools_of[d].push_back(&t);
  }
  // Choices are bit sets of 64.
  if (drivers.size() > 64)
    return make_error(Errc::invalid_argument, "tool-call grammar: ", drivers.size(),
                      " external drivers; at most 64");
  Node driver_choice;
  driver_choice.type = Node::Type::choice;
  for (size_t d = 0; d < drivers.size(); ++d) {
    if (tools_of[d].size() > 64)
      return make_error(Errc::invalid_argument, "tool-call grammar: driver '", drivers[d],
                        "' has ", tools_of[d].size(), " tools; at most 64");
    Node tool_choice;
    tool_choice.type = Node::Type::choice;
    for (const ExternalTool* t : tools_of[d]) {
      const std::string where = "tool.call/" + t->driver + "/" + t->name;
      // No checked schema: the dispatch checks only that the arguments are an object, and so
      // does the grammar.
      const json schema =
          t->checked_schema.is_null() ? json{{"type", "object"}} : t->checked_schema;
      if (!schema.is_object() || schema.value("type", json()) != "object")
        return make_error(Errc::invalid_argument, "tool-call grammar: ", where,
                          ": the schema of its arguments is not an object's");
      // The call frame and tool.call's arguments take two levels; the tool's arguments are the
      // third.
      tool_choice.keys.push_back(t->name);
      tool_choice.children.push_back(ICAM_TRY(compile(schema, 2, where)));
    }
    driver_choice.keys.push_back(drivers[d]);
    driver_choice.children.push_back(ICAM_TRY(add_node(std::move(tool_choice))));
  }
  Node call;
  call.type = Node::Type::external_call;
  call.children.push_back(ICAM_TRY(add_node(std::move(driver_choice))));
  return add_node(std::move(call));
}

int16_t ToolCallGrammar::any_node() {
  if (any_node_ < 0) {
    Node n;
    n.type = Node::Type::any;
    nodes_.push_back(n);
    any_node_ = static_cast<int16_t>(nodes_.size() - 1);
  }
  return any_node_;
}

int16_t ToolCallGrammar::free_string_node() {
  if (free_string_node_ < 0) {
    Node n;
    n.type = Node::Type::string;
    nodes_.push_back(n);
    free_string_node_ = static_cast<int16_t>(nodes_.size() - 1);
  }
  return free_string_node_;
}

ToolCallGrammar::State ToolCallGrammar::initial() const {
  State s;
  s.stack[0].kind = kCall;
  s.depth = 1;
  return s;
}

std::string_view ToolCallGrammar::chosen_tool(const State& state) const {
  return state.tool >= 0 ? std::string_view(tools_[state.tool]) : std::string_view();
}

void ToolCallGrammar::push_value(State& state, int16_t node) const {
  Frame& f = state.stack[state.depth++];
  f = Frame{};
  f.node = node;
  switch (nodes_[node].type) {
    case Node::Type::object: f.kind = kObject; break;
    case Node::Type::array: f.kind = kArray; break;
    case Node::Type::string: f.kind = kString; break;
    case Node::Type::integer: f.kind = kInteger; break;
    case Node::Type::boolean: f.kind = kBoolean; break;
    case Node::Type::any: f.kind = kAny; break;
    case Node::Type::any_object: f.kind = kAnyObject; break;
    case Node::Type::number: f.kind = kNumber; break;
    case Node::Type::external_call: f.kind = kExternalCall; break;
    case Node::Type::choice: break;  // matched by name frames only, never pushed as a value
  }
}

ToolCallGrammar::Step ToolCallGrammar::close(State& state) const {
  --state.depth;
  child_done(state);
  return Step::consumed;
}

void ToolCallGrammar::child_done(State& state) const {
  if (state.depth == 0) return;
  Frame& parent = state.stack[state.depth - 1];
  switch (parent.kind) {
    case kCall:
      ++parent.phase;  // past the name or the arguments
      break;
    case kObject:
      if (parent.phase == 6) {  // a property's value
        parent.used |= uint64_t{1} << parent.property;
        ++parent.count;
        parent.property = -1;
      }
      ++parent.phase;  // 2 -> 3 after a key, 6 -> 7 after a value
      break;
    case kArray:
    case kAnyArray:
      ++parent.count;
      ++parent.phase;  // 2 -> 3
      break;
    case kAnyObject:
      if (parent.phase == 6) ++parent.count;  // a value (phase 2: a key)
      ++parent.phase;
      break;
    case kExternalCall:
      // The name frame left its choice in `property`: the driver is kept in `value`, the tool
      // stays in `property` (nothing else writes it here).
      if (kExternalParts[parent.phase].step == CallStep::driver) parent.value = parent.property;
      ++parent.phase;
      break;
    default:
      break;
  }
}

bool ToolCallGrammar::feed(State& state, std::string_view bytes) const {
  for (char c : bytes)
    if (!feed(state, static_cast<uint8_t>(c))) return false;
  return true;
}

bool ToolCallGrammar::feed(State& state, uint8_t c) const {
  if (state.failed || state.depth == 0) {  // nothing may follow a complete call
    state.failed = true;
    return false;
  }
  for (;;) {
    Frame& f = state.stack[state.depth - 1];
    Step step = Step::reject;
    switch (f.kind) {
      case kCall: step = step_call(state, f, c); break;
      case kObject: step = step_object(state, f, c); break;
      case kArray: step = step_array(state, f, c); break;
      case kString: step = step_string(state, f, c); break;
      case kInteger: step = step_integer(f, c); break;
      case kBoolean: step = step_boolean(state, f, c); break;
      case kAny: step = step_any(state, f, c); break;
      case kAnyObject: step = step_any_object(state, f, c); break;
      case kAnyArray: step = step_any_array(state, f, c); break;
      case kNumber: step = step_number(f, c); break;
      case kExternalCall: step = step_external_call(state, f, c); break;
      case kKey:
      case kName: {
        const bool is_key = f.kind == kKey;
        const std::vector<std::string>& names = is_key ? nodes_[f.node].keys : tools_;
        if (c == '"') {
          const int chosen = exact(names, f.used, f.matched);
          if (chosen < 0) break;  // reject
          --state.depth;
          if (is_key)
            state.stack[state.depth - 1].property = static_cast<int16_t>(chosen);
          else
            state.tool = static_cast<int16_t>(chosen);
          child_done(state);
          return true;
        }
        const uint64_t left = narrow(names, f.used, f.matched, c);
        if (left == 0) break;
        f.used = left;
        ++f.matched;
        return true;
      }
    }
    switch (step) {
      case Step::consumed:
        return true;
      case Step::reject:
        state.failed = true;
        return false;
      case Step::pop_and_refeed:
        --state.depth;
        child_done(state);
        continue;
      case Step::refeed:
        continue;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_call(State& state, Frame& f, uint8_t c) const {
  for (;;) {
    if (f.phase >= kCallPhases) return Step::reject;
    const CallPart& part = kCallParts[f.phase];
    switch (part.step) {
      case CallStep::ws:
      case CallStep::literal:
        switch (take_fixed_part(part, f, c, kCallPhases)) {
          case FixedPart::next_part: continue;
          case FixedPart::reject: return Step::reject;
          case FixedPart::last_byte: --state.depth; return Step::consumed;  // the closing tag
          case FixedPart::consumed: return Step::consumed;
        }
        return Step::reject;
      case CallStep::name: {
        if (c != '"' || state.depth >= kMaxDepth) return Step::reject;
        Frame& name = state.stack[state.depth++];
        name = Frame{};
        name.kind = kName;
        name.used = first_bits(tools_.size());
        return Step::consumed;
      }
      case CallStep::arguments:
        if (state.tool < 0 || state.depth >= kMaxDepth) return Step::reject;
        push_value(state, tool_nodes_[state.tool]);
        return Step::refeed;  // the arguments' first byte
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_external_call(State& state, Frame& f,
                                                          uint8_t c) const {
  const int16_t drivers = nodes_[f.node].children[0];
  for (;;) {
    if (f.phase >= kExternalPhases) return Step::reject;
    const CallPart& part = kExternalParts[f.phase];
    switch (part.step) {
      case CallStep::ws:
      case CallStep::literal:
        switch (take_fixed_part(part, f, c, kExternalPhases)) {
          case FixedPart::next_part: continue;
          case FixedPart::reject: return Step::reject;
          case FixedPart::last_byte: return close(state);  // the closing brace
          case FixedPart::consumed: return Step::consumed;
        }
        return Step::reject;
      case CallStep::driver:
      case CallStep::tool: {
        // A name frame over the choice of drivers, or of the chosen driver's tools; it leaves
        // its choice in `property` (child_done).
        if (c != '"' || state.depth >= kMaxDepth) return Step::reject;
        const int16_t choice =
            part.step == CallStep::driver ? drivers : nodes_[drivers].children[f.value];
        Frame& name = state.stack[state.depth++];
        name = Frame{};
        name.kind = kKey;
        name.node = choice;
        name.used = first_bits(nodes_[choice].keys.size());
        return Step::consumed;
      }
      case CallStep::arguments: {
        if (state.depth >= kMaxDepth) return Step::reject;
        const int16_t tools = nodes_[drivers].children[f.value];
        push_value(state, nodes_[tools].children[f.property]);
        return Step::refeed;  // the tool's arguments' first byte
      }
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_object(State& state, Frame& f, uint8_t c) const {
  const Node& node = nodes_[f.node];
  const uint64_t all = node.keys.size() == 64 ? ~uint64_t{0}
                                              : (uint64_t{1} << node.keys.size()) - 1;
  const uint64_t unused = all & ~f.used;
  const bool can_close = (node.required & ~f.used) == 0;
  for (;;) {
    switch (f.phase) {
      case 0:  // the opening brace
        if (c != '{') return Step::reject;
        f.phase = 1;
        return Step::consumed;
      case 1:
      case 3:
      case 5:
      case 7:  // optional whitespace
        if (take_whitespace(f, c)) return Step::consumed;
        continue;
      case 2:  // a key, or (right after the brace) the closing brace
        if (c == '}' && f.count == 0 && can_close) {
          return close(state);
        }
        if (c != '"' || unused == 0 || state.depth >= kMaxDepth) return Step::reject;
        {
          Frame& key = state.stack[state.depth++];
          key = Frame{};
          key.kind = kKey;
          key.node = f.node;
          key.used = unused;
        }
        return Step::consumed;
      case 4:
        if (c != ':') return Step::reject;
        f.phase = 5;
        return Step::consumed;
      case 6:  // the property's value
        if (state.depth >= kMaxDepth) return Step::reject;
        push_value(state, node.children[f.property]);
        return Step::refeed;  // the value's first byte
      case 8:  // a comma and the next key, or the closing brace
        if (c == ',' && unused != 0) {
          f.phase = 1;
          return Step::consumed;
        }
        if (c == '}' && can_close) {
          return close(state);
        }
        return Step::reject;
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_array(State& state, Frame& f, uint8_t c) const {
  const Node& node = nodes_[f.node];
  for (;;) {
    switch (f.phase) {
      case 0:
        if (c != '[') return Step::reject;
        f.phase = 1;
        return Step::consumed;
      case 1:
      case 3:  // optional whitespace
        if (take_whitespace(f, c)) return Step::consumed;
        continue;
      case 2:  // an item, or (right after the bracket) the closing bracket
        if (c == ']' && f.count == 0 && node.min_items == 0) {
          return close(state);
        }
        if (f.count >= node.max_items || state.depth >= kMaxDepth) return Step::reject;
        push_value(state, node.children[0]);
        return Step::refeed;
      case 4:  // a comma and the next item, or the closing bracket
        if (c == ',' && f.count < node.max_items) {
          f.phase = 1;
          return Step::consumed;
        }
        if (c == ']' && f.count >= node.min_items) {
          return close(state);
        }
        return Step::reject;
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_string(State& state, Frame& f, uint8_t c) const {
  const int64_t max_length = nodes_[f.node].max_length;
  if (f.phase == 0) {
    if (c != '"') return Step::reject;
    f.phase = 1;
    return Step::consumed;
  }
  // Counts decoded bytes against maxLength; a "\u" escape counts as 3, the most it can decode
  // to, so whatever is accepted fits.
  auto take = [&](int64_t n) {
    if (f.count + n > max_length) return false;
    f.count += n;
    return true;
  };
  // Every byte of a character, an escape included, is counted when the character begins, so a
  // character is only begun when it fits and a string never reaches a dead end.
  if (f.utf8_left > 0) {  // inside a multi-byte character
    if (c < f.utf8_lo || c > f.utf8_hi) return Step::reject;
    f.utf8_lo = 0x80;
    f.utf8_hi = 0xBF;
    --f.utf8_left;
    return Step::consumed;
  }
  if (f.escape == 1) {  // after the backslash, which counted one byte
    if (c == 'u') {
      if (!take(2)) return Step::reject;
      f.escape = 2;
      return Step::consumed;
    }
    if (std::string_view("\"\\/bfnrt").find(static_cast<char>(c)) == std::string_view::npos)
      return Step::reject;
    f.escape = 0;
    f.after_lt = false;
    return Step::consumed;
  }
  if (f.escape >= 2) {  // the four hex digits of "\u"
    const int h = hex_value(c);
    if (h < 0) return Step::reject;
    if (f.escape == 2) f.value = h;
    // D800..DFFF are surrogates: refused, so a string is always valid Unicode.
    if (f.escape == 3 && f.value == 0xD && h >= 8) return Step::reject;
    if (++f.escape == 6) {
      f.escape = 0;
      f.after_lt = false;
    }
    return Step::consumed;
  }
  if (c == '"') return close(state);
  if (c < 0x20) return Step::reject;  // control characters only as escapes
  if (c == '\\') {
    if (!take(1)) return Step::reject;
    f.escape = 1;
    return Step::consumed;
  }
  if (c == '/' && f.after_lt) return Step::reject;  // "</" only as "<\/"
  f.after_lt = c == '<';
  if (c >= 0x80) {  // the lead byte of a UTF-8 character; no overlong forms or surrogates
    if (c >= 0xC2 && c <= 0xDF) {
      f.utf8_left = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      f.utf8_left = 2;
      if (c == 0xE0) f.utf8_lo = 0xA0;
      if (c == 0xED) f.utf8_hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      f.utf8_left = 3;
      if (c == 0xF0) f.utf8_lo = 0x90;
      if (c == 0xF4) f.utf8_hi = 0x8F;
    } else {
      return Step::reject;
    }
    if (!take(1 + f.utf8_left)) {
      f.utf8_left = 0;
      return Step::reject;
    }
    return Step::consumed;
  }
  return take(1) ? Step::consumed : Step::reject;
}

ToolCallGrammar::Step ToolCallGrammar::step_integer(Frame& f, uint8_t c) const {
  const Node& node = nodes_[f.node];
  if (f.phase == 0 && c == '-') {
    if (!integer_viable(node, true, 0, 0)) return Step::reject;
    f.negative = true;
    f.phase = 1;
    return Step::consumed;
  }
  if (is_digit(c)) {
    const int d = c - '0';
    if (f.count > 0 && f.value == 0) return Step::reject;  // no leading zeros
    if (f.count == 0 && d == 0 && f.negative) return Step::reject;  // no "-0"
    if (f.count >= kMaxIntegerDigits) return Step::reject;
    const int64_t value = f.value * 10 + d;
    // Only digits after which some number in range can still be written, so a number never
    // reaches a dead end.
    if (!integer_viable(node, f.negative, value, f.count + 1)) return Step::reject;
    f.value = value;
    ++f.count;
    f.phase = 1;
    return Step::consumed;
  }
  // Any other byte ends the number, which must then be complete and in range.
  if (f.count == 0) return Step::reject;
  const int64_t v = f.negative ? -f.value : f.value;
  if (v < node.minimum || v > node.maximum) return Step::reject;
  return Step::pop_and_refeed;
}

ToolCallGrammar::Step ToolCallGrammar::step_boolean(State& state, Frame& f, uint8_t c) const {
  static constexpr std::string_view kWords[] = {"true", "false", "null"};
  if (f.matched == 0) {
    if (c == 't') f.value = 0;
    else if (c == 'f') f.value = 1;
    else if (c == 'n' && nodes_[f.node].type == Node::Type::any) f.value = 2;
    else return Step::reject;
  }
  const std::string_view word = kWords[f.value];
  if (static_cast<uint8_t>(word[f.matched]) != c) return Step::reject;
  if (++f.matched == word.size()) return close(state);
  return Step::consumed;
}

ToolCallGrammar::Step ToolCallGrammar::step_any(State& state, Frame& f, uint8_t c) const {
  // Containers need room for one more frame (a key or a value), so an open value never reaches a
  // depth where nothing can follow; scalars need none.
  const bool room = state.depth < kMaxDepth;
  f.phase = 0;
  if (c == '{' && room) {
    f.kind = kAnyObject;
  } else if (c == '[' && room) {
    f.kind = kAnyArray;
  } else if (c == '"') {
    f.kind = kString;
    f.node = free_string_node_;
  } else if (c == '-' || is_digit(c)) {
    f.kind = kNumber;
  } else if (c == 't' || c == 'f' || c == 'n') {
    f.kind = kBoolean;  // node stays the any node, which lets "null" through
  } else {
    return Step::reject;
  }
  return Step::refeed;  // the frame, now of its kind, takes the byte
}

ToolCallGrammar::Step ToolCallGrammar::step_any_object(State& state, Frame& f, uint8_t c) const {
  for (;;) {
    switch (f.phase) {
      case 0:
        if (c != '{') return Step::reject;
        f.phase = 1;
        return Step::consumed;
      case 1:
      case 3:
      case 5:
      case 7:  // optional whitespace
        if (take_whitespace(f, c)) return Step::consumed;
        continue;
      case 2:  // a key, or (right after the brace) the closing brace
        if (c == '}' && f.count == 0) return close(state);
        if (c != '"' || state.depth >= kMaxDepth) return Step::reject;
        push_value(state, free_string_node_);
        return Step::refeed;
      case 4:
        if (c != ':') return Step::reject;
        f.phase = 5;
        return Step::consumed;
      case 6:
        if (state.depth >= kMaxDepth) return Step::reject;
        push_value(state, any_node_);
        return Step::refeed;
      case 8:
        if (c == ',') {
          f.phase = 1;
          return Step::consumed;
        }
        if (c == '}') return close(state);
        return Step::reject;
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_any_array(State& state, Frame& f, uint8_t c) const {
  for (;;) {
    switch (f.phase) {
      case 0:
        if (c != '[') return Step::reject;
        f.phase = 1;
        return Step::consumed;
      case 1:
      case 3:
        if (take_whitespace(f, c)) return Step::consumed;
        continue;
      case 2:
        if (c == ']' && f.count == 0) return close(state);
        if (state.depth >= kMaxDepth) return Step::reject;
        push_value(state, any_node_);
        return Step::refeed;
      case 4:
        if (c == ',') {
          f.phase = 1;
          return Step::consumed;
        }
        if (c == ']') return close(state);
        return Step::reject;
      default:
        return Step::reject;
    }
  }
}

ToolCallGrammar::Step ToolCallGrammar::step_number(Frame& f, uint8_t c) const {
  // Phases: 0 start, 1 after '-', 2 integer digits, 3 a leading 0, 4 after '.', 5 fraction
  // digits, 6 after 'e', 7 after the exponent's sign, 8 exponent digits. 2, 3, 5 and 8 may end.
  const bool digit = is_digit(c);
  auto next = [&](uint8_t phase) {
    if (++f.count > kMaxNumberBytes) return Step::reject;
    f.phase = phase;
    return Step::consumed;
  };
  switch (f.phase) {
    case 0:
      if (c == '-') return next(1);
      [[fallthrough]];
    case 1:
      if (c == '0') return next(3);
      if (digit) return next(2);
      return Step::reject;
    case 2:
      if (digit) return next(2);
      [[fallthrough]];
    case 3:
      if (c == '.') return next(4);
      if (c == 'e' || c == 'E') return next(6);
      if (digit) return Step::reject;  // no leading zeros
      return Step::pop_and_refeed;
    case 4:
      return digit ? next(5) : Step::reject;
    case 5:
      if (digit) return next(5);
      if (c == 'e' || c == 'E') return next(6);
      return Step::pop_and_refeed;
    case 6:
      if (c == '+' || c == '-') return next(7);
      [[fallthrough]];
    case 7:
      f.value = 0;  // exponent digits
      [[fallthrough]];
    case 8:
      // At most two exponent digits: with at most 32 bytes of mantissa the value stays within a
      // double's range, which the parser insists on.
      if (digit && f.value < 2) {
        ++f.value;
        return next(8);
      }
      if (f.phase != 8) return Step::reject;
      return digit ? Step::reject : Step::pop_and_refeed;
    default:
      return Step::reject;
  }
}

}  // namespace icam::kernel
