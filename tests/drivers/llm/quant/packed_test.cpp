// Packed weights (packed.h): packing happens where the active kernels have a packed layout, and
// products on packed weights equal the row-by-row kernels bit for bit (the packed kernels do the
// same integer sums and the same float operations in the same order), for every shape, batch and
// thread count, alone or grouped with other products, with the rows-done hook seeing every row
// once; and they agree with the scalar reference to float rounding.
#include "drivers/llm/quant/packed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/cpu_features.h"
#include "common/thread_pool.h"
#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/quant/quant_test_util.h"

namespace icam::llm {
namespace {

bool has_packed_kernels(GgmlType t) {
  return active_kernels()[t].packed_dot != nullptr;
}

bool is_k_quant(GgmlType t) {
  return t == GgmlType::Q4_K || t == GgmlType::Q6_K;
}

// Weights for a packed-product test: quantized normal floats, or random blocks (every code,
// including Q8_0's -128, and every high-bit pattern).
std::vector<uint8_t> weights(GgmlType t, int64_t rows, int64_t cols, bool random_bits,
                             uint32_t seed) {
  if (random_bits) return test::random_blocks(t, rows * cols, seed);
  const std::vector<float> wf = test::random_floats(static_cast<size_t>(rows * cols), seed);
  return test::quantize_matrix(t, wf, rows, cols);
}

class Packed : public testing::TestWithParam<GgmlType> {};

TEST_P(Packed, PacksExactlyTheTypesWithPackedKernels) {
  const GgmlType t = GetParam();
  const int64_t rows = 21, cols = 256;
  const std::vector<uint8_t> w = weights(t, rows, cols, false, 1);
  const PackedWeight p = PackedWeight::pack(t, w.data(), rows, cols);
  EXPECT_EQ(p.rows(), rows);
  EXPECT_EQ(p.cols(), cols);
  EXPECT_EQ(p.original(), w.data());
  if (has_packed_kernels(t)) {
    EXPECT_EQ(p.packed_rows(), 16);
    // The GGUF block sizes plus at most the padding.
    EXPECT_GE(p.group_bytes() * 2, test::row_bytes(t, cols) * 16);
    EXPECT_LE(p.group_bytes(), test::row_bytes(t, cols) * 8 + 96);
  } else {
    EXPECT_EQ(p.packed_rows(), 0);
  }
  // Fewer rows than a group: nothing to pack.
  EXPECT_EQ(PackedWeight::pack(t, w.data(), 7, cols).packed_rows(), 0);
}

TEST_P(Packed, EqualsRowKernelsBitForBit) {
  const GgmlType t = GetParam();
  if (!has_packed_kernels(t)) GTEST_SKIP() << "no packed kernels for this type on this CPU";
  ThreadPool pool1(1), pool2(2), pool3(3);
  ThreadPool* pools[] = {&pool1, &pool2, &pool3};
  struct Shape {
    int64_t rows, cols;
  };
  // Odd group counts too: the 512-bit kernels take groups in pairs and the last one alone.
  // The K-quants' columns are whole super-blocks of 256 (the default model's are 1024 and 2048).
  const std::vector<Shape> shapes =
      is_k_quant(t) ? std::vector<Shape>{{8, 256}, {19, 1024}, {64, 2048}, {45, 768}, {24, 1280}}
                    : std::vector<Shape>{{8, 32}, {19, 640}, {64, 2048}, {45, 96}, {24, 160}};
  for (const Shape shape : shapes) {
    for (const bool random_bits : {false, true}) {
      const int64_t rows = shape.rows, cols = shape.cols;
      const std::vector<uint8_t> w =
          weights(t, rows, cols, random_bits, static_cast<uint32_t>(rows * 7 + cols));
      const PackedWeight p = PackedWeight::pack(t, w.data(), rows, cols);
      ASSERT_EQ(p.packed_rows(), rows / 8 * 8);
      // Against the scalar reference too, bit for bit (kernels.h fixes the float steps).
      for (const int64_t batch : {1, 2, 3, 4, 5, 8, 9, 16, 32, 37}) {
        SCOPED_TRACE(test::type_name(t) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                     " batch " + std::to_string(batch) + (random_bits ? " random bits" : ""));
        const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols),
                                                         static_cast<uint32_t>(batch + cols));
        std::vector<float> rowwise(static_cast<size_t>(batch * rows));
        std::vector<float> reference(rowwise.size());
        ::icam::llm::matmul(pool2, t, w.data(), rows, cols, x.data(), batch, rowwise.data(), rows);
        matmul_reference(t, w.data(), rows, cols, x.data(), batch, reference.data(), rows);
        for (ThreadPool* pool : pools) {
          // ldy > rows, with a sentinel in the gap that must survive.
          const int64_t ldy = rows + 2;
          std::vector<float> y(static_cast<size_t>(batch * ldy), -777.0f);
          matmul(*pool, p, x.data(), batch, y.data(), ldy);
          for (int64_t b = 0; b < batch; ++b) {
            for (int64_t r = 0; r < rows; ++r) {
              ASSERT_EQ(y[b * ldy + r], rowwise[b * rows + r])
                  << "row " << r << " column " << b << ", " << pool->size() << " threads";
              const float want = reference[b * rows + r];
              ASSERT_EQ(std::memcmp(&y[b * ldy + r], &want, sizeof want), 0)
                  << "row " << r << ": " << y[b * ldy + r] << " vs scalar " << want;
            }
            for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[b * ldy + r], -777.0f);
          }
        }
      }
    }
  }
}

// Every type, packed or not: the product on a PackedWeight equals the plain matmul.
// Every instruction-set variant of the packed kernels this CPU can run (AVX2, AVX-VNNI,
// AVX512-VNNI) gives the same results bit for bit, on the same packed groups and activations.
TEST_P(Packed, InstructionSetVariantsAgreeBitForBit) {
  const GgmlType t = GetParam();
  if (!use_avx2() || (t != GgmlType::Q8_0 && t != GgmlType::Q5_0))
    GTEST_SKIP() << "no packed kernels for this type on this CPU";
  const auto& f = cpu_features();
  struct Variant {
    const char* name;
    bool available;
    PackedDotFn q8_0, q5_0;
  };
  const Variant variants[] = {
      {"avxvnni", f.avx_vnni, avxvnni::packed_dot_q8_0, avxvnni::packed_dot_q5_0},
      {"avx512vnni", f.avx512_vnni_vl, avx512vnni::packed_dot_q8_0, avx512vnni::packed_dot_q5_0},
  };
  const int64_t rows = 16, cols = 640;
  for (const bool random_bits : {false, true}) {
    const std::vector<uint8_t> w = weights(t, rows, cols, random_bits, 77);
    const PackedWeight p = PackedWeight::pack(t, w.data(), rows, cols);
    ASSERT_EQ(p.packed_rows(), rows);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(kMaxPackedCols * cols), 5);
    const size_t stride = activation_row_bytes(ActivationFormat::q8_0, cols);
    std::vector<uint8_t> xq(stride * kMaxPackedCols);
    for (int c = 0; c < kMaxPackedCols; ++c)
      active_kernels()[ActivationFormat::q8_0].quantize(x.data() + c * cols, xq.data() + c * stride,
                                                        cols);
    int tried = 0;
    for (const Variant& v : variants) {
      if (!v.available) continue;
      ++tried;
      for (int nx = 1; nx <= kMaxPackedCols; ++nx) {
        for (int64_t g = 0; g < rows / kPackRows; ++g) {
          std::vector<float> want(static_cast<size_t>(kPackRows * nx)), got(want.size());
          (t == GgmlType::Q8_0 ? avx2::packed_dot_q8_0 : avx2::packed_dot_q5_0)(
              cols, p.group(g), xq.data(), stride, nx, want.data());
          (t == GgmlType::Q8_0 ? v.q8_0 : v.q5_0)(cols, p.group(g), xq.data(), stride, nx,
                                                  got.data());
          EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
              << v.name << ", " << nx << " activation rows, group " << g;
        }
      }
    }
    if (tried == 0) GTEST_SKIP() << "this CPU has no VNNI variant";
  }
}

// The 512-bit kernels on pairs of groups (16 rows) give, bit for bit, what the AVX2 kernel gives
// on each group of the pair: every shape class (1 to 128 blocks, odd counts), 1 to 4 activation
// rows per call (1 to 8 for Q8_0 and Q5_0; matmul takes longer batches that many rows at a
// time), quantized normal weights and
// random blocks (every code, Q8_0's -128 included), activations with extreme codes and all-zero
// blocks.
TEST_P(Packed, Avx512PairKernelsEqualAvx2BitForBit) {
  const GgmlType t = GetParam();
  if (!use_avx2() || !has_packed_kernels(t))
    GTEST_SKIP() << "no packed kernels for this type on this CPU";
  if (!cpu_has_avx512_packed()) GTEST_SKIP() << "this CPU has no AVX512F/BW/VL/VNNI";
  PackedDotFn single = nullptr;
  PackedDotPairFn pair = nullptr;
  switch (t) {
    case GgmlType::Q8_0:
      single = avx2::packed_dot_q8_0, pair = avx512::packed_dot_pair_q8_0;
      break;
    case GgmlType::Q5_0:
      single = avx2::packed_dot_q5_0, pair = avx512::packed_dot_pair_q5_0;
      break;
    case GgmlType::Q4_K:
      single = avx2::packed_dot_q4_k, pair = avx512::packed_dot_pair_q4_k;
      break;
    case GgmlType::Q6_K:
      single = avx2::packed_dot_q6_k, pair = avx512::packed_dot_pair_q6_k;
      break;
    default:
      GTEST_SKIP() << "no 512-bit kernels for this type";
  }
  const ActivationFormat format = active_kernels()[t].activations;
  const std::vector<int64_t> col_list =
      is_k_quant(t) ? std::vector<int64_t>{256, 512, 768, 1024, 2048, 4096}
                    : std::vector<int64_t>{32, 64, 96, 224, 640, 2048, 4096};
  for (const int64_t cols : col_list) {
    for (const bool random_bits : {false, true}) {
      const int64_t rows = 48;
      const std::vector<uint8_t> w =
          weights(t, rows, cols, random_bits, static_cast<uint32_t>(cols + random_bits));
      const PackedWeight p = PackedWeight::pack(t, w.data(), rows, cols);
      ASSERT_EQ(p.packed_rows(), rows);
      const int max_nx = active_kernels()[t].packed_pair_cols;
      std::vector<float> x =
          test::random_floats(static_cast<size_t>(max_nx * cols), static_cast<uint32_t>(cols));
      // An all-zero block in row 1 and a block with one large element in row 2.
      for (int j = 0; j < 32; ++j) x[static_cast<size_t>(cols) + j] = 0.0f;
      x[static_cast<size_t>(2 * cols) + 5] = -1000.0f;
      const size_t stride = activation_row_bytes(format, cols);
      std::vector<uint8_t> xq(stride * max_nx);
      for (int c = 0; c < max_nx; ++c)
        active_kernels()[format].quantize(x.data() + c * cols, xq.data() + c * stride, cols);
      for (int nx = 1; nx <= max_nx; ++nx) {
        for (int64_t g = 0; g + 1 < rows / kPackRows; ++g) {
          std::vector<float> want(static_cast<size_t>(2 * kPackRows * nx));
          std::vector<float> got(want.size(), -1.0f);
          std::vector<float> one(static_cast<size_t>(kPackRows * kMaxPackedCols));
          for (int h = 0; h < 2; ++h) {
            // The 256-bit kernel takes up to kMaxPackedCols rows a call.
            for (int c0 = 0; c0 < nx; c0 += kMaxPackedCols) {
              const int n1 = std::min(kMaxPackedCols, nx - c0);
              single(cols, p.group(g + h), xq.data() + c0 * stride, stride, n1, one.data());
              for (int c = 0; c < n1; ++c)
                std::memcpy(want.data() + 2 * kPackRows * (c0 + c) + kPackRows * h,
                            one.data() + kPackRows * c, sizeof(float) * kPackRows);
            }
          }
          pair(cols, p.group(g), p.group_bytes(), xq.data(), stride, nx, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
              << test::type_name(t) << " cols " << cols << (random_bits ? " random bits" : "")
              << ", " << nx << " activation rows, groups " << g << " and " << g + 1;
        }
      }
    }
  }
}

TEST_P(Packed, EqualsPlainMatmul) {
  const GgmlType t = GetParam();
  ThreadPool pool(2);
  const int64_t rows = 27, cols = 512;
  const std::vector<uint8_t> w = weights(t, rows, cols, false, 9);
  const PackedWeight p = PackedWeight::pack(t, w.data(), rows, cols);
  for (const int64_t batch : {1, 6}) {
    const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 10);
    std::vector<float> plain(static_cast<size_t>(batch * rows)), packed(plain.size());
    ::icam::llm::matmul(pool, t, w.data(), rows, cols, x.data(), batch, plain.data(), rows);
    matmul(pool, p, x.data(), batch, packed.data(), rows);
    EXPECT_EQ(packed, plain) << "batch " << batch;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, Packed, testing::ValuesIn(test::computable_types()),
                         [](const testing::TestParamInfo<GgmlType>& p) {
                           return test::type_name(p.param);
                         });

// Several products of one input in one call, of mixed types and row counts (Q/K/V), equal the
// products made one by one; with mixed activation formats too.
TEST(PackedGroup, EqualsSeparateProducts) {
  ThreadPool pool(2);
  const int64_t cols = 640, batch = 5;
  struct Spec {
    GgmlType type;
    int64_t rows;
  };
  for (const auto& specs :
       {std::vector<Spec>{{GgmlType::Q5_0, 64}, {GgmlType::Q5_0, 24}, {GgmlType::Q8_0, 29}},
        std::vector<Spec>{{GgmlType::Q8_0, 16}, {GgmlType::F16, 9}}}) {
    std::vector<std::vector<uint8_t>> raw;
    std::vector<PackedWeight> packed;
    for (size_t i = 0; i < specs.size(); ++i) {
      raw.push_back(weights(specs[i].type, specs[i].rows, cols, false, 40 + i));
      packed.push_back(PackedWeight::pack(specs[i].type, raw.back().data(), specs[i].rows, cols));
    }
    const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 50);
    std::vector<std::vector<float>> grouped(specs.size()), alone(specs.size());
    std::vector<MatmulJob> jobs;
    for (size_t i = 0; i < specs.size(); ++i) {
      grouped[i].assign(static_cast<size_t>(batch * specs[i].rows), 0.0f);
      alone[i].assign(grouped[i].size(), 1.0f);
      jobs.push_back({&packed[i], grouped[i].data(), specs[i].rows});
      matmul(pool, packed[i], x.data(), batch, alone[i].data(), specs[i].rows);
    }
    matmul_group(pool, jobs, x.data(), batch);
    for (size_t i = 0; i < specs.size(); ++i) EXPECT_EQ(grouped[i], alone[i]) << "job " << i;
  }
}

// Matrices packed together (one allocation, as the engine packs a model) multiply exactly as
// each packed alone, lie one after the other in the order given, and outlive the others: the
// allocation is shared, so the last matrix dropped frees it. Mixed types, a matrix too short to
// pack, one with rows past its last group, and one of a type without a packed layout.
TEST(PackedTogether, EqualsPackedAloneAndSharesOneAllocation) {
  ThreadPool pool(2);
  const int64_t cols = 256, batch = 3;
  const std::vector<PackedWeight::Source> shapes = {{GgmlType::Q5_0, nullptr, 40, cols},
                                                    {GgmlType::Q4_K, nullptr, 5, cols},
                                                    {GgmlType::Q8_0, nullptr, 27, cols},
                                                    {GgmlType::F16, nullptr, 16, cols},
                                                    {GgmlType::Q6_K, nullptr, 24, cols}};
  std::vector<std::vector<uint8_t>> raw;
  std::vector<PackedWeight::Source> sources = shapes;
  for (size_t i = 0; i < sources.size(); ++i) {
    raw.push_back(weights(sources[i].type, sources[i].rows, cols, true, 70 + i));
    sources[i].data = raw.back().data();
  }
  const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 80);
  std::vector<PackedWeight> together = PackedWeight::pack_together(sources);
  ASSERT_EQ(together.size(), sources.size());

  const uint8_t* next = nullptr;
  for (size_t i = 0; i < sources.size(); ++i) {
    const PackedWeight alone =
        PackedWeight::pack(sources[i].type, sources[i].data, sources[i].rows, cols);
    EXPECT_EQ(together[i].packed_rows(), alone.packed_rows()) << "matrix " << i;
    EXPECT_EQ(together[i].group_bytes(), alone.group_bytes()) << "matrix " << i;
    if (together[i].packed_rows() > 0) {
      if (next != nullptr) {
        EXPECT_EQ(together[i].group(0), next) << "matrix " << i;
      }
      next = together[i].group(0) + together[i].packed_bytes();
    }
    std::vector<float> a(static_cast<size_t>(batch * sources[i].rows), 0.0f), b(a.size(), 1.0f);
    matmul(pool, together[i], x.data(), batch, a.data(), sources[i].rows);
    matmul(pool, alone, x.data(), batch, b.data(), sources[i].rows);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "matrix " << i;
  }

  // The last matrix, kept alone, still reads its packed copy (ASan would see a freed one).
  const size_t last = sources.size() - 1;
  std::vector<float> before(static_cast<size_t>(batch * sources[last].rows));
  matmul(pool, together[last], x.data(), batch, before.data(), sources[last].rows);
  PackedWeight kept = std::move(together[last]);
  together.clear();
  std::vector<float> after(before.size());
  matmul(pool, kept, x.data(), batch, after.data(), sources[last].rows);
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float)));
}

// With the rows-done hook (gate and up with the activation function): each row range is
// reported once, after both products hold their final values for it.
TEST(PackedGroup, RowsDoneSeesFinishedRowsOnce) {
  ThreadPool pool(3);
  const int64_t rows = 203, cols = 256;
  for (const int64_t batch : {1, 4}) {
    const std::vector<uint8_t> wa = weights(GgmlType::Q5_0, rows, cols, false, 60);
    const std::vector<uint8_t> wb = weights(GgmlType::Q5_0, rows, cols, false, 61);
    const PackedWeight a = PackedWeight::pack(GgmlType::Q5_0, wa.data(), rows, cols);
    const PackedWeight b = PackedWeight::pack(GgmlType::Q5_0, wb.data(), rows, cols);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(batch * cols), 62);
    std::vector<float> ya(static_cast<size_t>(batch * rows)), yb(ya.size());
    std::vector<float> ea(ya.size()), eb(ya.size()), product(ya.size(), 0.0f);
    matmul(pool, a, x.data(), batch, ea.data(), rows);
    matmul(pool, b, x.data(), batch, eb.data(), rows);
    std::vector<int> seen(static_cast<size_t>(rows), 0);
    const RowsDone done = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        ++seen[r];
        for (int64_t c = 0; c < batch; ++c)
          product[c * rows + r] = ya[c * rows + r] * yb[c * rows + r];
      }
    };
    const MatmulJob jobs[] = {{&a, ya.data(), rows}, {&b, yb.data(), rows}};
    matmul_group(pool, jobs, x.data(), batch, &done);
    EXPECT_EQ(seen, std::vector<int>(static_cast<size_t>(rows), 1));
    for (size_t i = 0; i < product.size(); ++i) ASSERT_EQ(product[i], ea[i] * eb[i]) << i;
  }
}

}  // namespace
}  // namespace icam::llm
