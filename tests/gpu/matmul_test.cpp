// The dequantizer and the matrix products of gpu/ against the CPU's definitions, for every
// weight format, on random weights quantized by the CPU's reference quantizers.
#include "gpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "drivers/llm/gguf/ggml_type.h"
#include "drivers/llm/quant/quant.h"
#include "gpu/dequantize.h"
#include "gpu/matvec.h"
#include "tests/gpu/gpu_test_util.h"

namespace icam::gpu {
namespace {

using llm::GgmlType;
using testing::make_stream;
using testing::to_device;
using testing::to_host;

struct Quantized {
  std::vector<uint8_t> bytes;
  std::vector<float> dequantized;  // the CPU's reading of the bytes
};

Quantized make_weights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> dist(0, 1);
  const uint64_t row_bytes = llm::ggml_row_bytes(type, cols);
  Quantized q;
  q.bytes.resize(row_bytes * rows);
  q.dequantized.resize(rows * cols);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = dist(rng);
    llm::quantize_row(type, row.data(), q.bytes.data() + r * row_bytes, cols);
    llm::dequantize_row(type, q.bytes.data() + r * row_bytes, q.dequantized.data() + r * cols,
                        cols);
  }
  return q;
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> dist(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

class FormatTest : public ::testing::TestWithParam<GgmlType> {};

const GgmlType kFormats[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,
                             GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0,
                             GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

TEST_P(FormatTest, DequantizeMatchesCpu) {
  ICAM_REQUIRE_DEVICE();
  const GgmlType type = GetParam();
  const int64_t rows = 37, cols = 512;
  const Quantized q = make_weights(type, rows, cols, 7);
  Stream stream = make_stream();
  DeviceBuffer w = to_device(q.bytes, stream);
  DeviceBuffer out = testing::device_zeros(rows * cols * sizeof(float), stream);
  const DeviceWeight dw{static_cast<WeightFormat>(type), w.data(), rows, cols};
  ASSERT_TRUE(dequantize_rows(dw, 0, rows, out.as<float>(), stream.handle()).ok());
  const std::vector<float> got = to_host<float>(out, rows * cols, stream);
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_NEAR(got[i], q.dequantized[i], 1e-6f * (1 + std::fabs(q.dequantized[i])))
        << llm::ggml_type_name(type) << " element " << i;
}

// sum_k |W[r][k] x[b][k]|: the scale of rounding errors in a dot product.
void reference(const Quantized& q, const std::vector<float>& x, int64_t rows, int64_t cols,
               int64_t batch, std::vector<double>& want, std::vector<double>& magnitude) {
  want.assign(batch * rows, 0);
  magnitude.assign(batch * rows, 0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k) {
        const double p = static_cast<double>(q.dequantized[r * cols + k]) * x[b * cols + k];
        want[b * rows + r] += p;
        magnitude[b * rows + r] += std::fabs(p);
      }
}

void check_product(GgmlType type, int64_t batch, bool use_matmul, bool cublas, double tolerance) {
  const int64_t rows = 77, cols = 512, ldy = rows + 3;
  const Quantized q = make_weights(type, rows, cols, 11);
  const std::vector<float> x = random_floats(batch * cols, 12);
  std::vector<double> want, magnitude;
  reference(q, x, rows, cols, batch, want, magnitude);

  Stream stream = make_stream();
  DeviceBuffer w = to_device(q.bytes, stream);
  DeviceBuffer dx = to_device(x, stream);
  DeviceBuffer y = testing::device_zeros(batch * ldy * sizeof(float), stream);
  const DeviceWeight dw{static_cast<WeightFormat>(type), w.data(), rows, cols};
  if (use_matmul) {
    MatmulOptions options;
    options.use_cublas = cublas;
    options.tile_bytes = 20 * cols * sizeof(float);  // several tiles
    auto mm = Matmul::create(stream.handle(), options);
    ASSERT_TRUE(mm.ok()) << mm.error().message();
    const Status s = mm->run(dw, dx.as<float>(), batch, y.as<float>(), ldy);
    ASSERT_TRUE(s.ok()) << s.error().message();
  } else {
    const Status s = matvec(dw, dx.as<float>(), batch, y.as<float>(), ldy, stream.handle());
    ASSERT_TRUE(s.ok()) << s.error().message();
  }
  const std::vector<float> got = to_host<float>(y, batch * ldy, stream);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_NEAR(got[b * ldy + r], want[b * rows + r], tolerance * magnitude[b * rows + r] + 1e-6)
          << llm::ggml_type_name(type) << " batch " << batch << " (" << b << ", " << r << ")";
}

TEST_P(FormatTest, MatvecMatchesDequantizedProduct) {
  ICAM_REQUIRE_DEVICE();
  for (int64_t batch : {1, 3, 8, 13}) check_product(GetParam(), batch, false, false, 5e-5);
}

TEST_P(FormatTest, MatmulLargeBatchOnTensorCores) {
  ICAM_REQUIRE_DEVICE();
  // TF32 keeps 10 mantissa bits of each input: relative error about 1e-3 per product.
  check_product(GetParam(), 40, true, true, 4e-3);
}

TEST_P(FormatTest, MatmulLargeBatchWithoutCublas) {
  ICAM_REQUIRE_DEVICE();
  check_product(GetParam(), 40, true, false, 5e-5);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, FormatTest, ::testing::ValuesIn(kFormats),
                         [](const auto& p) {
                           return std::string(llm::ggml_type_name(p.param));
                         });

TEST(Matmul, ReportsWhetherCublasLoaded) {
  ICAM_REQUIRE_DEVICE();
  Stream stream = make_stream();
  auto mm = Matmul::create(stream.handle());
  ASSERT_TRUE(mm.ok()) << mm.error().message();
  EXPECT_FALSE(mm->cublas_note().empty());
  std::printf("matmul: %s\n", mm->cublas_note().c_str());
}

TEST(Embedding, ScaledRowsOfTokens) {
  ICAM_REQUIRE_DEVICE();
  const int64_t rows = 50, cols = 256;
  const Quantized q = make_weights(GgmlType::Q8_0, rows, cols, 3);
  const std::vector<int32_t> tokens = {4, 0, 49, 4, 17};
  const float scale = 16.0f;
  Stream stream = make_stream();
  DeviceBuffer w = to_device(q.bytes, stream);
  DeviceBuffer t = to_device(tokens, stream);
  DeviceBuffer out = testing::device_zeros(tokens.size() * cols * sizeof(float), stream);
  const DeviceWeight dw{WeightFormat::Q8_0, w.data(), rows, cols};
  ASSERT_TRUE(embed_rows(dw, t.as<int32_t>(), static_cast<int64_t>(tokens.size()), scale,
                         out.as<float>(), stream.handle())
                  .ok());
  const std::vector<float> got = to_host<float>(out, tokens.size() * cols, stream);
  for (size_t i = 0; i < tokens.size(); ++i)
    for (int64_t k = 0; k < cols; ++k) {
      const float want = q.dequantized[tokens[i] * cols + k] * scale;
      ASSERT_NEAR(got[i * cols + k], want, 1e-6f * (1 + std::fabs(want)));
    }
}

}  // namespace
}  // namespace icam::gpu
