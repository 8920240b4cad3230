// The element-wise kernels of gpu/ops.h against drivers/llm/engine/ops.h.
#include "drivers/llm/engine/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gpu/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace icam::gpu {
namespace {

using testing::make_stream;
using testing::to_device;
using testing::to_host;

std::vector<float> random_floats(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> dist(0, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float rel,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * (1 + std::fabs(want[i]))) << what << " element " << i;
}

TEST(GpuOps, RmsNormInPlaceAndGathered) {
  ICAM_REQUIRE_DEVICE();
  for (int n : {16, 100, 640, 2304}) {
    const int rows = 5;
    std::vector<float> x = random_floats(rows * n, n, 3.0f);
    std::vector<float> w = random_floats(n, n + 1);
    std::vector<float> want(rows * n);
    for (int r = 0; r < rows; ++r)
      llm::ops::rms_norm(x.data() + r * n, w.data(), want.data() + r * n, n, 1e-6f);
    Stream stream = make_stream();
    DeviceBuffer dx = to_device(x, stream), dw = to_device(w, stream);
    ASSERT_TRUE(
        rms_norm(dx.as<float>(), dw.as<float>(), dx.as<float>(), rows, n, 1e-6f, stream.handle())
            .ok());
    expect_close(to_host<float>(dx, rows * n, stream), want, 1e-6f, "rms_norm");

    const std::vector<int32_t> pick = {3, 0, 3};
    DeviceBuffer dx2 = to_device(x, stream), dpick = to_device(pick, stream);
    DeviceBuffer out = testing::device_zeros(pick.size() * n * sizeof(float), stream);
    ASSERT_TRUE(rms_norm_gather(dx2.as<float>(), dpick.as<int32_t>(), dw.as<float>(),
                                out.as<float>(), 3, n, 1e-6f, stream.handle())
                    .ok());
    std::vector<float> want_g;
    for (int32_t r : pick)
      want_g.insert(want_g.end(), want.begin() + r * n, want.begin() + (r + 1) * n);
    expect_close(to_host<float>(out, pick.size() * n, stream), want_g, 1e-6f, "rms_norm_gather");
  }
}

TEST(GpuOps, RopeBothPairingsWithScale) {
  ICAM_REQUIRE_DEVICE();
  const int rows = 6, n_heads = 3;
  for (int head_dim : {8, 64, 256}) {
    for (auto style : {llm::RopeStyle::interleaved, llm::RopeStyle::halves}) {
      std::vector<float> x = random_floats(rows * n_heads * head_dim, head_dim);
      std::vector<float> table(rows * head_dim);
      std::vector<float> want = x;
      const float scale = 0.125f;
      for (int r = 0; r < rows; ++r) {
        float* t = table.data() + r * head_dim;
        llm::ops::rope_angles(head_dim, 1000 * r + 7, 10000.0f, 1.0f, nullptr, t, t + head_dim / 2);
        float* v = want.data() + r * n_heads * head_dim;
        llm::ops::rope_apply(v, n_heads, head_dim, t, t + head_dim / 2, style);
        for (int i = 0; i < n_heads * head_dim; ++i) v[i] *= scale;
      }
      Stream stream = make_stream();
      DeviceBuffer dx = to_device(x, stream), dt = to_device(table, stream);
      const RopePairing pairing =
          style == llm::RopeStyle::halves ? RopePairing::halves : RopePairing::interleaved;
      ASSERT_TRUE(rope(dx.as<float>(), rows, n_heads, head_dim, dt.as<float>(), pairing, scale,
                       stream.handle())
                      .ok());
      expect_close(to_host<float>(dx, x.size(), stream), want, 1e-6f, "rope");
    }
  }
}

TEST(GpuOps, GatedActivations) {
  ICAM_REQUIRE_DEVICE();
  const int n = 3000;
  const std::vector<float> gate = random_floats(n, 1, 4.0f), up = random_floats(n, 2);
  for (auto act : {llm::FfnActivation::gelu_tanh, llm::FfnActivation::silu}) {
    std::vector<float> want(n);
    llm::ops::gated_activation(gate.data(), up.data(), want.data(), n, act);
    Stream stream = make_stream();
    DeviceBuffer dg = to_device(gate, stream), du = to_device(up, stream);
    ASSERT_TRUE(gated_activation(dg.as<float>(), du.as<float>(), dg.as<float>(), n,
                                 act == llm::FfnActivation::silu ? GatedActivation::silu
                                                                 : GatedActivation::gelu_tanh,
                                 stream.handle())
                    .ok());
    expect_close(to_host<float>(dg, n, stream), want, 2e-6f, "gated activation");
  }
}

TEST(GpuOps, ResidualAndBiasAdds) {
  ICAM_REQUIRE_DEVICE();
  const int rows = 7, dim = 96;
  const std::vector<float> x = random_floats(rows * dim, 1), y = random_floats(rows * dim, 2);
  const std::vector<float> bias = random_floats(dim, 3);
  std::vector<float> want = x;
  for (int i = 0; i < rows * dim; ++i) want[i] = (want[i] + y[i]) + bias[i % dim];
  Stream stream = make_stream();
  DeviceBuffer dx = to_device(x, stream), dy = to_device(y, stream), db = to_device(bias, stream);
  ASSERT_TRUE(add_in_place(dx.as<float>(), dy.as<float>(), rows * dim, stream.handle()).ok());
  ASSERT_TRUE(add_bias(dx.as<float>(), db.as<float>(), rows, dim, stream.handle()).ok());
  const std::vector<float> got = to_host<float>(dx, rows * dim, stream);
  for (int i = 0; i < rows * dim; ++i) ASSERT_EQ(got[i], want[i]) << i;
}

TEST(GpuOps, ArgmaxLowestIndexOnTies) {
  ICAM_REQUIRE_DEVICE();
  const int64_t n = 262144;
  std::vector<float> x = random_floats(3 * n, 9);
  x[5] = 100.0f;  // row 0
  x[n + 7000] = 50.0f;
  x[n + 900] = 50.0f;            // row 1: tie, lower index wins
  x[2 * n + n - 1] = 1000.0f;    // row 2: the last element
  x[2 * n + 3] = std::nanf("");  // NaN never wins
  Stream stream = make_stream();
  DeviceBuffer dx = to_device(x, stream);
  DeviceBuffer out = testing::device_zeros(3 * sizeof(int32_t), stream);
  ASSERT_TRUE(argmax_rows(dx.as<float>(), 3, n, out.as<int32_t>(), stream.handle()).ok());
  const std::vector<int32_t> got = to_host<int32_t>(out, 3, stream);
  EXPECT_EQ(got[0], 5);
  EXPECT_EQ(got[1], 900);
  EXPECT_EQ(got[2], n - 1);
}

}  // namespace
}  // namespace icam::gpu
