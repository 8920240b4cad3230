#include "common/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace icam {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // clang 14's __builtin_cpu_supports does not know "f16c"; CPUID leaf 1, ECX bit 29 does.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) f.f16c = (ecx >> 29) & 1u;
    const bool osxsave = (ecx >> 27) & 1u;
    // XCR0: the OS saves SSE and AVX state (bits 1, 2) and the AVX-512 state (bits 5, 6, 7).
    uint64_t xcr0 = 0;
    if (osxsave) {
      uint32_t lo = 0, hi = 0;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
    }
    const bool os_avx = (xcr0 & 0x6) == 0x6;
    const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;
    // Leaf 7, subleaf 0: EBX bit 16 AVX512F, bit 31 AVX512VL; ECX bit 11 AVX512-VNNI.
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
      f.avx512_vnni_vl = os_avx512 && ((ebx >> 16) & 1u) && ((ebx >> 31) & 1u) && ((ecx >> 11) & 1u);
      f.avx512f = os_avx512 && ((ebx >> 16) & 1u);
    }
    // Leaf 7, subleaf 1: EAX bit 4 AVX-VNNI.
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) f.avx_vnni = os_avx && ((eax >> 4) & 1u);
#endif
    return f;
  }();
  return features;
}

bool use_avx2() {
  static const bool enabled = [] {
    const char* force = std::getenv("ICAM_FORCE_SCALAR");
    if (force && std::strcmp(force, "0") != 0 && *force) return false;
    const auto& f = cpu_features();
    return f.avx2 && f.fma && f.f16c;
  }();
  return enabled;
}

bool use_avx512() {
  static const bool enabled = [] {
    if (!use_avx2() || !cpu_features().avx512f) return false;
    const char* off = std::getenv("ICAM_NO_AVX512");
    return !(off && *off && std::strcmp(off, "0") != 0);
  }();
  return enabled;
}

const char* packed_vnni_variant() {
  static const char* variant = [] {
    if (!use_avx2()) return "";
    const char* off = std::getenv("ICAM_NO_VNNI");
    if (off && *off && std::strcmp(off, "0") != 0) return "";
    const auto& f = cpu_features();
    if (f.avx_vnni) return "avxvnni";
    if (f.avx512_vnni_vl) return "avx512vnni";
    return "";
  }();
  return variant;
}

}  // namespace icam
