#include "common/cpu_features.h"

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
    f.f16c = __builtin_cpu_supports("f16c");
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
