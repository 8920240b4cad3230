// The AVX2 kernels against the scalar reference kernels, called directly: activation quantizers
// and dequantizers must give identical bytes; dot products must agree exactly when all scales are
// 1 (every partial sum is then an integer that float holds exactly, so only the integer work is
// compared) and within 1e-5 of the sum of |terms| with real scales. Skipped without AVX2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/quant/quant_test_util.h"

namespace icam::llm {
namespace {

class SimdParity : public testing::Test {
 protected:
  void SetUp() override {
    avx2_ = avx2_kernels();
    if (avx2_ == nullptr) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU (or ICAM_FORCE_SCALAR)";
  }
  const KernelTable& scalar() const { return scalar_kernels(); }
  const KernelTable& avx2() const { return *avx2_; }

 private:
  const KernelTable* avx2_ = nullptr;
};

// Floats that exercise rounding: normal data, exact ties after scaling, zeros, tiny and huge
// blocks.
std::vector<float> tricky_floats(int64_t n, uint32_t seed) {
  std::vector<float> x = test::random_floats(static_cast<size_t>(n), seed);
  std::mt19937 rng(seed);
  for (int64_t b = 0; b < n / 256; ++b) {
    float* block = x.data() + b * 256;
    switch (b % 5) {
      case 1:  // codes with exact .5 ties: amax 127 makes the inverse scale exactly 1
        for (int j = 0; j < 256; ++j)
          block[j] = static_cast<float>(static_cast<int>(rng() % 254) - 127) + 0.5f;
        for (int j = 0; j < 256; j += 32) block[j] = 127.0f;
        break;
      case 2:
        for (int j = 0; j < 256; ++j) block[j] = j % 64 < 32 ? 0.0f : block[j];
        break;
      case 3:
        for (int j = 0; j < 256; ++j) block[j] *= 1e-6f;
        break;
      case 4:
        for (int j = 0; j < 256; ++j) block[j] *= 3e3f;
        break;
      default:
        break;
    }
  }
  return x;
}

TEST_F(SimdParity, ActivationQuantizersBitIdentical) {
  const int64_t n = 256 * 40;
  const std::vector<float> x = tricky_floats(n, 7);
  using A = ActivationFormat;
  for (A f : {A::q8_0, A::q8_k, A::f16, A::bf16}) {
    SCOPED_TRACE(static_cast<int>(f));
    // Odd lengths for the element formats exercise the tails of the vector loops.
    const int64_t len = f == A::f16 || f == A::bf16 ? n - 5 : n;
    std::vector<uint8_t> a(activation_row_bytes(f, len)), b(activation_row_bytes(f, len));
    scalar()[f].quantize(x.data(), a.data(), len);
    avx2()[f].quantize(x.data(), b.data(), len);
    ASSERT_EQ(a, b);
  }
}

// The Q8_0 activation row holds what ggml's Q8_0 blocks hold: same codes, same fp16 scales.
TEST_F(SimdParity, Q8_0ActivationRowsMatchQ8_0Blocks) {
  const int64_t n = 256 * 8;
  const std::vector<float> x = tricky_floats(n, 8);
  std::vector<uint8_t> blocks(test::row_bytes(GgmlType::Q8_0, n));
  quantize_row(GgmlType::Q8_0, x.data(), blocks.data(), n);
  for (const KernelTable* table : {&scalar(), &avx2()}) {
    std::vector<uint8_t> row(activation_row_bytes(ActivationFormat::q8_0, n));
    (*table)[ActivationFormat::q8_0].quantize(x.data(), row.data(), n);
    const auto* codes = reinterpret_cast<const int8_t*>(row.data());
    const auto* scales = reinterpret_cast<const float*>(row.data() + n);
    const auto* code_sums = reinterpret_cast<const int32_t*>(scales + n / 32);
    for (int64_t b = 0; b < n / 32; ++b) {
      const uint8_t* block = blocks.data() + b * 34;
      uint16_t d;
      std::memcpy(&d, block, 2);
      ASSERT_EQ(scales[b], fp16_to_f32(d)) << b;
      ASSERT_EQ(std::memcmp(codes + b * 32, block + 2, 32), 0) << b;
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += codes[b * 32 + j];
      ASSERT_EQ(code_sums[b], sum) << b;
    }
  }
}

TEST_F(SimdParity, HalfConversionsMatchF16CEverywhere) {
  // Every fp16 bit pattern, NaNs included, widens identically.
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> a(65536), b(65536);
  scalar()[ActivationFormat::f16].dequantize(all.data(), a.data(), 65536);
  avx2()[ActivationFormat::f16].dequantize(all.data(), b.data(), 65536);
  ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  for (int i = 0; i < 65536; ++i) {
    uint32_t sa, sb;
    std::memcpy(&sa, &a[i], 4);
    std::memcpy(&sb, &b[i], 4);
    ASSERT_EQ(sa, sb) << "fp16 0x" << std::hex << i;
  }
  // Narrowing: random bit patterns over the whole float range, plus every float halfway between
  // two adjacent fp16 values (the ties) and their neighbours.
  std::vector<float> x;
  std::mt19937 rng(11);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  for (int i = 0; i < 0x7c00; ++i) {
    const double lo = fp16_to_f32(static_cast<uint16_t>(i));
    const double hi = fp16_to_f32(static_cast<uint16_t>(i + 1));
    const float tie = static_cast<float>((lo + hi) / 2);
    x.push_back(tie);
    x.push_back(std::nextafter(tie, 0.0f));
    x.push_back(std::nextafter(tie, 1e9f));
    x.push_back(-tie);
  }
  for (ActivationFormat f : {ActivationFormat::f16, ActivationFormat::bf16}) {
    SCOPED_TRACE(static_cast<int>(f));
    std::vector<uint16_t> ha(x.size()), hb(x.size());
    scalar()[f].quantize(x.data(), ha.data(), static_cast<int64_t>(x.size()));
    avx2()[f].quantize(x.data(), hb.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(ha[i], hb[i]) << "float " << x[i] << " index " << i;
  }
}

TEST_F(SimdParity, DequantizersBitIdentical) {
  const int64_t n = 256 * 12;
  for (GgmlType t : test::computable_types()) {
    SCOPED_TRACE(test::type_name(t));
    const std::vector<uint8_t> blocks = test::random_blocks(t, n, 21);
    std::vector<float> a(n), b(n);
    scalar()[t].dequantize(blocks.data(), a.data(), n);
    avx2()[t].dequantize(blocks.data(), b.data(), n);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

// sum_k |w_k * x_k| over the dequantized weight row and activation row: the scale against which
// float rounding differences are measured.
double magnitude(GgmlType wtype, const uint8_t* w, ActivationFormat xformat, const uint8_t* x,
                 int64_t n) {
  std::vector<float> wf(n), xf(n);
  scalar_kernels()[wtype].dequantize(w, wf.data(), n);
  scalar_kernels()[xformat].dequantize(x, xf.data(), n);
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += std::fabs(static_cast<double>(wf[k]) * xf[k]);
  return sum;
}

TEST_F(SimdParity, DotKernelsAgree) {
  for (GgmlType t : test::computable_types()) {
    const FormatKernels& ks = scalar()[t];
    const FormatKernels& kv = avx2()[t];
    for (int64_t n : {96, 256, 512, 640, 2048}) {
      if (n % 256 != 0 && ks.activations == ActivationFormat::q8_k) continue;
      SCOPED_TRACE(test::type_name(t) + " n=" + std::to_string(n));
      // Random weight blocks (every bit pattern) and kMaxDotCols activation rows quantized by the
      // scalar quantizer (both sets quantize identically, tested above).
      const std::vector<uint8_t> w = test::random_blocks(t, n, static_cast<uint32_t>(n) + 3);
      const std::vector<float> xf = tricky_floats(n * kMaxDotCols, static_cast<uint32_t>(n) + 4);
      const size_t x_row = activation_row_bytes(ks.activations, n);
      std::vector<uint8_t> x(x_row * kMaxDotCols);
      for (int c = 0; c < kMaxDotCols; ++c) {
        if (ks.activations == ActivationFormat::f32) {
          std::memcpy(x.data() + c * x_row, xf.data() + c * n, x_row);
        } else {
          scalar()[ks.activations].quantize(xf.data() + c * n, x.data() + c * x_row, n);
        }
      }
      // kernels.h fixes the float steps of the quantized formats; float weights agree to rounding.
      const bool exact = t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16;
      for (int nx = 1; nx <= kMaxDotCols; ++nx) {
        float a[kMaxDotCols], b[kMaxDotCols];
        ks.dot(n, w.data(), x.data(), x_row, nx, a);
        kv.dot(n, w.data(), x.data(), x_row, nx, b);
        for (int c = 0; c < nx; ++c) {
          if (exact) {
            ASSERT_EQ(std::memcmp(&a[c], &b[c], sizeof(float)), 0)
                << "nx=" << nx << " column " << c << ": " << a[c] << " vs " << b[c];
            continue;
          }
          const double scale = magnitude(t, w.data(), ks.activations, x.data() + c * x_row, n);
          ASSERT_NEAR(a[c], b[c], 1e-5 * scale) << "nx=" << nx << " column " << c;
        }
        // A kernel's result for a column must not depend on how many columns it was given.
        float single;
        kv.dot(n, w.data(), x.data() + (nx - 1) * x_row, x_row, 1, &single);
        ASSERT_EQ(single, b[nx - 1]) << "nx=" << nx;
      }
    }
  }
}

// Sets every fp16 scale of a quantized row (d, and dmin for Q4_K/Q5_K) to 1.0.
void set_unit_scales(GgmlType t, std::vector<uint8_t>& row) {
  const size_t block_bytes = ggml_type_info(t).block_bytes;
  const uint8_t one[2] = {0x00, 0x3c};
  for (size_t offset = 0; offset < row.size(); offset += block_bytes) {
    uint8_t* block = row.data() + offset;
    if (t == GgmlType::Q6_K) {
      std::memcpy(block + 208, one, 2);
    } else {
      std::memcpy(block, one, 2);
      if (t == GgmlType::Q4_K || t == GgmlType::Q5_K) std::memcpy(block + 2, one, 2);
    }
  }
}

// Activation rows of random codes with scale 1: Q8_0 rows (kernels.h) or Q8_K blocks, with sums
// consistent with the codes.
std::vector<uint8_t> unit_scale_activations(ActivationFormat format, int64_t n, int rows,
                                            uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t row = activation_row_bytes(format, n);
  std::vector<uint8_t> out(row * rows);
  const auto code = [&] { return static_cast<int8_t>(static_cast<int>(rng() % 255) - 127); };
  for (int r = 0; r < rows; ++r) {
    uint8_t* base = out.data() + r * row;
    if (format == ActivationFormat::q8_0) {
      const int64_t blocks = n / 32;
      auto* codes = reinterpret_cast<int8_t*>(base);
      for (int64_t i = 0; i < n; ++i) codes[i] = code();
      for (int64_t b = 0; b < blocks; ++b) {
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += codes[b * 32 + j];
        const float one = 1.0f;
        const int32_t code_sum = sum;
        std::memcpy(base + n + 4 * b, &one, 4);
        std::memcpy(base + n + 4 * (blocks + b), &code_sum, 4);
      }
    } else {
      for (int64_t offset = 0; offset < static_cast<int64_t>(row); offset += 292) {
        const float d = 1.0f;
        std::memcpy(base + offset, &d, 4);
        int8_t qs[256];
        for (int8_t& q : qs) q = code();
        std::memcpy(base + offset + 4, qs, 256);
        for (int g = 0; g < 16; ++g) {
          int16_t sum = 0;
          for (int j = 0; j < 16; ++j) sum = static_cast<int16_t>(sum + qs[16 * g + j]);
          std::memcpy(base + offset + 260 + 2 * g, &sum, 2);
        }
      }
    }
  }
  return out;
}

TEST_F(SimdParity, IntegerPartsIdenticalWithUnitScales) {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K}) {
    const FormatKernels& ks = scalar()[t];
    const FormatKernels& kv = avx2()[t];
    for (int64_t n : {256, 640, 1024}) {
      if (n % test::block_elems(t) != 0) continue;
      SCOPED_TRACE(test::type_name(t) + " n=" + std::to_string(n));
      for (uint32_t seed = 0; seed < 20; ++seed) {
        std::vector<uint8_t> w = test::random_blocks(t, n, seed);
        set_unit_scales(t, w);
        const std::vector<uint8_t> x =
            unit_scale_activations(ks.activations, n, kMaxDotCols, seed + 100);
        const size_t x_row = activation_row_bytes(ks.activations, n);
        float a[kMaxDotCols], b[kMaxDotCols];
        ks.dot(n, w.data(), x.data(), x_row, kMaxDotCols, a);
        kv.dot(n, w.data(), x.data(), x_row, kMaxDotCols, b);
        for (int c = 0; c < kMaxDotCols; ++c) {
          ASSERT_EQ(a[c], std::nearbyint(a[c])) << "not an integer: sums too large for this test";
          ASSERT_EQ(a[c], b[c]) << "seed " << seed << " column " << c;
        }
      }
    }
  }
}

}  // namespace
}  // namespace icam::llm
