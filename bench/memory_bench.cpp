// The memory benchmark, on the real default model, in one run:
//   (a) bringing a 2,048-token context back from the RocksDB page store versus recomputing it:
//       recompute = prefilling the context in chunks of --budget tokens up to the last token's
//       logits; restore = reading its full pages from RocksDB (checksum and model identity
//       checked) into the KV pool, with the operating system's cache of the store's SST files
//       dropped and the store reopened first, then computing the tokens of the last partial page
//       (at least the last token) to the same logits. Medians over --repeats; the restored keys
//       and values are compared with the computed ones byte for byte, and the logits too.
//   (b) 16 agents whose prompts share a 1,024-token system prompt, each with its own task (32 to
//       64 tokens), all submitted at once to the scheduler, generating --tokens tokens greedily;
//       run without prefix sharing (the baseline) and with it. Printed: the peak KV pages in use
//       against one agent's pages plus the other agents' private tails, and the time to first
//       token (median over agents) with and without sharing.
// Ratios are against the baseline measured in the same run.
//
// usage: memory_bench [--model PATH] [--threads N] [--context 2048] [--agents 16]
//                     [--system 1024] [--tokens 8] [--repeats 3] [--budget 256]
//                     [--compression lz4|zstd|none] [--store DIR] [--skip-a] [--skip-b]
//                     [--skip-c] [--json]
//   (c) see part_c below: 32 agents through a KV pool sized for 4, with and without swapping
//       through the page store, and with the store but without prefetching.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"
#include "memory/context_pages.h"
#include "memory/model_identity.h"
#include "memory/page_store.h"
#include "memory/swap.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace {

using Clock = std::chrono::steady_clock;
using icam::Result;
using icam::Status;

struct Options {
  std::string model;
  int threads = 0;
  int context = 2048;
  int agents = 16;
  int system = 1024;
  int tokens = 8;
  int repeats = 3;
  int budget = 256;
  icam::memory::PageCompression compression = icam::memory::PageCompression::lz4;
  std::string store;
  bool skip_a = false;
  bool skip_b = false;
  bool skip_c = false;
  int swap_agents = 32;
  int pool_agents = 4;
  int swap_prompt = 256;
  int turn_tokens = 16;
  int tool_steps = 8;
  bool json = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      o.json = true;
    } else if (a == "--skip-a") {
      o.skip_a = true;
    } else if (a == "--skip-b") {
      o.skip_b = true;
    } else if (a == "--skip-c") {
      o.skip_c = true;
    } else if (a == "--model" && (v = next())) {
      o.model = v;
    } else if (a == "--store" && (v = next())) {
      o.store = v;
    } else if (a == "--threads" && (v = next())) {
      o.threads = std::atoi(v);
    } else if (a == "--context" && (v = next())) {
      o.context = std::atoi(v);
    } else if (a == "--agents" && (v = next())) {
      o.agents = std::atoi(v);
    } else if (a == "--system" && (v = next())) {
      o.system = std::atoi(v);
    } else if (a == "--tokens" && (v = next())) {
      o.tokens = std::atoi(v);
    } else if (a == "--repeats" && (v = next())) {
      o.repeats = std::atoi(v);
    } else if (a == "--budget" && (v = next())) {
      o.budget = std::atoi(v);
    } else if (a == "--compression" && (v = next())) {
      const std::string c = v;
      if (c == "lz4") {
        o.compression = icam::memory::PageCompression::lz4;
      } else if (c == "zstd") {
        o.compression = icam::memory::PageCompression::zstd;
      } else if (c == "none") {
        o.compression = icam::memory::PageCompression::none;
      } else {
        std::fprintf(stderr, "memory_bench: unknown compression '%s'\n", v);
        return false;
      }
    } else {
      std::fprintf(stderr, "memory_bench: bad argument '%s'\n", a.c_str());
      return false;
    }
  }
  return o.context >= 2 && o.agents >= 1 && o.system >= 1 && o.tokens >= 1 && o.repeats >= 1 &&
         o.budget >= 1;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// `n` tokens of ordinary prose: `text` tokenized and repeated, BOS first when the model wants it.
Result<std::vector<int32_t>> text_tokens(const icam::llm::Tokenizer& tok, const std::string& text,
                                         int n, bool bos) {
  std::vector<int32_t> out = ICAM_TRY(tok.encode(text, bos && tok.add_bos_default(), false));
  const std::vector<int32_t> more = ICAM_TRY(tok.encode(text, false, false));
  while (static_cast<int>(out.size()) < n) out.insert(out.end(), more.begin(), more.end());
  out.resize(n);
  return out;
}

const char* kProse =
    "An operating system manages the hardware and software resources of a computer. It schedules "
    "processes, allocates memory, mediates access to devices and files, and enforces the "
    "boundaries between programs so that one misbehaving task cannot bring down the others. ";

const char* kSystem =
    "You are an agent running inside icam. You may call tools by writing a call on its own line; "
    "every call is checked against your capabilities and recorded in the audit log. Be concise, "
    "explain each step, and stop when the task is done or when a tool reports an error you cannot "
    "handle. ";

// Feeds tokens [from, end) into `pages` in chunks of `budget`, logits of the last position only.
Status prefill(icam::llm::Backend& backend, const std::vector<int32_t>& tokens, int from,
               const icam::memory::ContextPages& pages, int budget, std::vector<float>& logits) {
  const int n = static_cast<int>(tokens.size());
  for (int start = from; start < n; start += budget) {
    const int count = std::min(budget, n - start);
    icam::llm::SequenceStep step;
    step.tokens = std::span<const int32_t>(tokens).subspan(start, count);
    step.start_pos = start;
    step.pages = pages.pages();
    step.logits =
        start + count == n ? icam::llm::LogitsWanted::last : icam::llm::LogitsWanted::none;
    ICAM_TRY(backend.forward({&step, 1}, logits));
  }
  return icam::ok_status();
}

// Drops the operating system's cached pages of the store's files, so a restore reads the disk
// (or at least does not find the pages it wrote just before in memory).
void drop_file_cache(const std::string& dir) {
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    const int fd = ::open(f.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

uint64_t dir_bytes(const std::string& dir, const char* ext) {
  uint64_t total = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.is_regular_file() && f.path().extension() == ext) total += f.file_size();
  return total;
}

struct PartA {
  int context = 0;
  int pages = 0;
  uint64_t page_bytes = 0;
  double recompute_s = 0;
  double restore_s = 0;        // RocksDB -> pool, the full pages
  double restore_ready_s = 0;  // plus the last partial page computed, up to the same logits
  int restored_tokens = 0;
  uint64_t sst_bytes = 0;
  double max_logit_diff = 0;
  bool kv_identical = false;
};

Result<PartA> part_a(icam::llm::Backend& backend, const icam::llm::Model& m,
                     const icam::memory::ModelIdentity& identity, const Options& o,
                     const std::string& store_dir) {
  icam::llm::KvPool& pool = backend.kv_pool();
  const std::vector<int32_t> tokens = ICAM_TRY(text_tokens(m.tokenizer(), kProse, o.context, true));
  PartA r;
  r.context = o.context;
  r.page_bytes = pool.page_bytes();

  // Recompute, `repeats` times after a warm-up (the weights' pages, the scratch buffers); the last
  // run's pages are the reference and are saved.
  std::vector<double> recompute;
  std::vector<float> want;
  icam::memory::ContextPages computed(pool);
  {
    const std::vector<int32_t> head(tokens.begin(), tokens.begin() + std::min(o.budget, o.context));
    ICAM_TRY(computed.reserve(static_cast<int64_t>(head.size())));
    ICAM_TRY(prefill(backend, head, 0, computed, o.budget, want));
  }
  for (int i = 0; i < o.repeats; ++i) {
    computed.clear();
    ICAM_TRY(computed.reserve(o.context));
    const auto t0 = Clock::now();
    ICAM_TRY(prefill(backend, tokens, 0, computed, o.budget, want));
    recompute.push_back(seconds_since(t0));
  }
  r.recompute_s = median(recompute);
  {
    auto store = ICAM_TRY(icam::memory::PageStore::open(store_dir, {o.compression}));
    auto saved =
        ICAM_TRY(icam::memory::save_context(*store, pool, tokens, computed.pages(), identity));
    r.pages = saved.pages_written + saved.pages_present;
    ICAM_TRY(store->flush());
  }
  r.sst_bytes = dir_bytes(store_dir, ".sst");

  std::vector<double> restore, ready;
  std::vector<float> got;
  for (int i = 0; i < o.repeats; ++i) {
    drop_file_cache(store_dir);
    auto store = ICAM_TRY(icam::memory::PageStore::open(store_dir, {o.compression}));
    icam::memory::ContextPages restored(pool);
    const auto t0 = Clock::now();
    auto rr = ICAM_TRY(icam::memory::restore_context(*store, pool, tokens, identity, restored, 1));
    const double t_restore = seconds_since(t0);
    if (!rr.stopped.empty())
      return icam::make_error(icam::Errc::internal, "restore stopped: ", rr.stopped);
    ICAM_TRY(restored.reserve(o.context));
    ICAM_TRY(prefill(backend, tokens, rr.tokens, restored, o.budget, got));
    ready.push_back(seconds_since(t0));
    restore.push_back(t_restore);
    r.restored_tokens = rr.tokens;
    if (i == 0) {
      r.kv_identical = true;
      for (int p = 0; p < rr.pages; ++p)
        if (std::memcmp(pool.page_data(computed.pages()[p]), pool.page_data(restored.pages()[p]),
                        pool.page_bytes()) != 0)
          r.kv_identical = false;
      double d = got.size() == want.size() ? 0 : INFINITY;
      for (size_t k = 0; k < got.size() && k < want.size(); ++k)
        d = std::max(d, double(std::fabs(got[k] - want[k])));
      r.max_logit_diff = d;
    }
  }
  r.restore_s = median(restore);
  r.restore_ready_s = median(ready);
  return r;
}

struct AgentsRun {
  bool shared = false;
  double seconds = 0;
  int peak_pages = 0;
  double ttft_median = 0, ttft_max = 0;
  icam::sched::SchedulerStats stats;
};

Result<AgentsRun> run_agents(icam::llm::Backend& backend, const icam::llm::Tokenizer& tok,
                             const std::vector<std::vector<int32_t>>& prompts, int tokens,
                             bool share, const icam::memory::ModelIdentity& identity, int budget) {
  std::unique_ptr<icam::sched::Policy> policy =
      ICAM_TRY(icam::sched::make_policy({icam::sched::PolicyKind::fair_share, 16}));
  icam::sched::SchedulerOptions options;
  options.token_budget = budget;
  options.share_prefixes = share;
  options.model_identity = identity;
  auto scheduler =
      ICAM_TRY(icam::sched::Scheduler::create(backend, tok, std::move(policy), nullptr, options));
  AgentsRun r;
  r.shared = share;
  const auto t0 = Clock::now();
  std::vector<icam::sched::SequenceId> ids;
  for (const auto& p : prompts) {
    icam::sched::SequenceSpec spec;
    spec.prompt = p;
    spec.sampling.max_tokens = tokens;
    spec.stop_at_end_of_generation = false;
    ids.push_back(ICAM_TRY(scheduler->submit(std::move(spec))));
  }
  while (scheduler->has_work()) ICAM_TRY(scheduler->step());
  r.seconds = seconds_since(t0);
  std::vector<double> ttft;
  for (auto id : ids) {
    const icam::sched::SequenceInfo info = ICAM_TRY(scheduler->info(id));
    if (info.finish != icam::sched::FinishReason::max_tokens)
      return icam::make_error(icam::Errc::internal, "agent ", id,
                              " did not finish normally: ", info.error);
    ttft.push_back(info.stats.time_to_first_token);
  }
  r.ttft_median = median(ttft);
  r.ttft_max = *std::max_element(ttft.begin(), ttft.end());
  r.stats = scheduler->stats();
  r.peak_pages = r.stats.kv_pages_peak;
  return r;
}

struct PartB {
  int agents = 0, system = 0;
  int one_agent_pages = 0;  // one agent's whole context
  int private_pages = 0;    // the other agents' pages past the shared system prompt
  AgentsRun without, with;
};

Result<PartB> part_b(icam::llm::Backend& backend, const icam::llm::Model& m,
                     const icam::memory::ModelIdentity& identity, const Options& o) {
  const icam::llm::Tokenizer& tok = m.tokenizer();
  const int pt = backend.kv_pool().page_tokens();
  const std::vector<int32_t> system = ICAM_TRY(text_tokens(tok, kSystem, o.system, true));
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
  PartB r;
  r.agents = o.agents;
  r.system = o.system;
  std::vector<std::vector<int32_t>> prompts;
  auto pages_for = [&](int positions) { return (positions + pt - 1) / pt; };
  for (int i = 0; i < o.agents; ++i) {
    const std::string task = "\nYou are agent " + std::to_string(i) +
                             ". Your task: " + kTasks[i % 8] +
                             ". Think step by step and call tools when needed. ";
    const int tail = 32 + (7 * i) % 33;
    std::vector<int32_t> p = system;
    const std::vector<int32_t> t = ICAM_TRY(text_tokens(tok, task, tail, false));
    p.insert(p.end(), t.begin(), t.end());
    // Pages of this agent's whole context: the prompt and the generated tokens but the last
    // (sampled, never fed).
    const int all = pages_for(static_cast<int>(p.size()) + o.tokens - 1);
    if (i == 0)
      r.one_agent_pages = all;
    else
      r.private_pages += all - o.system / pt;
    prompts.push_back(std::move(p));
  }
  // Warm-up: the scratch buffers and the weights' pages.
  ICAM_TRY(run_agents(backend, tok, {prompts[0]}, 2, false, identity, o.budget));
  r.without = ICAM_TRY(run_agents(backend, tok, prompts, o.tokens, false, identity, o.budget));
  r.with = ICAM_TRY(run_agents(backend, tok, prompts, o.tokens, true, identity, o.budget));
  return r;
}

// (c) Many agents, few pages: a pool sized for --pool-agents agents' contexts and --swap-agents
// agents (each its own prompt), each running three turns of --turn-tokens tokens with a "tool
// call" between turns: the turn pauses (OnStop::pause) and resumes --tool-steps engine steps
// later with a tool result appended, as a process blocked on a syscall does. While an agent
// waits, others take its pages; without a page store its context is recomputed when it resumes,
// with one it is written out when taken and read back when needed. Two steps before a tool call
// completes its sequence's pages are prefetched (Scheduler::prefetch), as the kernel would when a
// syscall is about to complete; how many pages read back came from that staging is reported.
struct SwapRun {
  bool store = false;
  bool prefetch = false;
  double seconds = 0;
  int finished = 0;
  icam::sched::SchedulerStats stats;
};

class PauseLog : public icam::sched::SchedulerEvents {
 public:
  void on_token(icam::sched::SequenceId, const icam::llm::SampleResult&,
                std::string_view) override {}
  void on_pause(icam::sched::SequenceId id, icam::sched::FinishReason) override {
    paused.push_back(id);
  }
  void on_finish(icam::sched::SequenceId, icam::sched::FinishReason) override {}
  std::vector<icam::sched::SequenceId> paused;
};

Result<SwapRun> run_swapping(icam::llm::Backend& backend, const icam::llm::Tokenizer& tok,
                             const std::vector<std::vector<int32_t>>& prompts,
                             const std::vector<int32_t>& tool_result, int turn_tokens,
                             int tool_steps, icam::memory::PageStore* store,
                             const icam::memory::ModelIdentity& identity, int budget,
                             uint64_t prefetch_bytes) {
  std::unique_ptr<icam::sched::Policy> policy =
      ICAM_TRY(icam::sched::make_policy({icam::sched::PolicyKind::fair_share, 16}));
  icam::sched::SchedulerOptions options;
  options.token_budget = budget;
  options.model_identity = identity;
  options.page_store = store;
  options.prefetch_bytes = prefetch_bytes;
  PauseLog log;
  auto scheduler =
      ICAM_TRY(icam::sched::Scheduler::create(backend, tok, std::move(policy), &log, options));
  SwapRun r;
  r.store = store != nullptr;
  r.prefetch = store != nullptr && prefetch_bytes > 0;
  const auto t0 = Clock::now();
  std::map<icam::sched::SequenceId, int> turns;  // turns started
  for (const auto& p : prompts) {
    icam::sched::SequenceSpec spec;
    spec.prompt = p;
    spec.sampling.max_tokens = turn_tokens;
    spec.stop_at_end_of_generation = false;
    spec.on_stop = icam::sched::OnStop::pause;
    turns[ICAM_TRY(scheduler->submit(std::move(spec)))] = 1;
  }
  // (id, the step at which its tool call completes)
  std::vector<std::pair<icam::sched::SequenceId, uint64_t>> waiting;
  uint64_t step = 0;
  while (true) {
    for (auto id : log.paused) {
      if (turns[id] == 3) {
        ICAM_TRY(scheduler->release(id));
        ++r.finished;
      } else {
        waiting.push_back({id, step + tool_steps});
      }
    }
    log.paused.clear();
    for (const auto& [id, completes] : waiting)
      if (completes <= step + 2) ICAM_TRY(scheduler->prefetch(id));
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (it->second > step && scheduler->has_work()) {
        ++it;
        continue;
      }
      icam::sched::Continuation next;
      next.appended = tool_result;
      ICAM_TRY(scheduler->resume(it->first, std::move(next)));
      ++turns[it->first];
      it = waiting.erase(it);
    }
    if (!scheduler->has_work()) break;
    ICAM_TRY(scheduler->step());
    ++step;
  }
  r.seconds = seconds_since(t0);
  r.stats = scheduler->stats();
  return r;
}

struct PartC {
  int agents = 0, pool_agents = 0, pool_pages = 0, context_pages = 0;
  SwapRun recompute, swap_no_prefetch, swap;
};

Result<PartC> part_c(const icam::llm::Model& m, const icam::memory::ModelIdentity& identity,
                     const Options& o, const std::string& store_dir) {
  const icam::llm::Tokenizer& tok = m.tokenizer();
  const int pt = 16;
  PartC r;
  r.agents = o.swap_agents;
  r.pool_agents = o.pool_agents;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < o.swap_agents; ++i) {
    const std::string text = "Agent " + std::to_string(i) + " of " +
                             std::to_string(o.swap_agents) + ". " + kSystem;
    prompts.push_back(ICAM_TRY(text_tokens(tok, text, o.swap_prompt, true)));
  }
  const std::vector<int32_t> tool_result =
      ICAM_TRY(text_tokens(tok, "Tool result: the operation completed without errors.", 16, false));
  // One agent's whole context: its prompt, three turns and two tool results.
  const int context = o.swap_prompt + 3 * o.turn_tokens + 2 * 16;
  r.context_pages = (context + pt - 1) / pt;
  r.pool_pages = o.pool_agents * r.context_pages;
  const uint64_t kv_per_token = 2ull * m.config().n_layers * m.config().kv_dim() * sizeof(uint16_t);
  icam::llm::KvPoolOptions kv{static_cast<uint64_t>(r.pool_pages) * pt * kv_per_token, pt};
  auto backend = ICAM_TRY(icam::llm::CpuBackend::create(m.config(), m.weights(), kv, o.threads));
  r.recompute = ICAM_TRY(run_swapping(*backend, tok, prompts, tool_result, o.turn_tokens,
                                      o.tool_steps, nullptr, identity, o.budget, 0));
  // A store each, so that neither run finds pages the other stored.
  auto plain = ICAM_TRY(icam::memory::PageStore::open(store_dir + "/swap-no-prefetch"));
  r.swap_no_prefetch = ICAM_TRY(run_swapping(*backend, tok, prompts, tool_result, o.turn_tokens,
                                             o.tool_steps, plain.get(), identity, o.budget, 0));
  auto store = ICAM_TRY(icam::memory::PageStore::open(store_dir + "/swap"));
  r.swap = ICAM_TRY(run_swapping(*backend, tok, prompts, tool_result, o.turn_tokens, o.tool_steps,
                                 store.get(), identity, o.budget,
                                 icam::sched::SchedulerOptions{}.prefetch_bytes));
  return r;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "memory_bench: %s\n", message.c_str());
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
  const auto id0 = Clock::now();
  const icam::memory::ModelIdentity identity = icam::memory::model_identity(m);
  const double identity_s = seconds_since(id0);

  const int context = m.config().context_length;
  if (o.context >= context || o.system + 64 + o.tokens >= context)
    return fail("the model's context is too short for these sizes");
  const uint64_t kv_per_token = 2ull * m.config().n_layers * m.config().kv_dim() * sizeof(uint16_t);
  const uint64_t positions = std::max<uint64_t>(
      3ull * o.context, static_cast<uint64_t>(o.agents) * (o.system + 64 + o.tokens + 32));
  icam::llm::KvPoolOptions kv{positions * kv_per_token + (16ull << 20), 16};
  auto backend = icam::llm::CpuBackend::create(m.config(), m.weights(), kv, o.threads);
  if (!backend.ok()) return fail(backend.error().message());

  std::string store_dir = o.store;
  bool remove_store = false;
  if (store_dir.empty()) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "icam_memory_bench_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return fail("cannot create a temporary directory");
    store_dir = pattern;
    remove_store = true;
  }

  PartA a;
  PartB b;
  PartC c;
  if (!o.skip_a) {
    auto r = part_a(**backend, m, identity, o, store_dir);
    if (!r.ok()) return fail(r.error().message());
    a = *r;
  }
  if (!o.skip_b) {
    auto r = part_b(**backend, m, identity, o);
    if (!r.ok()) return fail(r.error().message());
    b = *r;
  }
  if (!o.skip_c) {
    auto r = part_c(m, identity, o, store_dir);
    if (!r.ok()) return fail(r.error().message());
    c = *r;
  }
  if (remove_store) std::filesystem::remove_all(store_dir);

  const int baseline_pages = b.one_agent_pages + b.private_pages;
  if (o.json) {
    nlohmann::json out;
    out["model"] = o.model;
    out["model_identity"] = identity.hex();
    out["identity_seconds"] = identity_s;
    out["threads"] = (*backend)->threads();
    out["page_tokens"] = (*backend)->kv_pool().page_tokens();
    if (!o.skip_a) {
      out["a"] = {{"context", a.context},
                  {"pages", a.pages},
                  {"page_bytes", a.page_bytes},
                  {"compression", std::string(icam::memory::page_compression_name(o.compression))},
                  {"sst_bytes", a.sst_bytes},
                  {"recompute_s", a.recompute_s},
                  {"restore_s", a.restore_s},
                  {"restore_ready_s", a.restore_ready_s},
                  {"restored_tokens", a.restored_tokens},
                  {"recompute_over_restore", a.recompute_s / a.restore_s},
                  {"recompute_over_restore_ready", a.recompute_s / a.restore_ready_s},
                  {"kv_identical", a.kv_identical},
                  {"max_logit_diff", a.max_logit_diff}};
    }
    if (!o.skip_b) {
      auto run_json = [](const AgentsRun& r) {
        return nlohmann::json{{"seconds", r.seconds},
                              {"peak_pages", r.peak_pages},
                              {"ttft_median_s", r.ttft_median},
                              {"ttft_max_s", r.ttft_max},
                              {"prefill_tokens", r.stats.prefill_tokens},
                              {"tokens_fed", r.stats.tokens},
                              {"prefix_lookups", r.stats.prefix_lookups},
                              {"prefix_hits", r.stats.prefix_hits},
                              {"shared_tokens", r.stats.shared_tokens}};
      };
      out["b"] = {{"agents", b.agents},
                  {"system_tokens", b.system},
                  {"one_agent_plus_private_tails_pages", baseline_pages},
                  {"without_sharing", run_json(b.without)},
                  {"with_sharing", run_json(b.with)},
                  {"pages_with_over_baseline", double(b.with.peak_pages) / baseline_pages},
                  {"pages_without_over_with", double(b.without.peak_pages) / b.with.peak_pages},
                  {"ttft_without_over_with", b.without.ttft_median / b.with.ttft_median}};
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  std::printf("model     %s\n", o.model.c_str());
  std::printf("identity  %s (%.1f ms)\n", identity.hex().c_str(), identity_s * 1e3);
  std::printf("threads   %d, KV pages of %d tokens (%llu bytes), prefill chunks of %d tokens\n",
              (*backend)->threads(), (*backend)->kv_pool().page_tokens(),
              static_cast<unsigned long long>((*backend)->kv_pool().page_bytes()), o.budget);
  if (!o.skip_a) {
    std::printf(
        "\n(a) a %d-token context, %d full pages, RocksDB page store (%s): %.1f MiB of KV "
        "in %.1f MiB of SST files\n",
        a.context, a.pages, std::string(icam::memory::page_compression_name(o.compression)).c_str(),
        a.pages * double(a.page_bytes) / (1 << 20), a.sst_bytes / double(1 << 20));
    std::printf("    recompute (prefill to the last logits)      %8.1f ms  (median of %d)\n",
                a.recompute_s * 1e3, o.repeats);
    std::printf(
        "    restore %d tokens from RocksDB            %8.1f ms  -> recompute / restore "
        "= %.1f x\n",
        a.restored_tokens, a.restore_s * 1e3, a.recompute_s / a.restore_s);
    std::printf(
        "    restore + compute the rest to the logits    %8.1f ms  -> recompute / "
        "(restore + rest) = %.1f x\n",
        a.restore_ready_s * 1e3, a.recompute_s / a.restore_ready_s);
    std::printf("    restored KV identical to computed: %s; largest logit difference %.3g\n",
                a.kv_identical ? "yes" : "NO", a.max_logit_diff);
  }
  if (!o.skip_b) {
    std::printf(
        "\n(b) %d agents, a %d-token system prompt each plus 32..64 tokens of task, %d "
        "tokens generated each\n",
        b.agents, b.system, o.tokens);
    std::printf("    %-16s %8s %10s %10s %10s %10s %12s\n", "", "seconds", "peak pages", "ttft p50",
                "ttft max", "prefilled", "shared tok");
    for (const AgentsRun* r : {&b.without, &b.with})
      std::printf("    %-16s %8.2f %10d %8.0fms %8.0fms %10llu %12llu\n",
                  r->shared ? "with sharing" : "without sharing", r->seconds, r->peak_pages,
                  r->ttft_median * 1e3, r->ttft_max * 1e3,
                  static_cast<unsigned long long>(r->stats.tokens - r->stats.decode_tokens),
                  static_cast<unsigned long long>(r->stats.shared_tokens));
    std::printf("    prefix index: %llu lookups, %llu hits (%.0f%%)\n",
                static_cast<unsigned long long>(b.with.stats.prefix_lookups),
                static_cast<unsigned long long>(b.with.stats.prefix_hits),
                100 * b.with.stats.prefix_hit_rate());
    std::printf(
        "    one agent + the others' private tails = %d pages; with sharing %d pages = "
        "%.2f x that (without: %.2f x)\n",
        baseline_pages, b.with.peak_pages, double(b.with.peak_pages) / baseline_pages,
        double(b.without.peak_pages) / baseline_pages);
    std::printf("    TTFT median without / with sharing = %.1f x\n",
                b.without.ttft_median / b.with.ttft_median);
  }
  if (!o.skip_c) {
    const double page_mib = c.swap.stats.kv_page_bytes / double(1 << 20);
    std::printf(
        "\n(c) %d agents, a KV pool of %d pages (%d agents' contexts of %d pages), three turns "
        "each with a tool call of %d steps between\n",
        c.agents, c.pool_pages, c.pool_agents, c.context_pages, o.tool_steps);
    for (const SwapRun* r : {&c.recompute, &c.swap_no_prefetch, &c.swap})
      std::printf("    %-18s %d of %d finished in %.2f s; %llu preemptions, %llu tokens "
                  "recomputed; swap out %llu pages (%.1f MiB, %.2f s), in %llu pages (%.1f MiB, "
                  "%.2f s; %llu of them prefetched), %llu errors\n",
                  !r->store ? "no page store" : r->prefetch ? "store + prefetch" : "store, no prefetch",
                  r->finished, c.agents, r->seconds,
                  static_cast<unsigned long long>(r->stats.preemptions),
                  static_cast<unsigned long long>(r->stats.recomputed_tokens),
                  static_cast<unsigned long long>(r->stats.swap_out_pages),
                  r->stats.swap_out_pages * page_mib, r->stats.swap_out_seconds,
                  static_cast<unsigned long long>(r->stats.swap_in_pages),
                  r->stats.swap_in_pages * page_mib, r->stats.swap_in_seconds,
                  static_cast<unsigned long long>(r->stats.swap_in_prefetched),
                  static_cast<unsigned long long>(r->stats.swap_errors));
    const icam::sched::SchedulerStats& ps = c.swap.stats;
    std::printf("    prefetch           %llu pages asked for ahead of need, %llu staged, %llu unused, "
                "%llu not asked (staging full)\n",
                static_cast<unsigned long long>(ps.prefetch_requested),
                static_cast<unsigned long long>(ps.prefetch_staged),
                static_cast<unsigned long long>(ps.prefetch_unused),
                static_cast<unsigned long long>(ps.prefetch_dropped));
    std::printf("    time without / with the page store = %.2f x (%.2f x without prefetching)\n",
                c.recompute.seconds / c.swap.seconds,
                c.recompute.seconds / c.swap_no_prefetch.seconds);
  }
  return 0;
}
