// Checking a syscall's arguments against its JSON Schema (syscall_table.h). Only the subset the
// table uses is understood, and a schema using anything else is refused rather than half-checked:
//
//   "type": "object" | "string" | "integer" | "boolean" | "array"
//   objects: "properties", "required", "additionalProperties": false (the only value allowed)
//   strings: "maxLength" (in bytes: what the model sent, not code points)
//   integers: "minimum", "maximum"
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

// One line for people and models: {"path": string, "content"?: string} ("?" marks an optional
// property; arrays show their items as [string]).
std::string schema_signature(const nlohmann::json& schema);

}  // namespace icam::syscalls
