#include "drivers/llm/quant/kernel_table.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/cpu_features.h"
#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

// An environment switch: set, non-empty and not "0".
bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

FormatKernels& slot(KernelTable& table, GgmlType t) {
  return table.formats[static_cast<uint32_t>(t)];
}

ActivationKernels& slot(KernelTable& table, ActivationFormat f) {
  return table.activations[static_cast<int>(f)];
}

KernelTable make_scalar_table() {
  using A = ActivationFormat;
  KernelTable k;
  slot(k, GgmlType::F32) = {scalar::dequantize_f32, scalar::dot_f32, A::f32};
  slot(k, GgmlType::F16) = {scalar::dequantize_f16, scalar::dot_f16, A::f16};
  slot(k, GgmlType::BF16) = {scalar::dequantize_bf16, scalar::dot_bf16, A::bf16};
  slot(k, GgmlType::Q8_0) = {scalar::dequantize_q8_0, scalar::dot_q8_0, A::q8_0};
  slot(k, GgmlType::Q5_0) = {scalar::dequantize_q5_0, scalar::dot_q5_0, A::q8_0};
  slot(k, GgmlType::Q4_0) = {scalar::dequantize_q4_0, scalar::dot_q4_0, A::q8_0};
  slot(k, GgmlType::Q4_K) = {scalar::dequantize_q4_k, scalar::dot_q4_k, A::q8_k};
  slot(k, GgmlType::Q5_K) = {scalar::dequantize_q5_k, scalar::dot_q5_k, A::q8_k};
  slot(k, GgmlType::Q6_K) = {scalar::dequantize_q6_k, scalar::dot_q6_k, A::q8_k};
  slot(k, GgmlType::Q8_K) = {scalar::dequantize_q8_k, nullptr, A::q8_k};
  slot(k, A::f32) = {nullptr, scalar::dequantize_f32};
  slot(k, A::f16) = {scalar::quantize_f16, scalar::dequantize_f16};
  slot(k, A::bf16) = {scalar::quantize_bf16, scalar::dequantize_bf16};
  slot(k, A::q8_0) = {scalar::quantize_q8_0_activations, scalar::dequantize_q8_0_activations};
  slot(k, A::q8_k) = {scalar::quantize_q8_k, scalar::dequantize_q8_k};
  return k;
}

KernelTable make_avx2_table() {
  using A = ActivationFormat;
  KernelTable k = make_scalar_table();
  slot(k, GgmlType::F32) = {avx2::dequantize_f32, avx2::dot_f32, A::f32};
  slot(k, GgmlType::F16) = {avx2::dequantize_f16, avx2::dot_f16, A::f16};
  slot(k, GgmlType::BF16) = {avx2::dequantize_bf16, avx2::dot_bf16, A::bf16};
  slot(k, GgmlType::Q8_0) = {avx2::dequantize_q8_0, avx2::dot_q8_0, A::q8_0, avx2::packed_dot_q8_0};
  slot(k, GgmlType::Q5_0).dot = avx2::dot_q5_0;
  slot(k, GgmlType::Q5_0).packed_dot = avx2::packed_dot_q5_0;
  slot(k, GgmlType::Q4_0).dot = avx2::dot_q4_0;
  slot(k, GgmlType::Q4_K).dot = avx2::dot_q4_k;
  // Packed Q4_K and Q6_K (ICAM_NO_PACKED_K=1: the row-by-row kernels, for comparison).
  const bool packed_k = !env_flag("ICAM_NO_PACKED_K");
  if (packed_k) slot(k, GgmlType::Q4_K).packed_dot = avx2::packed_dot_q4_k;
  slot(k, GgmlType::Q5_K).dot = avx2::dot_q5_k;
  slot(k, GgmlType::Q6_K).dot = avx2::dot_q6_k;
  slot(k, A::f32).dequantize = avx2::dequantize_f32;
  slot(k, A::f16) = {avx2::quantize_f16, avx2::dequantize_f16};
  slot(k, A::bf16) = {avx2::quantize_bf16, avx2::dequantize_bf16};
  slot(k, A::q8_0).quantize = avx2::quantize_q8_0_activations;
  slot(k, A::q8_k).quantize = avx2::quantize_q8_k;
  // The same packed kernels with vpdpbusd where the CPU has it: identical results, faster.
  const std::string vnni = packed_vnni_variant();
  if (vnni == "avxvnni") {
    slot(k, GgmlType::Q8_0).packed_dot = avxvnni::packed_dot_q8_0;
    slot(k, GgmlType::Q5_0).packed_dot = avxvnni::packed_dot_q5_0;
  } else if (vnni == "avx512vnni") {
    slot(k, GgmlType::Q8_0).packed_dot = avx512vnni::packed_dot_q8_0;
    slot(k, GgmlType::Q5_0).packed_dot = avx512vnni::packed_dot_q5_0;
  }
  // 512-bit kernels on pairs of groups, same results again (they use VNNI too, so ICAM_NO_VNNI
  // turns them off as well); ICAM_NO_AVX512=1 keeps only the 256-bit ones, for comparison.
  if (!vnni.empty() && cpu_has_avx512_packed() && use_avx512()) {
    slot(k, GgmlType::Q8_0).packed_dot_pair = avx512::packed_dot_pair_q8_0;
    slot(k, GgmlType::Q5_0).packed_dot_pair = avx512::packed_dot_pair_q5_0;
    slot(k, GgmlType::Q8_0).packed_pair_cols = kMaxPackedPairCols;
    slot(k, GgmlType::Q5_0).packed_pair_cols = kMaxPackedPairCols;
    if (packed_k) {
      slot(k, GgmlType::Q4_K).packed_dot_pair = avx512::packed_dot_pair_q4_k;
      slot(k, GgmlType::Q4_K).packed_pair_cols = kMaxPackedPairCols;
      // Q6_K is packed only here: its 256-bit packed kernel (16 registers for 16 scale vectors
      // and the 2-bit planes) is slower than the row kernel at batch 1 and no faster at batch 8
      // (quant_speed on the Xeon of 2026-12-05 with ICAM_NO_AVX512=1: 23.6 against 30.3 GB/s at
      // batch 1); it still serves the odd last group of a range.
      slot(k, GgmlType::Q6_K).packed_dot = avx2::packed_dot_q6_k;
      slot(k, GgmlType::Q6_K).packed_dot_pair = avx512::packed_dot_pair_q6_k;
      slot(k, GgmlType::Q6_K).packed_pair_cols = kMaxPackedPairCols;
    }
  }
  return k;
}

const FormatKernels kNoKernels{};

}  // namespace

bool cpu_has_avx512_packed() {
#if defined(__x86_64__) || defined(__i386__)
  // cpu_features() checks AVX512F, VL and VNNI and the OS's AVX-512 state; the kernels also use
  // AVX512BW (byte and word operations on 512-bit vectors).
  static const bool has = cpu_features().avx512_vnni_vl && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

size_t activation_row_bytes(ActivationFormat f, int64_t n) {
  const auto count = static_cast<size_t>(n);
  switch (f) {
    case ActivationFormat::f32:
      return count * sizeof(float);
    case ActivationFormat::f16:
    case ActivationFormat::bf16:
      return count * sizeof(uint16_t);
    case ActivationFormat::q8_0:
      return count / kBlock32 * (kBlock32 + sizeof(float) + sizeof(int32_t));
    case ActivationFormat::q8_k:
      return count / kBlock256 * sizeof(BlockQ8_K);
  }
  return 0;
}

const FormatKernels& KernelTable::operator[](GgmlType t) const {
  const auto id = static_cast<uint32_t>(t);
  return id < kTypeSlots ? formats[id] : kNoKernels;
}

const ActivationKernels& KernelTable::operator[](ActivationFormat f) const {
  return activations[static_cast<int>(f)];
}

const KernelTable& scalar_kernels() {
  static const KernelTable table = make_scalar_table();
  return table;
}

const KernelTable* avx2_kernels() {
  static const KernelTable table = make_avx2_table();
  return use_avx2() ? &table : nullptr;
}

const KernelTable& active_kernels() {
  static const KernelTable& table = use_avx2() ? *avx2_kernels() : scalar_kernels();
  return table;
}

const FormatKernels& checked_kernels(const KernelTable& table, const char* caller, GgmlType t,
                                     int64_t n, KernelUse use) {
  const FormatKernels& k = table[t];
  // Every format with a dequantizer also has a reference quantizer (quantize.cpp).
  const bool supported = use == KernelUse::dot ? k.dot != nullptr : k.dequantize != nullptr;
  if (!supported) {
    std::fprintf(stderr, "icam: %s: type id %u has no kernels for this use\n", caller,
                 static_cast<unsigned>(t));
    std::abort();
  }
  const uint32_t block = ggml_type_info(t).block_elems;
  if (n < 0 || n % block != 0) {
    std::fprintf(stderr, "icam: %s: %lld elements of %s are not whole blocks of %u\n", caller,
                 static_cast<long long>(n), std::string(ggml_type_name(t)).c_str(), block);
    std::abort();
  }
  return k;
}

bool is_computable(GgmlType t) {
  return scalar_kernels()[t].dot != nullptr;
}

}  // namespace icam::llm
