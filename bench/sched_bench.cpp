// The scheduler benchmark: N concurrent agents on the real default model, all submitted at once,
// each with a short distinct prompt (32 to 64 tokens) generating a fixed number of tokens greedily,
// driven through the continuous-batching scheduler until all are done. For each N it prints:
//   - aggregate throughput end to end: generated tokens of all agents / wall time of the run
//     (prefills included);
//   - aggregate decode throughput: tokens generated after every agent had its first token / the
//     time from then to the end (only decodes run then);
//   - time to first token and time per output token (gaps between an agent's tokens), p50 and p99;
//   - the scheduler's own share of step time (step() minus Backend::forward minus sampling), and
//     sampling's share;
//   - steps, mean batch size and tokens per step.
// The baseline is the 1-agent run of the same invocation: each larger N is reported as a multiple
// of it, and the 16-agent / 1-agent ratio is printed on its own line when both were run.
//
// usage: sched_bench [--model PATH] [--threads N] [--agents 1,4,16,64] [--tokens 32]
//                    [--policy fair_share|round_robin|fifo] [--quantum 16] [--budget 256]
//                    [--max-batch 64] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;
  int threads = 0;
  std::vector<int> agents = {1, 4, 16, 64};
  int tokens = 32;
  icam::sched::PolicyKind policy = icam::sched::PolicyKind::fair_share;
  int quantum = 16;
  int budget = 256;
  int max_batch = 64;
  bool json = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--model" && (v = next())) {
      o.model = v;
    } else if (a == "--threads" && (v = next())) {
      o.threads = std::atoi(v);
    } else if (a == "--tokens" && (v = next())) {
      o.tokens = std::atoi(v);
    } else if (a == "--quantum" && (v = next())) {
      o.quantum = std::atoi(v);
    } else if (a == "--budget" && (v = next())) {
      o.budget = std::atoi(v);
    } else if (a == "--max-batch" && (v = next())) {
      o.max_batch = std::atoi(v);
    } else if (a == "--policy" && (v = next())) {
      auto kind = icam::sched::parse_policy_kind(v);
      if (!kind.ok()) {
        std::fprintf(stderr, "sched_bench: %s\n", kind.error().message().c_str());
        return false;
      }
      o.policy = *kind;
    } else if (a == "--agents" && (v = next())) {
      o.agents.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');)
        o.agents.push_back(std::atoi(item.c_str()));
    } else {
      std::fprintf(stderr, "sched_bench: bad argument '%s'\n", a.c_str());
      return false;
    }
  }
  for (int n : o.agents)
    if (n < 1) return false;
  return !o.agents.empty() && o.tokens >= 2 && o.budget >= 1 && o.max_batch >= 1 && o.quantum >= 1;
}

// Agent i's prompt: distinct text, tokenized, then cut or padded (by repeating the text) to
// 32 + (7 i mod 33) tokens.
icam::Result<std::vector<int32_t>> agent_prompt(const icam::llm::Tokenizer& tokenizer, int i) {
  static const char* kTasks[] = {
      "summarise the build log and list every failing test",
      "read the open issues and propose a fix for the oldest one",
      "search the archive for notes about the quarterly budget",
      "draft a reply to the customer who asked about delivery dates",
      "check the disk usage of the home directories and report the largest",
      "translate the release notes into French and keep the formatting",
      "write a unit test for the parser's handling of empty input",
      "compare the two configuration files and explain the differences",
  };
  const std::string text = "You are agent " + std::to_string(i) + ". Your task: " + kTasks[i % 8] +
                           ". Think step by step and call tools when needed. ";
  std::vector<int32_t> prompt =
      ICAM_TRY(tokenizer.encode(text, tokenizer.add_bos_default(), false));
  const size_t want = 32 + static_cast<size_t>((7 * i) % 33);
  std::vector<int32_t> more = ICAM_TRY(tokenizer.encode(text, false, false));
  while (prompt.size() < want) prompt.insert(prompt.end(), more.begin(), more.end());
  prompt.resize(want);
  return prompt;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

struct RunResult {
  int agents = 0;
  double seconds = 0;
  int generated = 0;
  double tokens_per_s = 0;         // end to end
  double decode_tokens_per_s = 0;  // once every agent has its first token
  double ttft_p50 = 0, ttft_p99 = 0, tpot_p50 = 0, tpot_p99 = 0;
  icam::sched::SchedulerStats stats;
};

icam::Result<RunResult> run(icam::llm::Backend& backend, const icam::llm::Tokenizer& tokenizer,
                            const Options& o, int agents, int tokens) {
  std::unique_ptr<icam::sched::Policy> policy =
      ICAM_TRY(icam::sched::make_policy({o.policy, o.quantum}));
  icam::sched::SchedulerOptions options;
  options.token_budget = o.budget;
  options.max_batch = o.max_batch;
  auto scheduler = ICAM_TRY(
      icam::sched::Scheduler::create(backend, tokenizer, std::move(policy), nullptr, options));

  std::vector<icam::sched::SequenceSpec> specs;
  for (int i = 0; i < agents; ++i) {
    icam::sched::SequenceSpec spec;
    spec.prompt = ICAM_TRY(agent_prompt(tokenizer, i));
    spec.sampling.max_tokens = tokens;
    spec.stop_at_end_of_generation = false;  // every agent generates exactly `tokens`
    specs.push_back(std::move(spec));
  }
  const auto t0 = Clock::now();
  std::vector<icam::sched::SequenceId> ids;
  for (auto& spec : specs) ids.push_back(ICAM_TRY(scheduler->submit(std::move(spec))));
  while (scheduler->has_work()) ICAM_TRY(scheduler->step());
  RunResult r;
  r.agents = agents;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  std::vector<double> ttft, tpot;
  std::vector<std::vector<double>> token_times;  // seconds after submission (all at t0)
  for (auto id : ids) {
    const icam::sched::SequenceInfo info = ICAM_TRY(scheduler->info(id));
    if (info.finish != icam::sched::FinishReason::max_tokens)
      return icam::make_error(
          icam::Errc::internal, "agent ", id, " finished with ",
          icam::sched::finish_reason_name(info.finish.value_or(icam::sched::FinishReason::error)),
          " ", info.error);
    r.generated += info.stats.generated_tokens;
    ttft.push_back(info.stats.time_to_first_token);
    const auto& gaps = info.stats.token_latencies;
    if (gaps.size() > 1) tpot.insert(tpot.end(), gaps.begin() + 1, gaps.end());
    std::vector<double> times;
    double t = 0;
    for (double gap : gaps) times.push_back(t += gap);
    token_times.push_back(std::move(times));
  }
  r.tokens_per_s = r.generated / r.seconds;
  double all_started = 0;
  for (const auto& times : token_times) all_started = std::max(all_started, times.front());
  int later = 0;
  for (const auto& times : token_times)
    later += static_cast<int>(
        std::count_if(times.begin(), times.end(), [&](double t) { return t > all_started; }));
  r.decode_tokens_per_s = r.seconds > all_started ? later / (r.seconds - all_started) : 0;
  r.ttft_p50 = percentile(ttft, 50);
  r.ttft_p99 = percentile(ttft, 99);
  r.tpot_p50 = percentile(tpot, 50);
  r.tpot_p99 = percentile(tpot, 99);
  r.stats = scheduler->stats();
  return r;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "sched_bench: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  auto config = icam::load_config();
  if (!config.ok()) return fail(config.error().message());
  if (o.model.empty()) o.model = config->model;
  if (o.threads == 0) o.threads = config->threads;
  auto model = icam::llm::Model::load(o.model);
  if (!model.ok()) return fail(model.error().message());
  const icam::llm::Model& m = **model;

  // Room for every agent's whole context at once: the benchmark measures batching, not
  // preemption.
  const int max_agents = *std::max_element(o.agents.begin(), o.agents.end());
  const uint64_t kv_per_token = 2ull * m.config().n_layers * m.config().kv_dim() * sizeof(uint16_t);
  const uint64_t positions = static_cast<uint64_t>(max_agents) * (64 + o.tokens + 32);
  icam::llm::KvPoolOptions kv{positions * kv_per_token + (16ull << 20), 16};
  auto backend = icam::llm::CpuBackend::create(m.config(), m.weights(), kv, o.threads);
  if (!backend.ok()) return fail(backend.error().message());

  // Warm-up: fault in the weights and size the scratch buffers.
  if (auto warm = run(**backend, m.tokenizer(), o, std::min(max_agents, 4), 2); !warm.ok())
    return fail(warm.error().message());

  std::vector<RunResult> results;
  for (int n : o.agents) {
    auto r = run(**backend, m.tokenizer(), o, n, o.tokens);
    if (!r.ok()) return fail(r.error().message());
    results.push_back(*r);
  }
  const RunResult* one = nullptr;
  const RunResult* sixteen = nullptr;
  for (const RunResult& r : results) {
    if (r.agents == 1) one = &r;
    if (r.agents == 16) sixteen = &r;
  }
  auto share = [](const RunResult& r, double seconds) {
    return r.stats.step_seconds > 0 ? seconds / r.stats.step_seconds : 0.0;
  };
  // The scheduler's own time: step() less the forward pass and the samplers.
  auto own = [&](const RunResult& r) {
    return share(r, r.stats.overhead_seconds() - r.stats.sample_seconds);
  };

  if (o.json) {
    nlohmann::json out;
    out["model"] = o.model;
    out["threads"] = (*backend)->threads();
    out["policy"] = std::string(icam::sched::policy_kind_name(o.policy));
    out["tokens_per_agent"] = o.tokens;
    for (const RunResult& r : results) {
      nlohmann::json j;
      j["agents"] = r.agents;
      j["seconds"] = r.seconds;
      j["end_to_end_tokens_per_s"] = r.tokens_per_s;
      j["decode_tokens_per_s"] = r.decode_tokens_per_s;
      j["ttft_p50_s"] = r.ttft_p50;
      j["ttft_p99_s"] = r.ttft_p99;
      j["tpot_p50_s"] = r.tpot_p50;
      j["tpot_p99_s"] = r.tpot_p99;
      j["steps"] = r.stats.steps;
      j["mean_batch"] = r.stats.mean_batch_size();
      j["tokens_per_step"] = r.stats.mean_tokens_per_step();
      j["scheduler_share"] = own(r);
      j["sampling_share"] = share(r, r.stats.sample_seconds);
      if (one) {
        j["end_to_end_over_1_agent"] = r.tokens_per_s / one->tokens_per_s;
        j["decode_over_1_agent"] = r.decode_tokens_per_s / one->decode_tokens_per_s;
      }
      out["runs"].push_back(j);
    }
    if (one && sixteen) {
      out["decode_ratio_16_over_1"] = sixteen->decode_tokens_per_s / one->decode_tokens_per_s;
      out["end_to_end_ratio_16_over_1"] = sixteen->tokens_per_s / one->tokens_per_s;
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  std::printf("model     %s\n", o.model.c_str());
  std::printf("threads   %d, policy %s, token budget %d, max batch %d, %d tokens per agent\n",
              (*backend)->threads(), std::string(icam::sched::policy_kind_name(o.policy)).c_str(),
              o.budget, o.max_batch, o.tokens);
  std::printf("%6s %8s %10s %10s %9s %9s %9s %9s %6s %6s %8s %7s %8s\n", "agents", "seconds",
              "e2e tok/s", "decode t/s", "ttft p50", "ttft p99", "tpot p50", "tpot p99", "steps",
              "batch", "tok/step", "sched", "sampling");
  for (const RunResult& r : results) {
    std::printf(
        "%6d %8.2f %10.1f %10.1f %7.0fms %7.0fms %7.1fms %7.1fms %6llu %6.1f %8.1f %6.2f%% "
        "%7.2f%%",
        r.agents, r.seconds, r.tokens_per_s, r.decode_tokens_per_s, r.ttft_p50 * 1e3,
        r.ttft_p99 * 1e3, r.tpot_p50 * 1e3, r.tpot_p99 * 1e3,
        static_cast<unsigned long long>(r.stats.steps), r.stats.mean_batch_size(),
        r.stats.mean_tokens_per_step(), 100 * own(r), 100 * share(r, r.stats.sample_seconds));
    if (one)
      std::printf("   decode = %.2f x, e2e = %.2f x 1 agent",
                  r.decode_tokens_per_s / one->decode_tokens_per_s,
                  r.tokens_per_s / one->tokens_per_s);
    std::printf("\n");
  }
  if (one && sixteen)
    std::printf("16 agents / 1 agent: aggregate decode %.2f x, end to end %.2f x\n",
                sixteen->decode_tokens_per_s / one->decode_tokens_per_s,
                sixteen->tokens_per_s / one->tokens_per_s);
  return 0;
}
