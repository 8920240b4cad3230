// Checking a syscall's arguments against its JSON Schema (syscall_table.h). Only the subset the
// table uses is understood, and a schema using anything else is refused rather than half-checked:
//
//   "type": "object" | "string" | "integer" | "number" | "boolean" | "array"
//   objects: "properties", "required", "additionalProperties": false (the only value allowed)
//   strings: "maxLength" (in bytes: what the model sent, not code points)
//   integers: "minimum", "maximum"; numbers (any JSON number): "minimum", "maximum"
//   arrays: "items" (one schema for every element), "minItems", "maxItems"
//   "description" anywhere (ignored)
//
// Errors (invalid_argument) name the JSON pointer of the offending value under `root`, e.g.
// "/arguments/path: expected a string" or "/arguments: unknown argument 'colour' (allowed:
// content, path)".
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/result.h"

namespace icam::syscalls {

Status validate_arguments(const nlohmann::json& schema, const nlohmann::json& value,
                          std::string_view root = "");

// An untrusted schema (an external driver's inputSchema) reduced to what validate_arguments
// understands: annotations ("title", "$schema", "default", "examples", ...) dropped, since they
// constrain nothing, and "additionalProperties": true dropped as the default. Every keyword value
// is checked for its type too. unsupported, naming the JSON pointer and the reason, when anything
// else appears ("enum", "anyOf", "pattern", "$ref", a type list, ...): such a schema is not half
// checked.
Result<nlohmann::json> supported_schema(const nlohmann::json& schema);

// One line for people and models: {"path": string, "content"?: string} ("?" marks an optional
// property; arrays show their items as [string]).
std::string schema_signature(const nlohmann::json& schema);

}  // namespace icam::syscalls
