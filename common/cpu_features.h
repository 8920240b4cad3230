// Run-time CPU feature detection, so kernels built with AVX2/FMA are only called where the CPU
// has them. ICAM_FORCE_SCALAR=1 in the environment disables every SIMD path (for testing and for
// comparing against the scalar reference).
#pragma once

namespace icam {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  // vpdpbusd on 256-bit vectors: VEX-encoded (AVX-VNNI) or EVEX-encoded (AVX512-VNNI with
  // AVX512VL, and the OS saving the AVX-512 state).
  bool avx_vnni = false;
  bool avx512_vnni_vl = false;
  // AVX512F with the OS saving the AVX-512 state.
  bool avx512f = false;
};

const CpuFeatures& cpu_features();

// True when the AVX2+FMA+F16C kernels may be used.
bool use_avx2();

// True when kernels built with AVX512F (on top of AVX2) may be used: the CPU has it and neither
// ICAM_FORCE_SCALAR=1 nor ICAM_NO_AVX512=1 (the 256-bit kernels, for comparison) is set.
bool use_avx512();

// The VNNI variant the packed kernels may use on top of AVX2: "avxvnni", "avx512vnni" or ""
// (none, or ICAM_NO_VNNI=1 in the environment, which keeps the plain AVX2 kernels for comparison).
const char* packed_vnni_variant();

}  // namespace icam
