// SHA-256 digests, the one hash the memory layer uses: page hashes, model identities and page
// checksums. A thin incremental wrapper over OpenSSL, fed with fixed-width little-endian fields so
// that a digest does not depend on the host.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace icam::memory {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& bytes(std::span<const uint8_t> data);
  Sha256& u32(uint32_t v);
  Sha256& u64(uint64_t v);
  Sha256& f32(float v);  // its bit pattern
  // Length (u64) then the characters, so that two strings never run into each other.
  Sha256& str(std::string_view s);
  Sha256& digest(const Digest& d) { return bytes(d); }
  Digest finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};

std::string to_hex(const Digest& digest);
// The first `n` hex digits, for messages.
std::string short_hex(const Digest& digest, size_t n = 12);

}  // namespace icam::memory
