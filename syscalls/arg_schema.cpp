#include "syscalls/arg_schema.h"

#include <algorithm>
#include <set>
#include <string>

namespace icam::syscalls {
namespace {

using nlohmann::json;

Error bad(std::string_view path, std::string_view what) {
  return make_error(Errc::invalid_argument, path.empty() ? "/" : path, ": ", what);
}

// The JSON pointer of a member: '~' and '/' escaped as RFC 6901 says, so a hostile key cannot
// forge a path.
std::string member_path(std::string_view parent, std::string_view key) {
  std::string out(parent);
  out += '/';
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

// A schema keyword this validator does not know would be silently skipped; refusing it keeps the
// table honest (a typo such as "maxlength" is a bug, not a looser check).
Status check_keywords(const json& schema, std::string_view path) {
  static const std::set<std::string> known = {
      "type",  "properties", "required", "additionalProperties", "maxLength", "minimum", "maximum",
      "items", "minItems",   "maxItems", "description"};
  if (!schema.is_object()) return make_error(Errc::internal, "schema at ", path, ": not an object");
  for (const auto& [key, v] : schema.items())
    if (!known.count(key))
      return make_error(Errc::internal, "schema at ", path, ": unsupported keyword '", key, "'");
  if (schema.contains("additionalProperties") && schema["additionalProperties"] != false)
    return make_error(Errc::internal, "schema at ", path,
                      ": only \"additionalProperties\": false is supported");
  return ok_status();
}

Status validate(const json& schema, const json& value, const std::string& path) {
  ICAM_TRY(check_keywords(schema, path));
  const std::string type = schema.value("type", "");
  if (type == "object") {
    if (!value.is_object()) return bad(path, "expected an object");
    const json properties = schema.value("properties", json::object());
    for (const auto& name : schema.value("required", json::array()))
      if (!value.contains(name.get<std::string>()))
        return bad(member_path(path, name.get<std::string>()), "missing (required)");
    for (const auto& [key, v] : value.items()) {
      auto it = properties.find(key);
      if (it == properties.end()) {
        if (schema.value("additionalProperties", true)) continue;
        std::string allowed;
        for (const auto& [name, s] : properties.items())
          allowed += (allowed.empty() ? "" : ", ") + name;
        return bad(path, str_cat("unknown argument '", key,
                                 "' (allowed: ", allowed.empty() ? "none" : allowed, ")"));
      }
      ICAM_TRY(validate(*it, v, member_path(path, key)));
    }
    return ok_status();
  }
  if (type == "string") {
    if (!value.is_string()) return bad(path, "expected a string");
    if (schema.contains("maxLength") &&
        value.get_ref<const std::string&>().size() > schema["maxLength"].get<size_t>())
      return bad(path, str_cat("longer than ", schema["maxLength"].get<size_t>(), " bytes"));
    return ok_status();
  }
  if (type == "integer") {
    if (!value.is_number_integer()) return bad(path, "expected an integer");
    // Unsigned values beyond int64 are out of any range the table states.
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX))
      return bad(path, "integer out of range");
    const int64_t n = value.get<int64_t>();
    if (schema.contains("minimum") && n < schema["minimum"].get<int64_t>())
      return bad(path, str_cat("must be at least ", schema["minimum"].get<int64_t>()));
    if (schema.contains("maximum") && n > schema["maximum"].get<int64_t>())
      return bad(path, str_cat("must be at most ", schema["maximum"].get<int64_t>()));
    return ok_status();
  }
  if (type == "number") {
    if (!value.is_number()) return bad(path, "expected a number");
    const double n = value.get<double>();
    if (schema.contains("minimum") && n < schema["minimum"].get<double>())
      return bad(path, str_cat("must be at least ", schema["minimum"].dump()));
    if (schema.contains("maximum") && n > schema["maximum"].get<double>())
      return bad(path, str_cat("must be at most ", schema["maximum"].dump()));
    return ok_status();
  }
  if (type == "boolean") {
    if (!value.is_boolean()) return bad(path, "expected true or false");
    return ok_status();
  }
  if (type == "array") {
    if (!value.is_array()) return bad(path, "expected an array");
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>())
      return bad(path, str_cat("expected at least ", schema["minItems"].get<size_t>(), " items"));
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>())
      return bad(path, str_cat("expected at most ", schema["maxItems"].get<size_t>(), " items"));
    if (schema.contains("items"))
      for (size_t i = 0; i < value.size(); ++i)
        ICAM_TRY(validate(schema["items"], value[i], str_cat(path, "/", i)));
    return ok_status();
  }
  return make_error(Errc::internal, "schema at ", path, ": unsupported type '", type, "'");
}

std::string type_signature(const json& schema) {
  const std::string type = schema.value("type", "");
  // An object that declares no properties takes any members: "object", not "{}".
  if (type == "object" && !schema.contains("properties")) return "object";
  if (type == "object") return schema_signature(schema);
  if (type == "array") {
    std::string out = "[";
    out += type_signature(schema.value("items", json::object()));
    out += "]";
    return out;
  }
  return type.empty() ? "any" : type;
}

// Annotations: they describe, never constrain, so dropping them changes nothing a value must
// satisfy.
bool is_annotation(const std::string& keyword) {
  static const std::set<std::string> annotations = {"title",    "$schema", "$id",     "$comment",
                                                    "default",  "examples", "readOnly",
                                                    "writeOnly", "deprecated"};
  return annotations.count(keyword) > 0;
}

bool is_integer(const json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX));
}

// The supported part of an untrusted schema, checked down to the type of each keyword's value so
// that validate() and schema_signature() never meet a shape they cannot read.
Result<json> supported(const json& schema, const std::string& path, int depth) {
  auto unsupported = [&](std::string_view why) {
    return make_error(Errc::unsupported, path.empty() ? "/" : path, ": ", why);
  };
  if (depth > 16) return unsupported("nested more than 16 levels");
  if (!schema.is_object()) return unsupported("a schema that is not an object");
  json out = json::object();
  for (const auto& [key, v] : schema.items()) {
    if (is_annotation(key)) continue;
    if (key == "description") {
      if (!v.is_string()) return unsupported("description is not a string");
      out[key] = v;
    } else if (key == "additionalProperties") {
      if (!v.is_boolean()) return unsupported("additionalProperties other than true or false");
      if (v == false) out[key] = false;  // true is the default
    } else if (key == "maxLength" || key == "minItems" || key == "maxItems") {
      if (!is_integer(v) || v.get<int64_t>() < 0)
        return unsupported(str_cat(key, " is not a non-negative integer"));
      out[key] = v;
    } else if (key == "minimum" || key == "maximum") {
      if (!v.is_number()) return unsupported(str_cat(key, " is not a number"));
      out[key] = v;
    } else if (key == "required") {
      if (!v.is_array()) return unsupported("required is not an array");
      for (const auto& name : v)
        if (!name.is_string()) return unsupported("required holds a non-string");
      out[key] = v;
    } else if (key == "type") {
      static const std::set<std::string> types = {"object",  "string",  "integer",
                                                  "number",  "boolean", "array"};
      if (!v.is_string() || !types.count(v.get<std::string>()))
        return unsupported(str_cat("type ", v.dump(), " (supported: object, string, integer, "
                                                      "number, boolean, array)"));
      out[key] = v;
    } else if (key == "properties") {
      if (!v.is_object()) return unsupported("properties is not an object");
      json properties = json::object();
      for (const auto& [name, child] : v.items())
        properties[name] = ICAM_TRY(supported(child, member_path(path + "/properties", name),
                                              depth + 1));
      out[key] = std::move(properties);
    } else if (key == "items") {
      out[key] = ICAM_TRY(supported(v, path + "/items", depth + 1));
    } else {
      return unsupported(str_cat("keyword '", key, "'"));
    }
  }
  if (!out.contains("type")) return unsupported("no type");
  // Integer bounds are compared as integers.
  if (out["type"] == "integer")
    for (const char* bound : {"minimum", "maximum"})
      if (out.contains(bound) && !is_integer(out[bound]))
        return unsupported(str_cat(bound, " of an integer is not an integer"));
  return out;
}

}  // namespace

Result<json> supported_schema(const json& schema) {
  return supported(schema, "", 0);
}

Status validate_arguments(const json& schema, const json& value, std::string_view root) {
  return validate(schema, value, std::string(root));
}

std::string schema_signature(const json& schema) {
  const json properties = schema.value("properties", json::object());
  const json required = schema.value("required", json::array());
  std::string out = "{";
  bool first = true;
  for (const auto& [name, s] : properties.items()) {
    const bool is_required =
        std::find(required.begin(), required.end(), json(name)) != required.end();
    out += (first ? "" : ", ") + json(name).dump() + (is_required ? "" : "?") + ": " +
           type_signature(s);
    first = false;
  }
  return out + "}";
}

}  // namespace icam::syscalls
