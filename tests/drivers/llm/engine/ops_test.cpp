// The CPU's element-wise operations against double-precision definitions: the gated activations
// (vectorized on AVX2 CPUs) must stay within a few ulp of the exact functions of their float
// arguments everywhere, and an
// element's result may not depend on the range it was computed in.
#include "drivers/llm/engine/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/cpu_features.h"

namespace icam::llm {
namespace {

// 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)): the second form does not cancel for negative x.
double gelu_exact(double x) {
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));
}

double silu_exact(double x) {
  return x / (1.0 + std::exp(-x));
}

// Gate values over the whole useful range (dense near 0, where the functions bend), and the
// edges: zeros of both signs, subnormal-sized and huge inputs.
std::vector<float> gate_values() {
  std::vector<float> v;
  for (int i = -40000; i <= 40000; ++i) v.push_back(static_cast<float>(i) * 1e-3f);
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 50.0f, -50.0f, 100.0f, -100.0f, 1e4f,
                  -1e4f, 3e38f, -3e38f})
    v.push_back(x);
  return v;
}

// The exponent argument t of x / (1 + e^t) (e^t magnifies t's float rounding by |t|).
double gelu_exponent(double x) {
  return -2.0 * std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
}

double silu_exponent(double x) {
  return -x;
}

void expect_close_to(FfnActivation act, double (*exact)(double), double (*exponent)(double)) {
  const std::vector<float> gate = gate_values();
  const std::vector<float> up(gate.size(), 1.0f);
  std::vector<float> out(gate.size());
  ops::gated_activation(gate.data(), up.data(), out.data(), static_cast<int>(gate.size()), act);
  for (size_t i = 0; i < gate.size(); ++i) {
    const double want = exact(gate[i]);
    // A few ulp of the result plus the rounding of t in float (an ulp of t, magnified), or
    // (where the exact value underflows) nothing visible.
    const double ulp = std::ldexp(1.0, -23);
    const double tolerance = (4 + 2 * std::fabs(exponent(gate[i]))) * ulp * std::fabs(want);
    ASSERT_NEAR(out[i], want, tolerance + 1e-30) << "x = " << gate[i];
  }
}

TEST(Ops, GeluWithinAFewUlpOfExact) {
  expect_close_to(FfnActivation::gelu_tanh, gelu_exact, gelu_exponent);
}

TEST(Ops, SiluWithinAFewUlpOfExact) {
  expect_close_to(FfnActivation::silu, silu_exact, silu_exponent);
}

TEST(Ops, GatedActivationMultipliesByUp) {
  const float gate[3] = {1.5f, -0.5f, 2.0f};
  const float up[3] = {2.0f, -3.0f, 0.0f};
  float out[3];
  ops::gated_activation(gate, up, out, 3, FfnActivation::gelu_tanh);
  EXPECT_NEAR(out[0], 2.0 * gelu_exact(1.5), 1e-6);
  EXPECT_NEAR(out[1], -3.0 * gelu_exact(-0.5), 1e-6);
  EXPECT_EQ(out[2], 0.0f);
}

// The engine applies the activation to whatever row range a thread finished; the same element
// must come out the same whether it sits in a vector's body or a range's tail, and in place
// (out == gate, as the engine calls it) as out of place.
TEST(Ops, ResultDoesNotDependOnTheRange) {
  std::vector<float> gate(61), up(61);
  for (size_t i = 0; i < gate.size(); ++i) {
    gate[i] = std::sin(static_cast<float>(i) * 0.7f) * 4.0f;
    up[i] = std::cos(static_cast<float>(i) * 0.3f);
  }
  for (const FfnActivation act : {FfnActivation::gelu_tanh, FfnActivation::silu}) {
    std::vector<float> whole(gate.size());
    ops::gated_activation(gate.data(), up.data(), whole.data(), static_cast<int>(gate.size()), act);
    for (int begin = 0; begin < 20; ++begin) {
      for (int end = begin + 1; end <= static_cast<int>(gate.size()); end += 7) {
        std::vector<float> part(gate.begin() + begin, gate.begin() + end);
        ops::gated_activation(part.data(), up.data() + begin, part.data(), end - begin, act);
        ASSERT_EQ(std::memcmp(part.data(), whole.data() + begin, part.size() * sizeof(float)), 0)
            << "range [" << begin << ", " << end << ")";
      }
    }
  }
}

// `count` rows of halves, `spacing` halves apart from `first` on (as in a page of keys of several
// heads), and the storage they point into.
struct HalfRows {
  std::vector<uint16_t> halves;
  std::vector<const uint16_t*> rows;
};

HalfRows half_rows(int count, int spacing, int first) {
  std::vector<float> source(static_cast<size_t>(spacing) * count);
  for (size_t i = 0; i < source.size(); ++i) source[i] = std::cos(static_cast<float>(i) * 0.37f);
  HalfRows r;
  r.halves.resize(source.size());
  ops::f32_to_f16(source.data(), r.halves.data(), static_cast<int>(source.size()));
  for (int j = 0; j < count; ++j) r.rows.push_back(r.halves.data() + spacing * j + first);
  return r;
}

// The attention helpers over many rows equal the row-at-a-time loops bit for bit (with AVX-512
// they are separate kernels), for head sizes in and out of the 512-bit path (multiples of 16 up
// to and past the 256 outputs held in registers, and not), with rows scattered in memory.
TEST(Ops, AttentionRowHelpersEqualTheRowAtATimeLoops) {
  for (const int n : {16, 64, 128, 256, 272, 512, 40, 8}) {
    for (const int count : {1, 3, 17, 100}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", " + std::to_string(count) + " rows");
      std::vector<float> q(n), w(count);
      for (int i = 0; i < n; ++i) q[i] = std::sin(static_cast<float>(i)) * 2.0f;
      for (int j = 0; j < count; ++j) w[j] = 1.0f / static_cast<float>(j + 2);
      const HalfRows r = half_rows(count, 3 * n, n);

      std::vector<float> scores(count);
      ops::dot_f16_rows(q.data(), 1, 0, r.rows.data(), count, n, scores.data(), 0);
      for (int j = 0; j < count; ++j) {
        const float want = ops::dot_f16(q.data(), r.rows[j], n);
        ASSERT_EQ(std::memcmp(&scores[j], &want, sizeof want), 0) << "row " << j;
      }
      std::vector<float> sum(n, 123.0f), want(n, 0.0f);
      ops::weighted_sum_f16(w.data(), 1, 0, r.rows.data(), count, n, sum.data(), 0);
      for (int j = 0; j < count; ++j) ops::axpy_f16(w[j], r.rows[j], want.data(), n);
      ASSERT_EQ(std::memcmp(sum.data(), want.data(), want.size() * sizeof(float)), 0);
    }
  }
}

// `heads` query vectors `q_stride` floats apart (the gaps filled too): 2 sin(i * frequency).
std::vector<float> head_queries(int heads, int64_t q_stride, float frequency) {
  std::vector<float> q(static_cast<size_t>(heads * q_stride));
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(static_cast<float>(i) * frequency) * 2.0f;
  return q;
}

// Query heads that share their rows (grouped-query attention) go through the helpers together;
// each head's scores and weighted sum equal its single-head calls bit for bit, for 1-6 heads (in
// and past the kernels' blocks of four), head sizes in and out of the 512-bit path, and strides
// wider than a head.
TEST(Ops, AttentionHelpersForSeveralHeadsEqualTheSingleHeadCalls) {
  for (const int heads : {1, 2, 3, 4, 5, 6}) {
    for (const int n : {16, 64, 256, 272, 40}) {
      for (const int count : {1, 17, 100}) {
        SCOPED_TRACE(std::to_string(heads) + " heads, n " + std::to_string(n) + ", " +
                     std::to_string(count) + " rows");
        const int64_t q_stride = n + 16;
        const int64_t score_stride = count + 3;
        const std::vector<float> q = head_queries(heads, q_stride, 0.7f);
        const HalfRows r = half_rows(count, 2 * n, n / 2);
        const uint16_t* const* rows = r.rows.data();

        std::vector<float> scores(static_cast<size_t>(heads * score_stride), -1.0f);
        ops::dot_f16_rows(q.data(), heads, q_stride, rows, count, n, scores.data(), score_stride);
        std::vector<float> sums(static_cast<size_t>(heads * q_stride), 123.0f);
        ops::weighted_sum_f16(scores.data(), heads, score_stride, rows, count, n, sums.data(),
                              q_stride);
        for (int h = 0; h < heads; ++h) {
          std::vector<float> want_scores(count), want_sum(n);
          ops::dot_f16_rows(q.data() + h * q_stride, 1, 0, rows, count, n, want_scores.data(), 0);
          ASSERT_EQ(std::memcmp(scores.data() + h * score_stride, want_scores.data(),
                                sizeof(float) * count),
                    0)
              << "head " << h;
          ops::weighted_sum_f16(want_scores.data(), 1, 0, rows, count, n, want_sum.data(), 0);
          ASSERT_EQ(std::memcmp(sums.data() + h * q_stride, want_sum.data(), sizeof(float) * n), 0)
              << "head " << h;
          // The padding between heads is left alone.
          for (int64_t i = n; i < q_stride; ++i) ASSERT_EQ(sums[h * q_stride + i], 123.0f);
        }
      }
    }
  }
}

// The AVX2 versions, which a CPU with AVX-512 never dispatches to, equal the row-at-a-time loops
// of AVX2 (dot_f16, axpy_f16) bit for bit as well, for 1-6 heads and row counts around their
// blocks of rows.
TEST(Ops, Avx2AttentionHelpersEqualTheRowAtATimeLoops) {
  if (!use_avx2()) GTEST_SKIP() << "no AVX2 (or ICAM_FORCE_SCALAR=1)";
  for (const int heads : {1, 2, 3, 4, 5, 6}) {
    for (const int n : {16, 64, 256}) {
      for (const int count : {1, 3, 17, 100}) {
        SCOPED_TRACE(std::to_string(heads) + " heads, n " + std::to_string(n) + ", " +
                     std::to_string(count) + " rows");
        const int64_t q_stride = n + 16;
        const int64_t score_stride = count + 3;
        const std::vector<float> q = head_queries(heads, q_stride, 0.3f);
        const HalfRows r = half_rows(count, 2 * n, n / 2);
        const uint16_t* const* rows = r.rows.data();

        std::vector<float> scores(static_cast<size_t>(heads * score_stride), -1.0f);
        ops::dot_f16_rows_avx2(q.data(), heads, q_stride, rows, count, n, scores.data(),
                               score_stride);
        std::vector<float> sums(static_cast<size_t>(heads * q_stride), 123.0f);
        ops::weighted_sum_f16_avx2(scores.data(), heads, score_stride, rows, count, n, sums.data(),
                                   q_stride);
        for (int h = 0; h < heads; ++h) {
          std::vector<float> want_sum(n, 0.0f);
          for (int j = 0; j < count; ++j) {
            const float want = ops::dot_f16(q.data() + h * q_stride, rows[j], n);
            ASSERT_EQ(std::memcmp(&scores[h * score_stride + j], &want, sizeof want), 0)
                << "head " << h << ", row " << j;
            ops::axpy_f16(scores[h * score_stride + j], rows[j], want_sum.data(), n);
          }
          ASSERT_EQ(std::memcmp(sums.data() + h * q_stride, want_sum.data(), sizeof(float) * n), 0)
              << "head " << h;
          for (int64_t i = n; i < q_stride; ++i) ASSERT_EQ(sums[h * q_stride + i], 123.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace icam::llm
