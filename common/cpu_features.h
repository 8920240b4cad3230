// Run-time CPU feature detection, so kernels built with AVX2/FMA are only called where the CPU
// has them. ICAM_FORCE_SCALAR=1 in the environment disables every SIMD path (for testing and for
// comparing against the scalar reference).
#pragma once

namespace icam {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
};

const CpuFeatures& cpu_features();

// True when the AVX2+FMA+F16C kernels may be used.
bool use_avx2();

}  // namespace icam
