// matmul against the float ideal (dot_reference_f32) within a tolerance derived from the
// activation format's rounding, across shapes, batch sizes and thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common/thread_pool.h"
#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/quant/quant_test_util.h"

namespace icam::llm {
namespace {

bool uses_q8_0_activations(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q8_0;
}
bool uses_q8_k_activations(GgmlType t) {
  return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K;
}

// A bound on |matmul - ideal| for one output: the activation rounding error weighted by |w|, plus
// float summation error. Activation errors per element, for a block whose largest |x| is amax:
// Q8_0 half a step plus the fp16 rounding of the scale; Q8_K half a step; F16 and BF16 half an
// ulp of the element.
double tolerance(GgmlType t, const float* w_row, const float* x, int64_t n) {
  const int64_t block = uses_q8_0_activations(t) ? 32 : uses_q8_k_activations(t) ? 256 : 1;
  double bound = 0, magnitude = 0;
  for (int64_t start = 0; start < n; start += block) {
    double amax = 0;
    for (int64_t k = start; k < start + block; ++k) amax = std::fmax(amax, std::fabs(x[k]));
    for (int64_t k = start; k < start + block; ++k) {
      double e = 0;
      if (uses_q8_0_activations(t)) e = amax * (0.5 / 127 + 1.0 / 2048) * 1.001;
      if (uses_q8_k_activations(t)) e = amax * (0.5 / 127) * 1.001;
      if (t == GgmlType::F16) e = std::fabs(x[k]) / 2048 + 1e-7;
      if (t == GgmlType::BF16) e = std::fabs(x[k]) / 256;
      bound += std::fabs(w_row[k]) * e;
      magnitude += std::fabs(static_cast<double>(w_row[k]) * x[k]);
    }
  }
  return bound + 1e-5 * magnitude + 1e-6;
}

struct Shape {
  int64_t rows;
  int64_t cols;
};

std::vector<Shape> shapes_for(GgmlType t) {
  std::vector<Shape> shapes = {{37, 256}, {5, 2048}};
  // 640 is not a multiple of 256: only formats with 32-element (or 1-element) blocks.
  if (!uses_q8_k_activations(t)) shapes.push_back({19, 640});
  return shapes;
}

class Matmul : public testing::TestWithParam<GgmlType> {};

TEST_P(Matmul, MatchesFloatIdealForAllShapesBatchesAndThreadCounts) {
  const GgmlType t = GetParam();
  ThreadPool pool1(1), pool2(2), pool3(3);
  ThreadPool* pools[] = {&pool1, &pool2, &pool3};
  for (const Shape& shape : shapes_for(t)) {
    const int64_t rows = shape.rows, cols = shape.cols;
    const std::vector<float> wf =
        test::random_floats(static_cast<size_t>(rows * cols), static_cast<uint32_t>(rows + cols));
    const std::vector<uint8_t> w = test::quantize_matrix(t, wf, rows, cols);
    const size_t stride = test::row_bytes(t, cols);
    std::vector<float> w_deq(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(t, w.data() + r * stride, w_deq.data() + r * cols, cols);
    }
    for (int64_t batch = 1; batch <= 9; ++batch) {
      SCOPED_TRACE(test::type_name(t) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                   " batch " + std::to_string(batch));
      const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols),
                                                       static_cast<uint32_t>(batch * 31 + cols));
      // ldy > rows, with a sentinel in the gap that must survive.
      const int64_t ldy = rows + 3;
      std::vector<float> first;
      for (ThreadPool* pool : pools) {
        std::vector<float> y(static_cast<size_t>(batch * ldy), -777.0f);
        matmul(*pool, t, w.data(), rows, cols, x.data(), batch, y.data(), ldy);
        if (first.empty()) {
          first = y;
        } else {
          ASSERT_EQ(std::memcmp(first.data(), y.data(), y.size() * sizeof(float)), 0)
              << "result differs with " << pool->size() << " threads";
        }
      }
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t r = 0; r < rows; ++r) {
          const float ideal =
              dot_reference_f32(t, w.data() + r * stride, x.data() + b * cols, cols);
          const double tol = tolerance(t, w_deq.data() + r * cols, x.data() + b * cols, cols);
          ASSERT_NEAR(first[b * ldy + r], ideal, tol) << "row " << r << " column " << b;
        }
        for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(first[b * ldy + r], -777.0f);
      }
    }
  }
}

// The active (AVX2 where available) matmul against the scalar-only reference, to float rounding.
TEST_P(Matmul, MatchesScalarReference) {
  const GgmlType t = GetParam();
  ThreadPool pool(2);
  const int64_t rows = 29, cols = 512;
  const std::vector<float> wf = test::random_floats(static_cast<size_t>(rows * cols), 77);
  const std::vector<uint8_t> w = test::quantize_matrix(t, wf, rows, cols);
  for (int64_t batch : {1, 4, 7}) {
    const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 78);
    std::vector<float> fast(static_cast<size_t>(batch * rows)), slow(fast.size());
    matmul(pool, t, w.data(), rows, cols, x.data(), batch, fast.data(), rows);
    matmul_reference(t, w.data(), rows, cols, x.data(), batch, slow.data(), rows);
    for (size_t i = 0; i < fast.size(); ++i) {
      ASSERT_NEAR(fast[i], slow[i], 1e-5 * (1 + std::fabs(slow[i])) * std::sqrt(cols))
          << "batch " << batch << " index " << i;
    }
  }
}

// A large matrix split over many tasks; rows not a multiple of anything.
TEST(MatmulLarge, ManyRowsAcrossThreads) {
  const GgmlType t = GgmlType::Q4_K;
  const int64_t rows = 1001, cols = 256;
  const std::vector<float> wf = test::random_floats(static_cast<size_t>(rows * cols), 5);
  const std::vector<uint8_t> w = test::quantize_matrix(t, wf, rows, cols);
  const std::vector<float> x = test::random_floats(static_cast<size_t>(5 * cols), 6);
  std::vector<float> one(static_cast<size_t>(5 * rows)), three(one.size());
  ThreadPool pool1(1), pool3(3);
  matmul(pool1, t, w.data(), rows, cols, x.data(), 5, one.data(), rows);
  matmul(pool3, t, w.data(), rows, cols, x.data(), 5, three.data(), rows);
  EXPECT_EQ(one, three);
  const size_t stride = test::row_bytes(t, cols);
  for (int64_t r = 0; r < rows; r += 97) {
    const float ideal = dot_reference_f32(t, w.data() + r * stride, x.data() + 4 * cols, cols);
    EXPECT_NEAR(three[4 * rows + r], ideal, 0.05 * std::sqrt(cols)) << r;
  }
}

// A long batch (several batch tiles, a ragged last group of columns) gives each column exactly
// what a batch of one gives: results do not depend on the company a column keeps.
TEST_P(Matmul, LongBatchMatchesColumnByColumn) {
  const GgmlType t = GetParam();
  const int64_t rows = 45, cols = 512, batch = 71;
  ThreadPool pool(2);
  const std::vector<float> wf = test::random_floats(static_cast<size_t>(rows * cols), 31);
  const std::vector<uint8_t> w = test::quantize_matrix(t, wf, rows, cols);
  const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 32);
  std::vector<float> all(static_cast<size_t>(batch * rows));
  matmul(pool, t, w.data(), rows, cols, x.data(), batch, all.data(), rows);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<float> one(static_cast<size_t>(rows));
    matmul(pool, t, w.data(), rows, cols, x.data() + b * cols, 1, one.data(), rows);
    ASSERT_EQ(std::memcmp(one.data(), all.data() + b * rows, rows * sizeof(float)), 0)
        << "column " << b;
  }
}

// Enough activation elements that the conversion itself is split across the pool.
TEST(MatmulLarge, WideBatchConvertedInParallel) {
  const GgmlType t = GgmlType::Q8_0;
  const int64_t rows = 7, cols = 8192, batch = 9;
  const std::vector<float> wf = test::random_floats(static_cast<size_t>(rows * cols), 8);
  const std::vector<uint8_t> w = test::quantize_matrix(t, wf, rows, cols);
  const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 9);
  std::vector<float> one(static_cast<size_t>(batch * rows)), three(one.size());
  ThreadPool pool1(1), pool3(3);
  matmul(pool1, t, w.data(), rows, cols, x.data(), batch, one.data(), rows);
  matmul(pool3, t, w.data(), rows, cols, x.data(), batch, three.data(), rows);
  EXPECT_EQ(one, three);
  const size_t stride = test::row_bytes(t, cols);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const float ideal = dot_reference_f32(t, w.data() + r * stride, x.data() + b * cols, cols);
      EXPECT_NEAR(three[b * rows + r], ideal, 0.02 * std::sqrt(cols)) << b << " " << r;
    }
  }
}

TEST(MatmulEdges, EmptyShapesWriteNothing) {
  ThreadPool pool(2);
  const std::vector<float> x(256, 1.0f);
  std::vector<float> y(4, 5.0f);
  const std::vector<uint8_t> w(test::row_bytes(GgmlType::Q8_0, 256) * 2);
  matmul(pool, GgmlType::Q8_0, w.data(), 0, 256, x.data(), 1, y.data(), 0);
  matmul(pool, GgmlType::Q8_0, w.data(), 2, 256, x.data(), 0, y.data(), 2);
  EXPECT_EQ(y, std::vector<float>(4, 5.0f));
}

INSTANTIATE_TEST_SUITE_P(Formats, Matmul, testing::ValuesIn(test::computable_types()),
                         [](const testing::TestParamInfo<GgmlType>& p) {
                           return test::type_name(p.param);
                         });

}  // namespace
}  // namespace icam::llm
