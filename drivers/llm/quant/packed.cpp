// Packing (plain byte shuffles, run once at load) and the grouped matrix product.
#include "drivers/llm/quant/packed.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "drivers/llm/quant/block_formats.h"
#include "drivers/llm/quant/k_codes.h"
#include "drivers/llm/quant/k_scales.h"
#include "drivers/llm/quant/kernel_table.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {
namespace {

// Packed weights start on a 2 MiB boundary so that the kernel can back them with huge pages
// (see pack_together): streaming through 4 KiB pages costs a TLB miss per page, and the hardware
// prefetchers stop at each page's end.
constexpr size_t kHugePage = 2u << 20;
constexpr std::align_val_t kPackAlign{kHugePage};

size_t round_up(size_t v, size_t to) {
  return (v + to - 1) / to * to;
}

// The packed formats: Q8_0 and Q5_0 in blocks of 32, the K-quants Q4_K and Q6_K in super-blocks
// of 256 (packed_layout.h).
bool is_k_quant(GgmlType type) {
  return type == GgmlType::Q4_K || type == GgmlType::Q6_K;
}
int64_t blocks_per_row(GgmlType type, int64_t cols) {
  return cols / (is_k_quant(type) ? kBlock256 : kBlock32);
}

// The 32 codes of a Q5_0 block, 0..31 (the stored value; the format subtracts 16).
void q5_0_codes(const BlockQ5_0& block, uint8_t* q) {
  uint32_t high;
  std::memcpy(&high, block.qh, sizeof high);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<uint8_t>((block.qs[j] & 15) | (((high >> j) & 1) << 4));
    q[j + 16] = static_cast<uint8_t>((block.qs[j] >> 4) | (((high >> (j + 16)) & 1) << 4));
  }
}

// Code i (0..255, 0..63) of a Q6_K block (the layout in block_formats.h).
uint8_t q6_k_code(const BlockQ6_K& block, int i) {
  const int half = i / 128, quarter = (i % 128) / 32, l = i % 32;
  const uint8_t low = block.ql[64 * half + l + 32 * (quarter & 1)];
  const uint8_t nibble = quarter >= 2 ? low >> 4 : low & 15;
  const uint8_t high = (block.qh[32 * half + l] >> (2 * quarter)) & 3;
  return static_cast<uint8_t>(nibble | (high << 4));
}

// Writes a group of 8 K-quant rows in the layout of packed_layout.h.
void pack_group_k(GgmlType type, const uint8_t* rows, size_t row_bytes, int64_t blocks,
                  uint8_t* out) {
  for (int64_t b = 0; b < blocks; ++b) {
    if (type == GgmlType::Q4_K) {
      uint8_t* blk = out + b * packed_q4_k_block_bytes();
      auto* d = reinterpret_cast<uint16_t*>(blk);
      uint8_t* codes = blk + 160;
      for (int r = 0; r < kPackRows; ++r) {
        const auto& block = reinterpret_cast<const BlockQ4_K*>(rows + r * row_bytes)[b];
        std::memcpy(d + r, &block.d, 2);
        std::memcpy(d + 8 + r, &block.dmin, 2);
        uint8_t scales[8], mins[8];
        unpack_k_scales(block.scales, scales, mins);
        for (int s = 0; s < 8; ++s) {
          blk[32 + 8 * s + r] = scales[s];
          blk[96 + 8 * s + r] = mins[s];
        }
        for (int p = 0; p < 4; ++p)
          for (int k = 0; k < 8; ++k)
            for (int e = 0; e < 4; ++e)
              codes[32 * (8 * p + k) + 4 * r + e] =
                  static_cast<uint8_t>(q4_k_code(block, 2 * p, 4 * k + e) |
                                       (q4_k_code(block, 2 * p + 1, 4 * k + e) << 4));
      }
    } else {
      uint8_t* blk = out + b * packed_q6_k_block_bytes();
      auto* d = reinterpret_cast<uint16_t*>(blk);
      uint8_t* ql = blk + 160;
      uint8_t* qh = ql + 4 * 8 * 32;
      for (int r = 0; r < kPackRows; ++r) {
        const auto& block = reinterpret_cast<const BlockQ6_K*>(rows + r * row_bytes)[b];
        std::memcpy(d + r, &block.d, 2);
        for (int s = 0; s < 16; ++s) blk[32 + 8 * s + r] = static_cast<uint8_t>(block.scales[s]);
        uint8_t q[kBlock256];
        for (int i = 0; i < kBlock256; ++i) q[i] = q6_k_code(block, i);
        for (int k = 0; k < 8; ++k)
          for (int e = 0; e < 4; ++e) {
            const int at = 32 * k + 4 * r + e;
            for (int p = 0; p < 4; ++p)
              ql[32 * 8 * p + at] = static_cast<uint8_t>(
                  (q[32 * (2 * p) + 4 * k + e] & 15) | ((q[32 * (2 * p + 1) + 4 * k + e] & 15) << 4));
            for (int h = 0; h < 2; ++h) {
              uint8_t bits = 0;
              for (int j = 0; j < 4; ++j)
                bits |= static_cast<uint8_t>(((q[32 * (4 * h + j) + 4 * k + e] >> 4) & 3) << (2 * j));
              qh[32 * 8 * h + at] = bits;
            }
          }
      }
    }
  }
}

// Writes group g (rows 8g .. 8g+7) in the layout of packed_layout.h.
void pack_group(GgmlType type, const uint8_t* rows, size_t row_bytes, int64_t blocks,
                uint8_t* out) {
  auto* scales = reinterpret_cast<uint16_t*>(out);
  uint8_t* codes = out + packed_scale_bytes(blocks);
  for (int r = 0; r < kPackRows; ++r) {
    const uint8_t* row = rows + r * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
      if (type == GgmlType::Q8_0) {
        const auto& block = reinterpret_cast<const BlockQ8_0*>(row)[b];
        scales[b * kPackRows + r] = block.d;
        uint8_t* w = codes + b * packed_q8_0_block_bytes();
        for (int k = 0; k < 8; ++k) std::memcpy(w + 32 * k + 4 * r, block.qs + 4 * k, 4);
      } else {
        const auto& block = reinterpret_cast<const BlockQ5_0*>(row)[b];
        scales[b * kPackRows + r] = block.d;
        uint8_t q[kBlock32];
        q5_0_codes(block, q);
        uint8_t* w = codes + b * packed_q5_0_block_bytes();
        uint8_t* plane = w;
        uint8_t* nibbles = w + 32;
        for (int e = 0; e < 4; ++e) {
          uint8_t bits = 0;
          for (int k = 0; k < 8; ++k) bits |= static_cast<uint8_t>(((q[4 * k + e] >> 4) & 1) << k);
          plane[4 * r + e] = bits;
          for (int p = 0; p < 4; ++p)
            nibbles[32 * p + 4 * r + e] =
                static_cast<uint8_t>((q[8 * p + e] & 15) | ((q[8 * p + 4 + e] & 15) << 4));
        }
      }
    }
  }
}

// Converted activations of the current call, per calling thread (see matmul.cpp).
uint8_t* activation_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < bytes) scratch.resize(bytes);
  return scratch.data();
}

// Rows of a job in units of kPackRows (the last unit may be short).
int64_t units_of(const PackedWeight& w) {
  return (w.rows() + kPackRows - 1) / kPackRows;
}

// One job's work over its units [u0, u1) for all activation rows.
struct JobRun {
  const FormatKernels* kernels;
  const MatmulJob* job;
  size_t row_bytes;  // GGUF row bytes
};

// Long batches (prefill) go in tiles of activation rows so that a task's weights, read from
// memory once, are reused from cache for every tile while the tile's activations stay in L2.
constexpr int64_t kBatchTile = 32;

void run_units(const JobRun& run, int64_t u0, int64_t u1, const uint8_t* act, size_t act_row_bytes,
               int64_t batch) {
  const PackedWeight& w = *run.job->w;
  const FormatKernels& k = *run.kernels;
  float* y = run.job->y;
  const int64_t ldy = run.job->ldy;
  const int64_t cols = w.cols();
  const auto* original = static_cast<const uint8_t*>(w.original());
  float out[2 * kPackRows * std::max({kMaxPackedCols, kMaxPackedPairCols, kMaxDotCols})];
  for (int64_t tile = 0; tile < batch; tile += kBatchTile) {
    const int64_t tile_end = std::min(batch, tile + kBatchTile);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t r0 = u * kPackRows;
      // Two whole groups at once where the CPU has a kernel for that (16 rows per vector).
      if (k.packed_dot_pair != nullptr && u + 1 < u1 && r0 + 2 * kPackRows <= w.packed_rows()) {
        const uint8_t* group = w.group(u);
        for (int64_t b = tile; b < tile_end; b += k.packed_pair_cols) {
          const int nx = static_cast<int>(std::min<int64_t>(k.packed_pair_cols, tile_end - b));
          k.packed_dot_pair(cols, group, w.group_bytes(),
                            act + static_cast<size_t>(b) * act_row_bytes, act_row_bytes, nx, out);
          for (int c = 0; c < nx; ++c)
            std::memcpy(y + (b + c) * ldy + r0, out + 2 * kPackRows * c,
                        sizeof(float) * 2 * kPackRows);
        }
        ++u;
        continue;
      }
      if (r0 + kPackRows <= w.packed_rows()) {
        const uint8_t* group = w.group(u);
        for (int64_t b = tile; b < tile_end; b += kMaxPackedCols) {
          const int nx = static_cast<int>(std::min<int64_t>(kMaxPackedCols, tile_end - b));
          k.packed_dot(cols, group, act + static_cast<size_t>(b) * act_row_bytes, act_row_bytes, nx,
                       out);
          for (int c = 0; c < nx; ++c)
            std::memcpy(y + (b + c) * ldy + r0, out + kPackRows * c, sizeof(float) * kPackRows);
        }
        continue;
      }
      const int64_t r1 = std::min(w.rows(), r0 + kPackRows);
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = original + static_cast<size_t>(r) * run.row_bytes;
        for (int64_t b = tile; b < tile_end; b += kMaxDotCols) {
          const int nx = static_cast<int>(std::min<int64_t>(kMaxDotCols, tile_end - b));
          k.dot(cols, row, act + static_cast<size_t>(b) * act_row_bytes, act_row_bytes, nx, out);
          for (int c = 0; c < nx; ++c) y[(b + c) * ldy + r] = out[c];
        }
      }
    }
  }
}

// Units per parallel task: about 128 KiB of weights (scheduling costs vanish, and a task's
// weights stay in L2 for the batch tiles), but at least four tasks per thread so that threads
// finishing early find work.
size_t unit_grain(size_t unit_bytes, int64_t units, int threads) {
  const size_t by_bytes = std::max<size_t>(1, (128u << 10) / std::max<size_t>(1, unit_bytes));
  const size_t by_balance = std::max<size_t>(1, static_cast<size_t>(units) / (4u * threads));
  const size_t grain = std::min(by_bytes, by_balance);
  // Even, so that tasks start on even units and the 512-bit kernels get whole pairs of groups
  // (an odd task ends with a group run by the 256-bit kernel; same results either way).
  return grain >= 2 ? grain & ~size_t{1} : grain;
}

}  // namespace

PackedWeight PackedWeight::pack(GgmlType type, const void* data, int64_t rows, int64_t cols) {
  const Source source{type, data, rows, cols};
  return std::move(pack_together(std::span(&source, 1)).front());
}

std::vector<PackedWeight> PackedWeight::pack_together(
    std::span<const Source> sources, const std::function<void(const PackedWeight&)>& packed) {
  // First the shapes and each packed copy's place in the allocation, then one allocation, then
  // the packing.
  std::vector<PackedWeight> out(sources.size());
  std::vector<size_t> offsets(sources.size(), 0);
  size_t total = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    const Source& s = sources[i];
    const FormatKernels& k =
        checked_kernels(active_kernels(), "PackedWeight::pack", s.type, s.cols, KernelUse::dot);
    if (s.rows < 0) {
      std::fprintf(stderr, "icam: PackedWeight::pack: bad shape rows=%lld\n",
                   static_cast<long long>(s.rows));
      std::abort();
    }
    PackedWeight& p = out[i];
    p.type_ = s.type;
    p.rows_ = s.rows;
    p.cols_ = s.cols;
    p.original_ = s.data;
    if (k.packed_dot == nullptr || s.rows < kPackRows) continue;
    const bool k_quant = is_k_quant(s.type);
    const int64_t blocks = blocks_per_row(s.type, s.cols);
    const size_t block_bytes = s.type == GgmlType::Q8_0   ? packed_q8_0_block_bytes()
                               : s.type == GgmlType::Q5_0 ? packed_q5_0_block_bytes()
                               : s.type == GgmlType::Q4_K ? packed_q4_k_block_bytes()
                                                          : packed_q6_k_block_bytes();
    // Whole 64-byte lines per group, so every group (and every matrix) starts on a line.
    p.group_bytes_ =
        round_up((k_quant ? 0 : packed_scale_bytes(blocks)) + blocks * block_bytes, 64);
    p.packed_rows_ = s.rows / kPackRows * kPackRows;
    offsets[i] = total;
    total += p.packed_bytes();
  }
  if (total == 0) return out;

  // Past one huge page, the allocation is whole huge pages, all of them asked for before the
  // first touch (only a hint: transparent huge pages may be off).
  const size_t allocated = total >= kHugePage ? round_up(total, kHugePage) : total;
  std::shared_ptr<uint8_t> storage(static_cast<uint8_t*>(::operator new[](allocated, kPackAlign)),
                                   [](uint8_t* p) { ::operator delete[](p, kPackAlign); });
  if (allocated >= kHugePage) madvise(storage.get(), allocated, MADV_HUGEPAGE);
  std::memset(storage.get(), 0, total);  // padding
  for (size_t i = 0; i < sources.size(); ++i) {
    PackedWeight& p = out[i];
    if (p.packed_rows_ == 0) continue;
    p.storage_ = storage;
    p.packed_ = storage.get() + offsets[i];
    const Source& s = sources[i];
    const bool k_quant = is_k_quant(s.type);
    const int64_t blocks = blocks_per_row(s.type, s.cols);
    const size_t row_bytes = ggml_row_bytes(s.type, static_cast<uint64_t>(s.cols));
    const auto* src = static_cast<const uint8_t*>(s.data);
    uint8_t* dst = storage.get() + offsets[i];
    for (int64_t g = 0; g < p.packed_rows_ / kPackRows; ++g)
      (k_quant ? pack_group_k : pack_group)(s.type,
                                            src + static_cast<size_t>(g) * kPackRows * row_bytes,
                                            row_bytes, blocks, dst + g * p.group_bytes_);
    if (packed) packed(p);
  }
  return out;
}

void matmul_group(ThreadPool& pool, std::span<const MatmulJob> jobs, const float* x, int64_t batch,
                  const RowsDone* done) {
  if (jobs.empty()) return;
  const KernelTable& table = active_kernels();
  const int64_t cols = jobs[0].w->cols();
  std::vector<JobRun> runs;
  runs.reserve(jobs.size());
  for (const MatmulJob& job : jobs) {
    const PackedWeight& w = *job.w;
    const FormatKernels& k =
        checked_kernels(table, "matmul_group", w.type(), w.cols(), KernelUse::dot);
    if (w.cols() != cols || job.ldy < w.rows() || batch < 0 ||
        (done != nullptr && w.rows() != jobs[0].w->rows())) {
      std::fprintf(stderr, "icam: matmul_group: jobs of different shapes or bad ldy\n");
      std::abort();
    }
    runs.push_back({&k, &job, ggml_row_bytes(w.type(), static_cast<uint64_t>(cols))});
  }
  if (batch == 0) return;

  // Jobs whose types take different activation formats: one call each (rare: the formats of one
  // model's matrices that share an input normally agree).
  const ActivationFormat format = runs[0].kernels->activations;
  for (const JobRun& run : runs) {
    if (run.kernels->activations == format) continue;
    for (const MatmulJob& job : jobs) matmul_group(pool, std::span(&job, 1), x, batch);
    if (done != nullptr) (*done)(0, jobs[0].w->rows());
    return;
  }

  // Phase 1: activations in the weight types' activation layout, once for all jobs.
  const auto* act = reinterpret_cast<const uint8_t*>(x);
  const size_t act_row_bytes = activation_row_bytes(format, cols);
  if (format != ActivationFormat::f32) {
    const QuantizeFn quantize = table[format].quantize;
    uint8_t* converted = activation_scratch(static_cast<size_t>(batch) * act_row_bytes);
    const auto convert = [&](size_t begin, size_t end) {
      for (size_t b = begin; b < end; ++b)
        quantize(x + b * static_cast<size_t>(cols), converted + b * act_row_bytes, cols);
    };
    // Cheap next to the products; below this size waking the pool would cost more than it saves.
    constexpr int64_t kParallelConvertElements = 1 << 16;
    if (batch > 1 && batch * cols >= kParallelConvertElements) {
      pool.parallel_for(static_cast<size_t>(batch), 1, convert);
    } else {
      convert(0, static_cast<size_t>(batch));
    }
    act = converted;
  }

  // Phase 2: units of 8 rows, one parallel region for all jobs.
  if (done != nullptr) {
    // The same unit range of every job per task, then the caller's step on those rows.
    const int64_t rows = jobs[0].w->rows();
    const int64_t units = units_of(*jobs[0].w);
    size_t unit_bytes = 0;
    for (const JobRun& run : runs) unit_bytes += kPackRows * run.row_bytes;
    pool.parallel_for(static_cast<size_t>(units), unit_grain(unit_bytes, units, pool.size()),
                      [&](size_t begin, size_t end) {
                        for (const JobRun& run : runs)
                          run_units(run, static_cast<int64_t>(begin), static_cast<int64_t>(end),
                                    act, act_row_bytes, batch);
                        (*done)(static_cast<int64_t>(begin) * kPackRows,
                                std::min(rows, static_cast<int64_t>(end) * kPackRows));
                      });
    return;
  }
  // The jobs' units one after the other; a task may span the end of one job and the next.
  std::vector<int64_t> first_unit(runs.size() + 1, 0);
  size_t total_bytes = 0;
  for (size_t j = 0; j < runs.size(); ++j) {
    first_unit[j + 1] = first_unit[j] + units_of(*jobs[j].w);
    total_bytes += static_cast<size_t>(jobs[j].w->rows()) * runs[j].row_bytes;
  }
  const int64_t units = first_unit.back();
  const size_t unit_bytes = total_bytes / static_cast<size_t>(std::max<int64_t>(1, units));
  pool.parallel_for(
      static_cast<size_t>(units), unit_grain(unit_bytes, units, pool.size()),
      [&](size_t begin, size_t end) {
        for (size_t j = 0; j < runs.size(); ++j) {
          const int64_t u0 = std::max<int64_t>(static_cast<int64_t>(begin), first_unit[j]);
          const int64_t u1 = std::min<int64_t>(static_cast<int64_t>(end), first_unit[j + 1]);
          if (u0 < u1)
            run_units(runs[j], u0 - first_unit[j], u1 - first_unit[j], act, act_row_bytes, batch);
        }
      });
}

void matmul(ThreadPool& pool, const PackedWeight& w, const float* x, int64_t batch, float* y,
            int64_t ldy) {
  const MatmulJob job{&w, y, ldy};
  matmul_group(pool, std::span(&job, 1), x, batch);
}

}  // namespace icam::llm
