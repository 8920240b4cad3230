#include "memory/digest.h"

#include <openssl/evp.h>

#include <cstring>

namespace icam::memory {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

Sha256& Sha256::bytes(std::span<const uint8_t> data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
  return *this;
}

Sha256& Sha256::u32(uint32_t v) {
  const uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  return bytes(b);
}

Sha256& Sha256::u64(uint64_t v) {
  u32(static_cast<uint32_t>(v));
  return u32(static_cast<uint32_t>(v >> 32));
}

Sha256& Sha256::f32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return u32(bits);
}

Sha256& Sha256::str(std::string_view s) {
  u64(s.size());
  return bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

Digest Sha256::finish() {
  Digest out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &len);
  return out;
}

std::string to_hex(const Digest& digest) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(digest.size() * 2);
  for (uint8_t b : digest) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

std::string short_hex(const Digest& digest, size_t n) {
  return to_hex(digest).substr(0, n);
}

}  // namespace icam::memory
