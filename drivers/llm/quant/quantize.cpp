// The reference quantizers behind quantize_row: float rows to every supported format.
//
// Written for accuracy and clarity, not speed; they quantize test weights and tiny models. Each
// block is quantized on its own. Stored fp16 scales are rounded first and the codes are then
// chosen against the rounded scales, so what is dequantized is what was optimized.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/fp16.h"
#include "drivers/llm/quant/k_scales.h"
#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

int round_clamp(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::lround(v)), lo, hi);
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float best = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(best)) best = x[i];
  }
  return best;
}

// Stores scale as fp16 and returns the value the stored bits stand for.
float store_fp16(float scale, uint16_t* out) {
  *out = detail::f32_to_fp16(scale);
  return detail::fp16_to_f32(*out);
}

// ---- Q4_0 and Q5_0: x = d * (q - offset), the largest-magnitude element mapped to q = 0 ---------

// Codes in [0, 2 * offset - 1] for one block of 32.
void symmetric_codes(const float* x, int offset, uint16_t* d_out, int* q) {
  const float d = store_fp16(signed_absmax(x, kBlock32) / static_cast<float>(-offset), d_out);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock32; ++j)
    q[j] = round_clamp(x[j] * inverse, -offset, offset - 1) + offset;
}

void quantize_q4_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < n / kBlock32; ++b) {
    int q[kBlock32];
    symmetric_codes(src + b * kBlock32, 8, &blocks[b].d, q);
    for (int j = 0; j < 16; ++j) blocks[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
  }
}

void quantize_q5_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5_0*>(dst);
  for (int64_t b = 0; b < n / kBlock32; ++b) {
    int q[kBlock32];
    symmetric_codes(src + b * kBlock32, 16, &blocks[b].d, q);
    uint32_t high = 0;
    for (int j = 0; j < kBlock32; ++j) high |= static_cast<uint32_t>(q[j] >> 4) << j;
    std::memcpy(blocks[b].qh, &high, sizeof high);
    for (int j = 0; j < 16; ++j) {
      blocks[b].qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
    }
  }
}

// ---- Q4_K and Q5_K: x = scale * q - min per sub-block of 32, q in [0, nmax]
// ----------------------

struct ScaleMin {
  float scale = 0.0f;  // >= 0
  float min = 0.0f;    // >= 0, subtracted
};

float squared_error(const float* x, int n, int nmax, ScaleMin f) {
  float error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int q = f.scale > 0.0f ? round_clamp((x[i] + f.min) / f.scale, 0, nmax) : 0;
    const float diff = f.scale * static_cast<float>(q) - f.min - x[i];
    error += diff * diff;
  }
  return error;
}

// A small search: for a range of step sizes around (max - min) / nmax, round the sub-block to
// codes, fit scale and min to those codes by least squares (keeping min >= 0), and keep the fit
// with the least squared error.
ScaleMin fit_scale_min(const float* x, int n, int nmax) {
  const float lo = std::min(0.0f, *std::min_element(x, x + n));
  const float hi = *std::max_element(x, x + n);
  if (hi <= lo) return {0.0f, -lo};
  ScaleMin best{(hi - lo) / static_cast<float>(nmax), -lo};
  float best_error = squared_error(x, n, nmax, best);
  for (int step = -8; step <= 8; ++step) {
    const float inverse = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    double sum_q = 0, sum_qq = 0, sum_x = 0, sum_qx = 0;
    for (int i = 0; i < n; ++i) {
      const double q = round_clamp((x[i] - lo) * inverse, 0, nmax);
      sum_q += q;
      sum_qq += q * q;
      sum_x += x[i];
      sum_qx += q * x[i];
    }
    // x ~ a * q + b; min = -b must not be negative.
    const double det = n * sum_qq - sum_q * sum_q;
    if (det <= 0) continue;
    double a = (n * sum_qx - sum_q * sum_x) / det;
    double b = (sum_qq * sum_x - sum_q * sum_qx) / det;
    if (b > 0) {
      b = 0;
      a = sum_qx / sum_qq;
    }
    if (a <= 0) continue;
    const ScaleMin candidate{static_cast<float>(a), static_cast<float>(-b)};
    const float error = squared_error(x, n, nmax, candidate);
    if (error < best_error) {
      best_error = error;
      best = candidate;
    }
  }
  return best;
}

// Quantizes one super-block: the fp16 d and dmin, the packed 6-bit scales and mins, and 256 codes
// in [0, nmax] in element order.
void quantize_scale_min_block(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                              uint8_t packed[12], int codes[kBlock256]) {
  ScaleMin fits[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int s = 0; s < 8; ++s) {
    fits[s] = fit_scale_min(x + 32 * s, 32, nmax);
    max_scale = std::max(max_scale, fits[s].scale);
    max_min = std::max(max_min, fits[s].min);
  }
  const float d = store_fp16(max_scale / 63.0f, d_out);
  const float dmin = store_fp16(max_min / 63.0f, dmin_out);
  uint8_t scales[8], mins[8];
  for (int s = 0; s < 8; ++s) {
    const float* sub = x + 32 * s;
    const int scale = d > 0.0f ? round_clamp(fits[s].scale / d, 0, 63) : 0;
    const int min = dmin > 0.0f ? round_clamp(fits[s].min / dmin, 0, 63) : 0;
    // Rounding the fit to 6-bit codes moved it; the neighbouring codes may now fit better.
    int best_scale = scale, best_min = min;
    float best_error = squared_error(sub, 32, nmax, {d * scale, dmin * min});
    for (int try_scale = std::max(scale - 1, 0); try_scale <= std::min(scale + 1, 63);
         ++try_scale) {
      for (int try_min = std::max(min - 1, 0); try_min <= std::min(min + 1, 63); ++try_min) {
        const float error = squared_error(sub, 32, nmax, {d * try_scale, dmin * try_min});
        if (error < best_error) {
          best_error = error;
          best_scale = try_scale;
          best_min = try_min;
        }
      }
    }
    scales[s] = static_cast<uint8_t>(best_scale);
    mins[s] = static_cast<uint8_t>(best_min);
    const ScaleMin stored{d * best_scale, dmin * best_min};
    for (int l = 0; l < 32; ++l) {
      codes[32 * s + l] =
          stored.scale > 0.0f ? round_clamp((sub[l] + stored.min) / stored.scale, 0, nmax) : 0;
    }
  }
  pack_k_scales(scales, mins, packed);
}

void quantize_q4_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    BlockQ4_K& block = blocks[b];
    int q[kBlock256];
    quantize_scale_min_block(src + b * kBlock256, 15, &block.d, &block.dmin, block.scales, q);
    for (int chunk = 0; chunk < 4; ++chunk) {
      for (int l = 0; l < 32; ++l) {
        block.qs[32 * chunk + l] =
            static_cast<uint8_t>(q[64 * chunk + l] | (q[64 * chunk + 32 + l] << 4));
      }
    }
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5_K*>(dst);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    BlockQ5_K& block = blocks[b];
    int q[kBlock256];
    quantize_scale_min_block(src + b * kBlock256, 31, &block.d, &block.dmin, block.scales, q);
    std::memset(block.qh, 0, sizeof block.qh);
    for (int chunk = 0; chunk < 4; ++chunk) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * chunk + l], hi = q[64 * chunk + 32 + l];
        block.qs[32 * chunk + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        block.qh[l] |=
            static_cast<uint8_t>(((lo >> 4) << (2 * chunk)) | ((hi >> 4) << (2 * chunk + 1)));
      }
    }
  }
}

// ---- Q6_K: x = d * scale[s] * (q - 32) per sub-block of 16, int8 scales ------------------------

// The step of one sub-block of 16 with codes in [-32, 31]: tries mapping the largest-magnitude
// element to -32 .. -28, refits the step to the rounded codes by least squares, keeps the best.
float fit_symmetric_step(const float* x) {
  constexpr int kN = 16;
  const float extreme = signed_absmax(x, kN);
  if (extreme == 0.0f) return 0.0f;
  float best = extreme / -32.0f;
  float best_error = INFINITY;
  for (int t = 0; t <= 8; ++t) {
    const float step = extreme / (-32.0f + 0.5f * static_cast<float>(t));
    double sum_qq = 0, sum_qx = 0;
    for (int i = 0; i < kN; ++i) {
      const double q = round_clamp(x[i] / step, -32, 31);
      sum_qq += q * q;
      sum_qx += q * x[i];
    }
    if (sum_qq == 0) continue;
    for (const float candidate : {step, static_cast<float>(sum_qx / sum_qq)}) {
      float error = 0.0f;
      for (int i = 0; i < kN; ++i) {
        const float diff =
            candidate * static_cast<float>(round_clamp(x[i] / candidate, -32, 31)) - x[i];
        error += diff * diff;
      }
      if (error < best_error) {
        best_error = error;
        best = candidate;
      }
    }
  }
  return best;
}

void quantize_q6_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ6_K*>(dst);
  for (int64_t b = 0; b < n / kBlock256; ++b) {
    const float* x = src + b * kBlock256;
    BlockQ6_K& block = blocks[b];
    float steps[16];
    for (int s = 0; s < 16; ++s) steps[s] = fit_symmetric_step(x + 16 * s);
    // The largest step (with its sign) becomes scale -128.
    const float extreme = signed_absmax(steps, 16);
    const float d = store_fp16(extreme / -128.0f, &block.d);
    std::memset(block.ql, 0, sizeof block.ql);
    std::memset(block.qh, 0, sizeof block.qh);
    for (int s = 0; s < 16; ++s) {
      const int scale = d != 0.0f ? round_clamp(steps[s] / d, -128, 127) : 0;
      block.scales[s] = static_cast<int8_t>(scale);
      const float step = d * static_cast<float>(scale);
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int q = (step != 0.0f ? round_clamp(x[e] / step, -32, 31) : 0) + 32;
        // Element e = 128 * half + 32 * quarter + l (see BlockQ6_K).
        const int half = e / 128, quarter = (e % 128) / 32, l = e % 32;
        block.ql[64 * half + 32 * (quarter % 2) + l] |=
            static_cast<uint8_t>((q & 15) << (4 * (quarter / 2)));
        block.qh[32 * half + l] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
      }
    }
  }
}

void quantize_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
  checked_kernels(scalar_kernels(), "quantize_row", t, n, KernelUse::quantize);
  switch (t) {
    case GgmlType::F32:
      return quantize_f32(src, dst, n);
    case GgmlType::F16:
      return scalar::quantize_f16(src, dst, n);
    case GgmlType::BF16:
      return scalar::quantize_bf16(src, dst, n);
    case GgmlType::Q8_0:
      return scalar::quantize_q8_0(src, dst, n);
    case GgmlType::Q5_0:
      return quantize_q5_0(src, dst, n);
    case GgmlType::Q4_0:
      return quantize_q4_0(src, dst, n);
    case GgmlType::Q4_K:
      return quantize_q4_k(src, dst, n);
    case GgmlType::Q5_K:
      return quantize_q5_k(src, dst, n);
    case GgmlType::Q6_K:
      return quantize_q6_k(src, dst, n);
    case GgmlType::Q8_K:
      return scalar::quantize_q8_k(src, dst, n);
    default:
      return;  // unreachable: checked_kernels accepted only the types above
  }
}

}  // namespace icam::llm
