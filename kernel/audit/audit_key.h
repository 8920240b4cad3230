// The audit log's HMAC key: a file of random bytes kept outside the database, readable by its
// owner only. Someone who can edit the database but cannot read this file cannot forge a chain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace icam::kernel::audit {

inline constexpr size_t kAuditKeyBytes = 32;

// Reads the key at `path`. Refused: a file that is not a regular file (links included), that
// group or others can read or write (permission_denied: "chmod 600 it"), or that holds fewer
// than kAuditKeyBytes or more than 1024 bytes.
Result<std::vector<uint8_t>> load_audit_key(const std::string& path);

// Creates `path` with kAuditKeyBytes random bytes and mode 0600; refuses to replace a file.
Result<std::vector<uint8_t>> create_audit_key(const std::string& path);

// A short public name of a key (16 hex digits of HMAC(key, constant)), kept in the database so
// that opening a log with the wrong key says so instead of failing every record.
std::string audit_key_id(const std::vector<uint8_t>& key);

}  // namespace icam::kernel::audit
