// The engine benchmark: in one run on a real model with all cores, measures the machine's memory
// bandwidth (a STREAM-like copy), prompt processing, decode at batch 1 and aggregate decode at
// larger batches, and prints each with its ratio to the in-run baseline:
//   - batch-1 decode streams (weight bytes per token × tokens/s); its ratio to the measured copy
//     bandwidth says how close decode is to the memory-bandwidth limit (also printed: its ratio
//     to the same copy on huge pages and to a plain read, see Bandwidth);
//   - aggregate decode at batch B is reported as a multiple of batch 1.
// Optionally (--long-context N) prefills an N-token context, decodes --decode-tokens steps on it
// at batch 1, and reports peak resident memory; with --memory-only it does just that (no copy
// buffers, no throughput runs), so the peak is the model plus the context.
//
// usage: engine_bench [--model PATH] [--threads N] [--prompt-tokens 512] [--decode-tokens 32]
//                     [--batches 8,32] [--long-context 8192] [--memory-only] [--repeat 5] [--json]
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "bench/backend_rates.h"
#include "common/config.h"
#include "common/thread_pool.h"
#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"

namespace {

using icam::bench::decode_rate;
using icam::bench::make_tokens;
using icam::bench::seconds_since;
using Clock = std::chrono::steady_clock;
using icam::llm::BlockTable;
using icam::llm::LogitsWanted;
using icam::llm::SequenceStep;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Memory bandwidth, all threads, on buffers far past the caches (`bytes` each), touched once when
// made so that a pass measures memory, not page faults:
//   - copy: the STREAM-like copy, bytes read + bytes written per second, on memory as a program
//     gets it by default (as STREAM's arrays do): the baseline of the batch-1 ratio;
//   - huge_copy: the same copy on buffers that ask for huge pages, as the engine's packed weights
//     do (PackedWeight). Where transparent huge pages are on only when asked for (`madvise`
//     mode, as on the Xeon of 2026-12-06), plain memory streams through 4 KiB pages and this copy
//     is faster (37-39 against 45-50 GB/s there); elsewhere the two agree;
//   - huge_read: a plain read of a huge-page buffer, bytes per second: what a workload that only
//     reads, as decoding does, can stream. Where each core's misses in flight bound its
//     bandwidth it is below the copy's count, whose stores wait for no reply (30-32 GB/s on
//     that Xeon).
class Bandwidth {
 public:
  explicit Bandwidth(size_t bytes)
      : bytes_(bytes),
        a_(make(bytes, false)),
        b_(make(bytes, false)),
        huge_a_(make(bytes, true)),
        huge_b_(make(bytes, true)) {}

  double copy(icam::ThreadPool& pool) { return copy(pool, a_.get(), b_.get()); }
  double huge_copy(icam::ThreadPool& pool) { return copy(pool, huge_a_.get(), huge_b_.get()); }

  double huge_read(icam::ThreadPool& pool) {
    const auto* words = reinterpret_cast<const uint64_t*>(huge_a_.get());
    const size_t n = bytes_ / sizeof(uint64_t);
    auto t = Clock::now();
    pool.parallel_for(n / 8, n / 8 / pool.size() + 1, [&](size_t begin, size_t end) {
      uint64_t acc[8] = {};
      for (size_t i = begin * 8; i < end * 8; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] ^= words[i + k];
      uint64_t all = 0;
      for (uint64_t v : acc) all ^= v;
      sink_.fetch_xor(all, std::memory_order_relaxed);  // keeps the loads
    });
    return static_cast<double>(bytes_) / seconds_since(t);
  }

 private:
  static constexpr std::align_val_t kAlign{2u << 20};
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete[](p, kAlign); }
  };
  using Buffer = std::unique_ptr<uint8_t[], Free>;

  static Buffer make(size_t bytes, bool huge) {
    Buffer p(static_cast<uint8_t*>(::operator new[](bytes, kAlign)));
    if (huge) madvise(p.get(), bytes, MADV_HUGEPAGE);  // a hint, as for the weights
    std::memset(p.get(), huge ? 3 : 1, bytes);
    return p;
  }

  double copy(icam::ThreadPool& pool, const uint8_t* from, uint8_t* to) {
    const size_t n = bytes_;
    auto t = Clock::now();
    pool.parallel_for(n, n / pool.size() + 1, [&](size_t begin, size_t end) {
      std::memcpy(to + begin, from + begin, end - begin);
    });
    return 2.0 * static_cast<double>(n) / seconds_since(t);
  }

  size_t bytes_;
  Buffer a_, b_, huge_a_, huge_b_;
  std::atomic<uint64_t> sink_{0};
};

struct Options {
  std::string model;
  int threads = 0;
  int prompt_tokens = 512;
  int decode_tokens = 32;
  std::vector<int> batches = {8, 32};
  int long_context = 0;
  int repeat = 5;
  bool json = false;
  bool memory_only = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--memory-only") {
      o.memory_only = true;
    } else if ((a == "--model") && (v = next())) {
      o.model = v;
    } else if (a == "--threads" && (v = next())) {
      o.threads = std::atoi(v);
    } else if (a == "--prompt-tokens" && (v = next())) {
      o.prompt_tokens = std::atoi(v);
    } else if (a == "--decode-tokens" && (v = next())) {
      o.decode_tokens = std::atoi(v);
    } else if (a == "--long-context" && (v = next())) {
      o.long_context = std::atoi(v);
    } else if (a == "--repeat" && (v = next())) {
      o.repeat = std::max(1, std::atoi(v));
    } else if (a == "--batches" && (v = next())) {
      o.batches.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');)
        o.batches.push_back(std::atoi(item.c_str()));
    } else {
      std::fprintf(stderr, "engine_bench: bad argument '%s'\n", a.c_str());
      return false;
    }
  }
  return o.prompt_tokens > 0 && o.decode_tokens > 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  auto config = icam::load_config();
  if (!config.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", config.error().message().c_str());
    return 1;
  }
  if (o.model.empty()) o.model = config->model;
  auto model = icam::llm::Model::load(o.model);
  if (!model.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", model.error().message().c_str());
    return 1;
  }
  const auto& m = **model;
  if (o.memory_only) {
    if (o.long_context <= 0) o.long_context = 8192;
    o.batches.clear();
  }
  int max_batch = 1;
  for (int b : o.batches) max_batch = std::max(max_batch, b);
  const int64_t positions_per_seq = o.prompt_tokens + o.decode_tokens + 64;
  const int64_t kv_per_token = 2LL * m.config().n_layers * m.config().kv_dim() * 2;
  icam::llm::KvPoolOptions kv;
  kv.bytes = std::max<int64_t>(
                 static_cast<int64_t>(max_batch + 1) * positions_per_seq * kv_per_token,
                 static_cast<int64_t>(o.long_context + o.decode_tokens + 64) * kv_per_token) +
             (64ll << 20);
  auto backend = icam::llm::CpuBackend::create(m.config(), m.weights(), kv, o.threads);
  if (!backend.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", backend.error().message().c_str());
    return 1;
  }
  auto& be = **backend;
  icam::ThreadPool copy_pool(be.threads());

  nlohmann::json out;
  out["model"] = o.model;
  out["threads"] = be.threads();
  out["weight_bytes_per_token"] = m.weight_bytes_per_token();

  double bandwidth = 0, decode1 = 0, streamed = 0, ratio1 = 0, ratio1_min = 0, ratio1_max = 0;
  double huge_bandwidth = 0, read_bandwidth = 0, huge_ratio1 = 0, read_ratio1 = 0;
  if (!o.memory_only) {
    // Prompt processing: one 512-token prefill, median of repeats.
    {
      std::vector<double> rates;
      auto tokens = make_tokens(o.prompt_tokens, m.config().n_vocab, 7);
      std::vector<float> logits;
      for (int r = 0; r < o.repeat; ++r) {
        BlockTable table(be.kv_pool());
        if (auto s = table.reserve(o.prompt_tokens); !s.ok()) {
          std::fprintf(stderr, "engine_bench: %s\n", s.error().message().c_str());
          return 1;
        }
        SequenceStep step{tokens, 0, table.pages(), LogitsWanted::last};
        auto t = Clock::now();
        if (auto s = be.forward(std::span<const SequenceStep>(&step, 1), logits); !s.ok()) {
          std::fprintf(stderr, "engine_bench: %s\n", s.error().message().c_str());
          return 1;
        }
        rates.push_back(o.prompt_tokens / seconds_since(t));
      }
      out["prompt_tokens_per_s"] = median(rates);
    }

    auto measure = [&](int batch) -> double {
      std::vector<double> rates;
      for (int r = 0; r < o.repeat; ++r) {
        auto rate = decode_rate(be, batch, 16, o.decode_tokens);
        if (!rate.ok()) {
          std::fprintf(stderr, "engine_bench: batch %d: %s\n", batch,
                       rate.error().message().c_str());
          std::exit(1);
        }
        rates.push_back(*rate);
      }
      return median(rates);
    };
    // Batch 1 against the copy bandwidth in rounds of (bandwidths, decode), so that each ratio
    // compares measurements taken moments apart: on a shared machine the bandwidth left to this
    // process moves from minute to minute. Reported: the medians over the rounds, and the
    // ratios' range.
    {
      Bandwidth memory(512ull << 20);
      memory.copy(copy_pool);  // warm-up
      memory.huge_copy(copy_pool);
      std::vector<double> copies, huge_copies, huge_reads, decodes, ratios, huge_ratios,
          read_ratios;
      const double bytes = static_cast<double>(m.weight_bytes_per_token());
      for (int r = 0; r < o.repeat; ++r) {
        copies.push_back(memory.copy(copy_pool));
        huge_copies.push_back(memory.huge_copy(copy_pool));
        huge_reads.push_back(memory.huge_read(copy_pool));
        auto rate = decode_rate(be, 1, 16, o.decode_tokens);
        if (!rate.ok()) {
          std::fprintf(stderr, "engine_bench: batch 1: %s\n", rate.error().message().c_str());
          return 1;
        }
        decodes.push_back(*rate);
        ratios.push_back(*rate * bytes / copies.back());
        huge_ratios.push_back(*rate * bytes / huge_copies.back());
        read_ratios.push_back(*rate * bytes / huge_reads.back());
      }
      bandwidth = median(copies);
      huge_bandwidth = median(huge_copies);
      read_bandwidth = median(huge_reads);
      decode1 = median(decodes);
      streamed = decode1 * bytes;
      ratio1 = median(ratios);
      ratio1_min = *std::min_element(ratios.begin(), ratios.end());
      ratio1_max = *std::max_element(ratios.begin(), ratios.end());
      huge_ratio1 = median(huge_ratios);
      read_ratio1 = median(read_ratios);
    }
    out["copy_bandwidth_gbs"] = bandwidth / 1e9;
    out["huge_page_copy_bandwidth_gbs"] = huge_bandwidth / 1e9;
    out["huge_page_read_bandwidth_gbs"] = read_bandwidth / 1e9;
    out["decode_tokens_per_s_batch1"] = decode1;
    out["streamed_gbs_batch1"] = streamed / 1e9;
    out["bandwidth_ratio_batch1"] = ratio1;
    out["bandwidth_ratio_batch1_min"] = ratio1_min;
    out["bandwidth_ratio_batch1_max"] = ratio1_max;
    out["huge_page_copy_ratio_batch1"] = huge_ratio1;
    out["huge_page_read_ratio_batch1"] = read_ratio1;
    for (int b : o.batches) {
      const double rate = measure(b);
      out["decode_tokens_per_s_batch" + std::to_string(b)] = rate;
      out["batch" + std::to_string(b) + "_over_batch1"] = rate / decode1;
    }
  }  // !memory_only

  if (o.long_context > 0) {
    auto tokens = make_tokens(o.long_context, m.config().n_vocab, 11);
    BlockTable table(be.kv_pool());
    std::vector<float> logits;
    auto t = Clock::now();
    for (int start = 0; start < o.long_context; start += 512) {
      const int count = std::min(512, o.long_context - start);
      if (auto s = table.reserve(start + count); !s.ok()) return 1;
      SequenceStep step{std::span<const int32_t>(tokens).subspan(start, count), start,
                        table.pages(), LogitsWanted::last};
      if (auto s = be.forward(std::span<const SequenceStep>(&step, 1), logits); !s.ok()) {
        std::fprintf(stderr, "engine_bench: %s\n", s.error().message().c_str());
        return 1;
      }
    }
    out["long_context_tokens"] = o.long_context;
    out["long_context_prefill_tokens_per_s"] = o.long_context / seconds_since(t);

    // Then decode steps at batch 1 on that context, where attention reads thousands of keys and
    // values per layer and token besides the weights.
    const auto greedy = [&] {
      return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    };
    int32_t next = greedy();
    if (auto s = table.reserve(o.long_context + o.decode_tokens); !s.ok()) {
      std::fprintf(stderr, "engine_bench: %s\n", s.error().message().c_str());
      return 1;
    }
    t = Clock::now();
    for (int i = 0; i < o.decode_tokens; ++i) {
      SequenceStep step{std::span<const int32_t>(&next, 1), o.long_context + i, table.pages(),
                        LogitsWanted::last};
      if (auto s = be.forward(std::span<const SequenceStep>(&step, 1), logits); !s.ok()) {
        std::fprintf(stderr, "engine_bench: %s\n", s.error().message().c_str());
        return 1;
      }
      next = greedy();
    }
    out["long_context_decode_tokens_per_s"] = o.decode_tokens / seconds_since(t);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  out["peak_rss_mib"] = static_cast<double>(usage.ru_maxrss) / 1024.0;

  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model                      %s\n", o.model.c_str());
  std::printf("threads                    %d\n", be.threads());
  if (!o.memory_only) {
    std::printf("copy bandwidth             %.2f GB/s (STREAM-like copy, read+write)\n",
                bandwidth / 1e9);
    std::printf("  with huge pages          %.2f GB/s copy, %.2f GB/s plain read\n",
                huge_bandwidth / 1e9, read_bandwidth / 1e9);
    std::printf("prompt (%d tokens)        %.1f tokens/s\n", o.prompt_tokens,
                out["prompt_tokens_per_s"].get<double>());
    std::printf(
        "decode batch 1             %.2f tokens/s, streams %.2f GB/s = %.2f x copy bandwidth "
        "(median of %d rounds, each against its own copy: %.2f-%.2f); %.2f x the huge-page "
        "copy, %.2f x the plain read\n",
        decode1, streamed / 1e9, ratio1, o.repeat, ratio1_min, ratio1_max, huge_ratio1,
        read_ratio1);
    for (int b : o.batches)
      std::printf("decode batch %-3d           %.2f tokens/s aggregate = %.2f x batch 1\n", b,
                  out["decode_tokens_per_s_batch" + std::to_string(b)].get<double>(),
                  out["batch" + std::to_string(b) + "_over_batch1"].get<double>());
  }
  if (o.long_context > 0)
    std::printf("prefill %d-token context  %.1f tokens/s; then decode at batch 1 %.1f tokens/s\n",
                o.long_context, out["long_context_prefill_tokens_per_s"].get<double>(),
                out["long_context_decode_tokens_per_s"].get<double>());
  std::printf("peak resident memory       %.1f MiB\n", out["peak_rss_mib"].get<double>());
  return 0;
}
