// Throughput of matmul on the shapes of a small decoder model, scalar kernels against AVX2.
//
//   quant_speed [threads=2] [seconds_per_measurement=0.4] [type, e.g. q8_0: only that type]
//
// Prints GB/s of weight bytes streamed per call for batch 1 and 8, the AVX2/scalar ratio, and how
// much more work batch 8 gets done than batch 1 (8 * t1 / t8). Weights are cycled through enough
// copies (>= 256 MiB) that every call streams them from memory as decoding does, not from cache.
// A plain read of the same copies, split across the same threads, gives the memory bandwidth to
// compare with ("read"; "avx2/rd" is the fraction of it the product achieves at that batch).
// "avx2 hot" repeats one copy instead: the kernels' speed when the weights come from cache (all
// but the largest matrix fit in L2/L3).
// "packed" is the same product on weights packed by PackedWeight (packed.h) where the type has
// packed kernels (otherwise the same kernels as "avx2"), each copy in an allocation of its own;
// "together" packs all the copies into one allocation, in huge pages, as the engine packs a
// model (PackedWeight::pack_together): matrices under 2 MiB cannot have huge pages alone.
// Each figure is the fastest call of those made in the time given, to be robust to other load.
//
// Not a test: timings depend on the machine and its load. Built with the tests, run by hand.
#include <emmintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/packed.h"
#include "drivers/llm/quant/quant.h"
#include "tests/drivers/llm/quant/quant_test_util.h"

namespace icam::llm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Case {
  GgmlType type;
  int64_t rows;
  int64_t cols;
};

// Reads `bytes` bytes at p with 128-bit loads (SSE2, present on every x86-64), the memory
// bandwidth baseline. Returns a value that depends on every byte so the reads stay.
uint32_t read_all(const uint8_t* p, size_t bytes) {
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64) {
    a0 = _mm_xor_si128(a0, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    a1 = _mm_xor_si128(a1, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
    a2 = _mm_xor_si128(a2, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
    a3 = _mm_xor_si128(a3, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
  }
  uint32_t tail = 0;
  for (; i < bytes; ++i) tail ^= p[i];
  const __m128i all = _mm_xor_si128(_mm_xor_si128(a0, a1), _mm_xor_si128(a2, a3));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(all)) ^ tail;
}

// Seconds per plain read of one weight copy, split across the pool in 64 KiB pieces as matmul
// splits rows: the memory bandwidth this access pattern can get. Fastest call, as below.
double read_time(ThreadPool& pool, const std::vector<std::vector<uint8_t>>& copies,
                 double seconds) {
  const size_t bytes = copies[0].size();
  const size_t piece = 64u << 10;
  const size_t pieces = (bytes + piece - 1) / piece;
  std::vector<uint32_t> sink(pieces);
  size_t calls = 0;
  double best = 1e30;
  const auto start = Clock::now();
  while (calls < 5 || seconds_since(start) < seconds) {
    const uint8_t* base = copies[calls % copies.size()].data();
    const auto call_start = Clock::now();
    pool.parallel_for(pieces, 1, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        sink[i] = read_all(base + i * piece, std::min(piece, bytes - i * piece));
      }
    });
    best = std::min(best, seconds_since(call_start));
    ++calls;
  }
  uint32_t check = 0;
  for (uint32_t v : sink) check ^= v;
  if (check == 0x12345678u) std::printf(" ");  // keeps the reads from being optimized away
  return best;
}

// Seconds per call, cycling through the weight copies: the fastest call seen, so that calls in
// which another process took a core away do not count (the machine may be shared).
double time_per_call(const KernelTable& kernels, ThreadPool& pool, const Case& c,
                     const std::vector<std::vector<uint8_t>>& copies, const std::vector<float>& x,
                     int64_t batch, double seconds) {
  std::vector<float> y(static_cast<size_t>(batch * c.rows));
  matmul_with_kernels(kernels, &pool, c.type, copies[0].data(), c.rows, c.cols, x.data(), batch,
                      y.data(), c.rows);  // warm-up: scratch, threads
  size_t calls = 0;
  double best = 1e30;
  const auto start = Clock::now();
  while (calls < 5 || seconds_since(start) < seconds) {
    const auto& w = copies[calls % copies.size()];
    const auto call_start = Clock::now();
    matmul_with_kernels(kernels, &pool, c.type, w.data(), c.rows, c.cols, x.data(), batch, y.data(),
                        c.rows);
    best = std::min(best, seconds_since(call_start));
    ++calls;
  }
  return best;
}

// As time_per_call, for the same weights packed (packed.h) by the active kernels: each copy in
// an allocation of its own, or (`together`) all in one, as the engine packs a model's matrices.
double packed_time_per_call(ThreadPool& pool, const Case& c,
                            const std::vector<std::vector<uint8_t>>& copies,
                            const std::vector<float>& x, int64_t batch, double seconds,
                            bool together) {
  std::vector<PackedWeight> packed;
  if (together) {
    std::vector<PackedWeight::Source> sources;
    for (const auto& copy : copies) sources.push_back({c.type, copy.data(), c.rows, c.cols});
    packed = PackedWeight::pack_together(sources);
  } else {
    for (const auto& copy : copies)
      packed.push_back(PackedWeight::pack(c.type, copy.data(), c.rows, c.cols));
  }
  std::vector<float> y(static_cast<size_t>(batch * c.rows));
  matmul(pool, packed[0], x.data(), batch, y.data(), c.rows);  // warm-up
  size_t calls = 0;
  double best = 1e30;
  const auto start = Clock::now();
  while (calls < 5 || seconds_since(start) < seconds) {
    const auto call_start = Clock::now();
    matmul(pool, packed[calls % packed.size()], x.data(), batch, y.data(), c.rows);
    best = std::min(best, seconds_since(call_start));
    ++calls;
  }
  return best;
}

int run(int threads, double seconds, const std::string& only) {
  ThreadPool pool(threads);
  const KernelTable* avx2 = avx2_kernels();
  std::printf("threads %d, AVX2 kernels %s\n\n", pool.size(), avx2 ? "available" : "NOT available");
  std::printf("%-6s %-12s %5s | %9s %9s %7s | %9s %8s | %10s | %9s | %9s %8s %10s | %9s\n",
              "type", "rows x cols", "batch", "scalar", "avx2", "ratio", "read", "avx2/rd",
              "b8 gain", "avx2 hot", "packed", "pack/rd", "b8 gain", "together");
  std::printf("%-6s %-12s %5s | %9s %9s %7s | %9s %8s | %10s | %9s | %9s %8s %10s | %9s\n", "",
              "", "", "GB/s", "GB/s", "", "GB/s", "", "8*t1/t8", "GB/s", "GB/s", "", "8*t1/t8",
              "GB/s");

  const Case cases[] = {
      {GgmlType::Q4_K, 640, 2048}, {GgmlType::Q5_K, 640, 2048},   {GgmlType::Q6_K, 640, 2048},
      {GgmlType::Q8_0, 640, 2048}, {GgmlType::Q5_0, 640, 2048},   {GgmlType::Q4_0, 640, 2048},
      {GgmlType::F16, 640, 2048},  {GgmlType::Q5_0, 2048, 640},   {GgmlType::Q8_0, 2048, 640},
      {GgmlType::Q4_0, 2048, 640}, {GgmlType::Q8_0, 262144, 640},
  };
  for (const Case& c : cases) {
    if (!only.empty() && test::type_name(c.type) != only) continue;
    // 64 distinct random rows repeated to fill the matrix, then copied until >= 256 MiB.
    const size_t row_bytes = test::row_bytes(c.type, c.cols);
    const size_t matrix_bytes = row_bytes * static_cast<size_t>(c.rows);
    const std::vector<float> seed_values = test::random_floats(static_cast<size_t>(64 * c.cols), 1);
    const std::vector<uint8_t> seed_rows = test::quantize_matrix(c.type, seed_values, 64, c.cols);
    const size_t copy_count = std::max<size_t>(2, ((256u << 20) + matrix_bytes - 1) / matrix_bytes);
    std::vector<std::vector<uint8_t>> copies(copy_count, std::vector<uint8_t>(matrix_bytes));
    for (auto& copy : copies) {
      for (int64_t r = 0; r < c.rows; ++r) {
        std::memcpy(copy.data() + static_cast<size_t>(r) * row_bytes,
                    seed_rows.data() + static_cast<size_t>(r % 64) * row_bytes, row_bytes);
      }
    }
    const std::vector<float> x = test::random_floats(static_cast<size_t>(8 * c.cols), 2);
    const double bandwidth =
        static_cast<double>(matrix_bytes) / read_time(pool, copies, seconds) / 1e9;
    double avx2_t1 = 0, packed_t1 = 0;
    for (int64_t batch : {1, 8}) {
      const double t_scalar = time_per_call(scalar_kernels(), pool, c, copies, x, batch, seconds);
      const double t_avx2 =
          avx2 ? time_per_call(*avx2, pool, c, copies, x, batch, seconds) : t_scalar;
      // The same matrix again and again: from cache where it fits, the kernels' own speed.
      const std::vector<std::vector<uint8_t>> hot(copies.begin(), copies.begin() + 1);
      const double t_hot =
          avx2 ? time_per_call(*avx2, pool, c, hot, x, batch, seconds / 2) : t_scalar;
      const double t_packed = packed_time_per_call(pool, c, copies, x, batch, seconds, false);
      const double t_together = packed_time_per_call(pool, c, copies, x, batch, seconds, true);
      if (batch == 1) avx2_t1 = t_avx2;
      if (batch == 1) packed_t1 = t_packed;
      const double gbs_scalar = static_cast<double>(matrix_bytes) / t_scalar / 1e9;
      const double gbs_avx2 = static_cast<double>(matrix_bytes) / t_avx2 / 1e9;
      const std::string shape = std::to_string(c.rows) + "x" + std::to_string(c.cols);
      char gain[32] = "";
      char packed_gain[32] = "";
      if (batch == 8) std::snprintf(gain, sizeof gain, "%.2f", 8 * avx2_t1 / t_avx2);
      if (batch == 8)
        std::snprintf(packed_gain, sizeof packed_gain, "%.2f", 8 * packed_t1 / t_packed);
      const double gbs_packed = static_cast<double>(matrix_bytes) / t_packed / 1e9;
      std::printf(
          "%-6s %-12s %5lld | %9.2f %9.2f %7.1f | %9.2f %7.0f%% | %10s | %9.2f | %9.2f %7.0f%% "
          "%10s | %9.2f\n",
          test::type_name(c.type).c_str(), shape.c_str(), static_cast<long long>(batch), gbs_scalar,
          gbs_avx2, t_scalar / t_avx2, bandwidth, 100 * gbs_avx2 / bandwidth, gain,
          static_cast<double>(matrix_bytes) / t_hot / 1e9, gbs_packed, 100 * gbs_packed / bandwidth,
          packed_gain, static_cast<double>(matrix_bytes) / t_together / 1e9);
    }
  }
  return 0;
}

}  // namespace
}  // namespace icam::llm

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 0.4;
  return icam::llm::run(threads, seconds, argc > 3 ? argv[3] : "");
}
