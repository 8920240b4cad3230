// The CUDA benchmark: on one device, with a real model, measures the device's copy bandwidth,
// batch-1 decode (tokens/s, and weight bytes streamed per second as a fraction of that
// bandwidth: how close decode is to the memory limit), aggregate decode at several batch sizes,
// and prefill of long prompts in one step. Without a CUDA device it says so and exits 0.
//
// usage: cuda_bench [--model PATH] [--device N] [--decode-tokens 32] [--batches 8,64,256]
//                   [--prefill 512,4096] [--no-cublas] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench/backend_rates.h"
#include "common/config.h"
#include "drivers/llm/engine/block_table.h"
#include "drivers/llm/engine/cuda_backend.h"
#include "drivers/llm/engine/model.h"
#include "gpu/cuda_device.h"

namespace {

using icam::bench::decode_rate;
using icam::bench::make_tokens;
using icam::bench::seconds_since;
using Clock = std::chrono::steady_clock;
using icam::llm::Backend;
using icam::llm::BlockTable;
using icam::llm::LogitsWanted;
using icam::llm::SequenceStep;

struct Options {
  std::string model;
  int device = 0;
  int decode_tokens = 32;
  std::vector<int> batches = {8, 64, 256};
  std::vector<int> prefill = {512, 4096};
  bool cublas = true;
  bool json = false;
};

std::vector<int> parse_list(const char* v) {
  std::vector<int> out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--no-cublas") {
      o.cublas = false;
    } else if (a == "--model" && (v = next())) {
      o.model = v;
    } else if (a == "--device" && (v = next())) {
      o.device = std::atoi(v);
    } else if (a == "--decode-tokens" && (v = next())) {
      o.decode_tokens = std::max(2, std::atoi(v));
    } else if (a == "--batches" && (v = next())) {
      o.batches = parse_list(v);
    } else if (a == "--prefill" && (v = next())) {
      o.prefill = parse_list(v);
    } else {
      std::fprintf(stderr, "cuda_bench: bad argument '%s'\n", a.c_str());
      return false;
    }
  }
  return true;
}

// One step of `n` prompt tokens (logits for the last), after one warm-up step. Tokens/s.
icam::Result<double> prefill_rate(Backend& backend, int n) {
  const std::vector<int32_t> tokens = make_tokens(n, backend.config().n_vocab, 7);
  std::vector<float> logits;
  double seconds = 0;
  for (int round = 0; round < 2; ++round) {
    BlockTable table(backend.kv_pool());
    ICAM_TRY(table.reserve(n));
    SequenceStep step{tokens, 0, table.pages(), LogitsWanted::last};
    auto t = Clock::now();
    ICAM_TRY(backend.forward(std::span<const SequenceStep>(&step, 1), logits));
    seconds = seconds_since(t);
  }
  return n / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  auto devices = icam::gpu::list_devices();
  if (!devices.ok()) {
    std::printf("cuda_bench: %s; nothing to measure\n", devices.error().message().c_str());
    return 0;
  }
  auto config = icam::load_config();
  if (!config.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", config.error().message().c_str());
    return 1;
  }
  if (o.model.empty()) o.model = config->model;
  auto model = icam::llm::Model::load(o.model);
  if (!model.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", model.error().message().c_str());
    return 1;
  }
  const auto& m = **model;
  const auto& c = m.config();
  int max_batch = 1;
  for (int b : o.batches) max_batch = std::max(max_batch, b);
  int max_prefill = 0;
  for (int p : o.prefill) max_prefill = std::max(max_prefill, p);
  const int prompt = 32;
  const int64_t kv_per_token = 2LL * c.n_layers * c.kv_dim() * 2;
  const int64_t positions = std::max<int64_t>(
      static_cast<int64_t>(max_batch + 1) * (prompt + o.decode_tokens + 32), max_prefill + 64);
  icam::llm::CudaBackendOptions options;
  options.device = o.device;
  options.use_cublas = o.cublas;
  options.kv.bytes = static_cast<uint64_t>(positions * kv_per_token) + (64ull << 20);
  auto backend = icam::llm::create_cuda_backend(c, m.weights(), options);
  if (!backend.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", backend.error().message().c_str());
    return 1;
  }
  Backend& be = **backend;
  const icam::llm::CudaBackendInfo* info = icam::llm::cuda_backend_info(be);

  nlohmann::json out;
  out["model"] = o.model;
  out["device"] = (*devices)[o.device].name;
  out["weight_bytes_on_device"] = info->weight_bytes;
  out["weight_bytes_per_token"] = m.weight_bytes_per_token();
  out["matmul"] = info->matmul;

  auto bw = icam::gpu::measure_copy_bandwidth(o.device, 1ull << 30, 5);
  if (!bw.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", bw.error().message().c_str());
    return 1;
  }
  out["copy_bandwidth_gbs"] = *bw / 1e9;

  auto decode1 = decode_rate(be, 1, prompt, o.decode_tokens);
  if (!decode1.ok()) {
    std::fprintf(stderr, "cuda_bench: decode: %s\n", decode1.error().message().c_str());
    return 1;
  }
  const double streamed = *decode1 * static_cast<double>(m.weight_bytes_per_token());
  out["decode_batch1_tps"] = *decode1;
  out["decode_batch1_weight_gbs"] = streamed / 1e9;
  out["decode_batch1_bandwidth_ratio"] = streamed / *bw;

  for (int b : o.batches) {
    auto rate = decode_rate(be, b, prompt, o.decode_tokens);
    if (!rate.ok()) {
      std::fprintf(stderr, "cuda_bench: batch %d: %s\n", b, rate.error().message().c_str());
      return 1;
    }
    out["decode_batch" + std::to_string(b) + "_tps"] = *rate;
    out["decode_batch" + std::to_string(b) + "_vs_batch1"] = *rate / *decode1;
  }
  for (int p : o.prefill) {
    if (p > c.context_length) {
      out["prefill" + std::to_string(p) + "_tps"] = nullptr;
      continue;
    }
    auto rate = prefill_rate(be, p);
    if (!rate.ok()) {
      std::fprintf(stderr, "cuda_bench: prefill %d: %s\n", p, rate.error().message().c_str());
      return 1;
    }
    out["prefill" + std::to_string(p) + "_tps"] = *rate;
  }

  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("device            %s (%s)\n", out["device"].get<std::string>().c_str(),
              info->matmul.c_str());
  std::printf("model             %s, %.1f MB of weights on the device\n", o.model.c_str(),
              info->weight_bytes / 1e6);
  std::printf("copy bandwidth    %.1f GB/s\n", *bw / 1e9);
  std::printf("decode batch 1    %.1f tokens/s, %.1f GB/s of weights = %.2f of copy bandwidth\n",
              *decode1, streamed / 1e9, streamed / *bw);
  for (int b : o.batches) {
    const double r = out["decode_batch" + std::to_string(b) + "_tps"].get<double>();
    std::printf("decode batch %-4d %.1f tokens/s aggregate (%.1fx batch 1)\n", b, r, r / *decode1);
  }
  for (int p : o.prefill) {
    const auto& v = out["prefill" + std::to_string(p) + "_tps"];
    if (v.is_null())
      std::printf("prefill %-5d     skipped: beyond the model's context of %d\n", p,
                  c.context_length);
    else
      std::printf("prefill %-5d     %.1f tokens/s\n", p, v.get<double>());
  }
  return 0;
}
