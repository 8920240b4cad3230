#include "common/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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

}  // namespace icam
