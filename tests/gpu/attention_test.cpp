// Keys and values into a paged device pool, and attention over it, against a host reference
// written like CpuBackend::attention (drivers/llm/engine/cpu_backend.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "drivers/llm/engine/ops.h"
#include "drivers/llm/quant/quant.h"
#include "gpu/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace icam::gpu {
namespace {

using testing::make_stream;
using testing::to_device;
using testing::to_host;

struct Case {
  int head_dim;
  int n_heads;
  int n_kv_heads;
  int window;  // 0: global
};

class AttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionTest, MatchesCpuReference) {
  ICAM_REQUIRE_DEVICE();
  const Case c = GetParam();
  const int n_layers = 2, layer = 1, page_tokens = 4;
  const int kv_dim = c.n_kv_heads * c.head_dim, q_dim = c.n_heads * c.head_dim;
  KvGeometry geo;
  geo.page_tokens = page_tokens;
  geo.kv_dim = kv_dim;
  geo.slab_bytes = static_cast<uint64_t>(page_tokens) * kv_dim * 2;
  geo.page_bytes = geo.slab_bytes * 2 * n_layers;
  const int n_pages = 32;

  // Two sequences of 19 and 45 positions on shuffled pages; every position is a row of this step.
  const std::vector<int> lengths = {19, 45};
  std::vector<int32_t> page_ids(n_pages);
  std::iota(page_ids.begin(), page_ids.end(), 0);
  std::mt19937 rng(5);
  std::shuffle(page_ids.begin(), page_ids.end(), rng);
  std::vector<int32_t> pages, pos, table_offset, seq_of_row;
  size_t next_page = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    const auto offset = static_cast<int32_t>(pages.size());
    for (int p = 0; p < (lengths[s] + page_tokens - 1) / page_tokens; ++p)
      pages.push_back(page_ids[next_page++]);
    for (int p = 0; p < lengths[s]; ++p) {
      pos.push_back(p);
      table_offset.push_back(offset);
      seq_of_row.push_back(static_cast<int32_t>(s));
    }
  }
  const auto rows = static_cast<int64_t>(pos.size());
  std::normal_distribution<float> dist(0, 1);
  std::vector<float> q(rows * q_dim), k(rows * kv_dim), v(rows * kv_dim);
  for (auto& x : q) x = dist(rng) * 0.3f;
  for (auto& x : k) x = dist(rng);
  for (auto& x : v) x = dist(rng);

  Stream stream = make_stream();
  DeviceBuffer pool = testing::device_zeros(geo.page_bytes * n_pages, stream);
  DeviceBuffer dq = to_device(q, stream), dk = to_device(k, stream), dv = to_device(v, stream);
  DeviceBuffer dpages = to_device(pages, stream), dpos = to_device(pos, stream),
               doff = to_device(table_offset, stream);
  DeviceBuffer out = testing::device_zeros(rows * q_dim * sizeof(float), stream);
  StepRows step{dpos.as<int32_t>(), doff.as<int32_t>(), dpages.as<int32_t>()};
  Status s = store_kv(pool.as<uint8_t>(), geo, layer, dk.as<float>(), dv.as<float>(), rows, step,
                      stream.handle());
  ASSERT_TRUE(s.ok()) << s.error().message();
  AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.window};
  s = paged_attention(dq.as<float>(), pool.as<uint8_t>(), geo, layer, shape, rows, step,
                      out.as<float>(), stream.handle());
  ASSERT_TRUE(s.ok()) << s.error().message();
  // The tiled (prefill) kernel over tiles of up to kAttentionTileRows rows within each sequence.
  std::vector<int32_t> tiles;
  for (size_t q0 = 0, first_row = 0; q0 < lengths.size(); first_row += lengths[q0], ++q0)
    for (int t = 0; t < lengths[q0]; t += kAttentionTileRows) {
      tiles.push_back(static_cast<int32_t>(first_row + t));
      tiles.push_back(std::min(kAttentionTileRows, lengths[q0] - t));
    }
  DeviceBuffer dtiles = to_device(tiles, stream);
  DeviceBuffer out_tiled = testing::device_zeros(rows * q_dim * sizeof(float), stream);
  s = paged_attention_tiled(dq.as<float>(), pool.as<uint8_t>(), geo, layer, shape,
                            dtiles.as<int32_t>(), static_cast<int64_t>(tiles.size() / 2), step,
                            out_tiled.as<float>(), stream.handle());
  ASSERT_TRUE(s.ok()) << s.error().message();

  // The pool holds the halves where the layout says, and nothing in the other layer.
  const std::vector<uint16_t> host_pool =
      to_host<uint16_t>(pool, geo.page_bytes * n_pages / 2, stream);
  auto slot = [&](int64_t row, int kind) {
    const int32_t page = pages[table_offset[row] + pos[row] / page_tokens];
    return (page * geo.page_bytes + (2 * layer + kind) * geo.slab_bytes +
            static_cast<uint64_t>(pos[row] % page_tokens) * kv_dim * 2) /
           2;
  };
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < kv_dim; ++i) {
      ASSERT_EQ(host_pool[slot(r, 0) + i], llm::f32_to_fp16(k[r * kv_dim + i])) << r << " " << i;
      ASSERT_EQ(host_pool[slot(r, 1) + i], llm::f32_to_fp16(v[r * kv_dim + i])) << r << " " << i;
    }

  const std::vector<float> got = to_host<float>(out, rows * q_dim, stream);
  const std::vector<float> got_tiled = to_host<float>(out_tiled, rows * q_dim, stream);
  const int group = c.n_heads / c.n_kv_heads;
  for (int64_t r = 0; r < rows; ++r) {
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / group;
      const int32_t first = c.window > 0 ? std::max(0, pos[r] - c.window + 1) : 0;
      std::vector<float> scores;
      float max_score = -INFINITY;
      for (int32_t p = first; p <= pos[r]; ++p) {
        // The row of sequence seq_of_row[r] at position p.
        const int64_t src = r - (pos[r] - p);
        const uint16_t* kh = host_pool.data() + slot(src, 0) + kvh * c.head_dim;
        scores.push_back(llm::ops::dot_f16(q.data() + r * q_dim + h * c.head_dim, kh, c.head_dim));
        max_score = std::max(max_score, scores.back());
      }
      double sum = 0;
      for (auto& sc : scores) sum += (sc = std::exp(sc - max_score));
      std::vector<float> want(c.head_dim, 0.0f);
      for (int32_t p = first; p <= pos[r]; ++p) {
        const int64_t src = r - (pos[r] - p);
        const uint16_t* vh = host_pool.data() + slot(src, 1) + kvh * c.head_dim;
        llm::ops::axpy_f16(scores[p - first] * static_cast<float>(1.0 / sum), vh, want.data(),
                           c.head_dim);
      }
      for (int d = 0; d < c.head_dim; ++d) {
        ASSERT_NEAR(got[r * q_dim + h * c.head_dim + d], want[d], 2e-5f * (1 + std::fabs(want[d])))
            << "row " << r << " head " << h << " dim " << d;
        ASSERT_NEAR(got_tiled[r * q_dim + h * c.head_dim + d], want[d],
                    2e-5f * (1 + std::fabs(want[d])))
            << "tiled: row " << r << " head " << h << " dim " << d;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Values(Case{8, 8, 2, 0}, Case{16, 4, 2, 0}, Case{32, 4, 2, 5},
                                           Case{64, 4, 4, 0}, Case{128, 8, 2, 0},
                                           Case{256, 4, 1, 8}));

}  // namespace
}  // namespace icam::gpu
