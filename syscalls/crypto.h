// The few cryptographic primitives the capability store and the audit log need, as thin wrappers
// over OpenSSL's one-shot functions: SHA-256, HMAC-SHA256, random bytes, hex, and a comparison that
// does not leak where two MACs differ.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace icam::syscalls {

using Digest = std::array<uint8_t, 32>;  // a SHA-256 digest or an HMAC-SHA256 tag

Digest sha256(std::string_view data);
Digest hmac_sha256(const std::vector<uint8_t>& key, std::string_view data);

// `count` bytes from OpenSSL's CSPRNG; an error only if the generator cannot be seeded.
Result<std::vector<uint8_t>> random_bytes(size_t count);

std::string to_hex(const uint8_t* data, size_t size);
inline std::string to_hex(const Digest& digest) {
  return to_hex(digest.data(), digest.size());
}
// Lower- or upper-case hex of exactly 64 digits; anything else is invalid_argument.
Result<Digest> digest_from_hex(std::string_view hex);

// True when a and b are equal; the time taken does not depend on where they differ.
bool digests_equal(const Digest& a, const Digest& b);

}  // namespace icam::syscalls
