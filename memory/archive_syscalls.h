// mem.store and mem.recall as the kernel serves them (the entries are in syscalls/syscall_table.cpp):
// arguments already checked against the table's schema in, the result text for the model out.
// Kept beside the archive so that the kernel's dispatcher only picks the namespace and the store.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.h"
#include "memory/archive_store.h"

namespace icam::memory {

inline constexpr int kDefaultRecallLimit = 5;

// {"text", "tags"?} -> {"id"}
Result<std::string> serve_mem_store(ArchiveStore& archive, std::string_view ns,
                                    const nlohmann::json& arguments);
// {"query", "limit"?} -> {"hits": [{"id", "text", "score", "tags"?}]}, best first.
Result<std::string> serve_mem_recall(ArchiveStore& archive, std::string_view ns,
                                     const nlohmann::json& arguments);

}  // namespace icam::memory
