// quantize_row followed by dequantize_row stays within a per-format error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/quant/quant_test_util.h"

namespace icam::llm {
namespace {

// Root-mean-square error relative to the data's RMS, for unit-normal data. The bounds sit about 8%
// above what these quantizers achieve on this seeded data (ggml's reference quantizers land in
// the same range), so a worse scale choice or a layout mistake fails.
double rms_bound(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0.0;
    case GgmlType::F16:
      return 2.3e-4;
    case GgmlType::BF16:
      return 1.8e-3;
    case GgmlType::Q8_0:
      return 5.8e-3;
    case GgmlType::Q6_K:
      return 1.8e-2;
    case GgmlType::Q5_0:
      return 4.6e-2;
    case GgmlType::Q5_K:
      return 3.75e-2;
    case GgmlType::Q4_0:
      return 9.4e-2;
    case GgmlType::Q4_K:
      return 7.6e-2;
    default:
      return 0.0;
  }
}

class RoundTrip : public testing::TestWithParam<GgmlType> {};

TEST_P(RoundTrip, ErrorWithinFormatBound) {
  const GgmlType t = GetParam();
  const int64_t n = 256 * 64;
  const std::vector<float> x = test::random_floats(static_cast<size_t>(n), 1234);
  std::vector<uint8_t> q(test::row_bytes(t, n));
  quantize_row(t, x.data(), q.data(), n);
  std::vector<float> back(static_cast<size_t>(n));
  dequantize_row(t, q.data(), back.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (back[i] - x[i]) * (back[i] - x[i]);
    ref += x[i] * x[i];
  }
  const double relative = std::sqrt(err / ref);
  RecordProperty("relative_rms_error", std::to_string(relative));
  EXPECT_LE(relative, rms_bound(t)) << test::type_name(t);
  if (t == GgmlType::F32) {
    EXPECT_EQ(back, x);
  }
}

// The largest error in a Q8_0 block is half a step plus the fp16 rounding of the scale.
TEST(RoundTripQ8_0, ElementErrorAtMostHalfStep) {
  const int64_t n = 32 * 100;
  const std::vector<float> x = test::random_floats(static_cast<size_t>(n), 99, 3.0f);
  std::vector<uint8_t> q(test::row_bytes(GgmlType::Q8_0, n));
  quantize_row(GgmlType::Q8_0, x.data(), q.data(), n);
  std::vector<float> back(static_cast<size_t>(n));
  dequantize_row(GgmlType::Q8_0, q.data(), back.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j) {
      ASSERT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), amax * (0.5f / 127 + 1.0f / 1024))
          << "block " << b << " element " << j;
    }
  }
}

// Degenerate blocks: all zero, constant, a single outlier, tiny values. Nothing may become NaN and
// zeros must stay exactly zero.
TEST_P(RoundTrip, DegenerateBlocks) {
  const GgmlType t = GetParam();
  const int64_t n = 256;
  std::vector<std::vector<float>> cases;
  cases.push_back(std::vector<float>(n, 0.0f));
  cases.push_back(std::vector<float>(n, 0.75f));
  cases.push_back(std::vector<float>(n, -2.5f));
  std::vector<float> outlier(n, 0.01f);
  outlier[37] = 1000.0f;
  cases.push_back(outlier);
  cases.push_back(test::random_floats(n, 5, 1e-6f));
  for (size_t c = 0; c < cases.size(); ++c) {
    std::vector<uint8_t> q(test::row_bytes(t, n));
    quantize_row(t, cases[c].data(), q.data(), n);
    std::vector<float> back(n);
    dequantize_row(t, q.data(), back.data(), n);
    float amax = 0;
    for (float v : cases[c]) amax = std::fmax(amax, std::fabs(v));
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(back[i])) << "case " << c << " element " << i;
      if (c == 0) {
        ASSERT_EQ(back[i], 0.0f) << i;
      }
      // Within the block's range, give or take a 4-bit step.
      ASSERT_LE(std::fabs(back[i]), amax * 1.2f + 1e-30f) << "case " << c << " element " << i;
    }
    if (c == 1 || c == 2) {
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(back[i], cases[c][i], 0.05) << "case " << c;
    }
    if (c == 3) {
      EXPECT_NEAR(back[37], 1000.0f, 1000.0f * 0.07f) << "the outlier itself";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, testing::ValuesIn(test::computable_types()),
                         [](const testing::TestParamInfo<GgmlType>& p) {
                           return test::type_name(p.param);
                         });

}  // namespace
}  // namespace icam::llm
