// Prefix sharing: sequences whose prompts begin alike attach the full KV pages another one has
// computed instead of prefilling them again. Outputs are those of the same run without sharing
// and of solo runs (greedy and seeded tokens; log-probabilities within a tolerance), under every
// policy, with chunked prefills, pause/resume, and preemption in a pool too small for everyone.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

// Also keeps each token's log-probabilities, to compare the distributions behind the tokens.
class SampleRecorder : public Recorder {
 public:
  void on_token(SequenceId id, const llm::SampleResult& sample, std::string_view text) override {
    Recorder::on_token(id, sample, text);
    samples[id].push_back(sample);
  }
  std::map<SequenceId, std::vector<llm::SampleResult>> samples;
};

// Largest difference between two runs' log-probabilities of the same tokens (top 5 included).
double logprob_diff(const std::vector<llm::SampleResult>& a,
                    const std::vector<llm::SampleResult>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, double(std::abs(a[i].logprob - b[i].logprob)));
    if (a[i].top_logprobs.size() != b[i].top_logprobs.size()) return INFINITY;
    for (size_t j = 0; j < a[i].top_logprobs.size(); ++j) {
      if (a[i].top_logprobs[j].first != b[i].top_logprobs[j].first) return INFINITY;
      d = std::max(d, double(std::abs(a[i].top_logprobs[j].second - b[i].top_logprobs[j].second)));
    }
  }
  return d;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Agents: one system prompt, then each its own task. Some sample at a temperature (seeded).
std::vector<SequenceSpec> agents(int n, int system_tokens, uint64_t seed) {
  TinyRandom rng(seed);
  const std::vector<int32_t> system = prompt_tokens(rng, system_tokens);
  std::vector<SequenceSpec> out;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> tail;
    for (int j = 0; j < 3 + (i * 5) % 9; ++j) tail.push_back(3 + rng.below(kTinyVocab - 3));
    SequenceSpec s = spec(concat(system, tail), 6 + (i * 3) % 7, 1 + (i * 13) % 40);
    s.stop_at_end_of_generation = false;
    s.sampling.logprobs = 5;
    if (i % 3 == 2) {
      s.sampling.temperature = 0.9f;
      s.sampling.seed = 100 + i;
    }
    out.push_back(std::move(s));
  }
  return out;
}

struct Outcome {
  SampleRecorder recorder;
  std::vector<SequenceId> ids;
  SchedulerStats stats;
  int peak_pages = 0;  // pages in use seen between steps
  std::vector<SequenceInfo> infos;
};

// Submits `specs` (at the steps given by `submit_at`, all at step 0 when empty) and drives the
// scheduler until everyone finished.
void run_agents(const TinyRig& rig, int page_tokens, int pages, PolicyKind policy,
                SchedulerOptions options, const std::vector<SequenceSpec>& specs, Outcome& out,
                const std::vector<int>& submit_at = {}) {
  auto backend = rig.backend(page_tokens, pages);
  ASSERT_TRUE(backend.ok()) << backend.error().message();
  auto s = make_scheduler(**backend, rig, {policy, 6}, &out.recorder, options);
  ASSERT_TRUE(s.ok()) << s.error().message();
  out.ids.assign(specs.size(), 0);
  auto before = [&](uint64_t step) {
    for (size_t i = 0; i < specs.size(); ++i) {
      const uint64_t at = submit_at.empty() ? 0 : static_cast<uint64_t>(submit_at[i]);
      if (at == step && out.ids[i] == 0) {
        auto id = (*s)->submit(specs[i]);
        ASSERT_TRUE(id.ok()) << id.error().message();
        out.ids[i] = *id;
      }
    }
    out.peak_pages = std::max(out.peak_pages, (*s)->stats().kv_pages_used());
  };
  auto more = [&]() {
    for (SequenceId id : out.ids)
      if (id == 0) return true;
    return false;
  };
  ASSERT_TRUE(drive(**s, out.recorder, 5000, before, more).ok());
  ASSERT_FALSE((*s)->has_work());
  out.stats = (*s)->stats();
  for (SequenceId id : out.ids) out.infos.push_back((*s)->info(id).value());
  EXPECT_EQ(out.stats.kv_pages_free, out.stats.kv_pages_total) << "every page came back";
}

struct Case {
  PolicyKind policy;
  std::string arch;
  llm::GgmlType type;
};

class PrefixSharing : public ::testing::TestWithParam<Case> {};

TEST_P(PrefixSharing, AgentsWithACommonSystemPromptGetTheSameOutputsWithAndWithoutSharing) {
  const Case c = GetParam();
  auto rig = make_rig(c.arch, c.type);
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  const std::vector<SequenceSpec> specs = agents(8, 23, 31);  // 5 full pages of 4 in common
  // Staggered arrivals: the later ones find the system prompt computed.
  const std::vector<int> at = {0, 0, 1, 2, 3, 5, 8, 8};
  SchedulerOptions shared;
  shared.token_budget = 24;
  shared.prefill_chunk = 8;
  SchedulerOptions unshared = shared;
  unshared.share_prefixes = false;
  Outcome with, without;
  run_agents(*rig, 4, 256, c.policy, shared, specs, with, at);
  run_agents(*rig, 4, 256, c.policy, unshared, specs, without, at);

  auto solo_backend = rig->backend(16, 64).value();
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& a = with.recorder.logs[with.ids[i]];
    const auto& b = without.recorder.logs[without.ids[i]];
    EXPECT_EQ(a.tokens, b.tokens) << "sequence " << i;
    EXPECT_EQ(a.text, b.text) << "sequence " << i;
    EXPECT_EQ(a.finished, FinishReason::max_tokens) << "sequence " << i;
    EXPECT_LE(
        logprob_diff(with.recorder.samples[with.ids[i]], without.recorder.samples[without.ids[i]]),
        1e-4)
        << "sequence " << i;
    auto want = solo(*solo_backend, rig->tokenizer(), specs[i].prompt, specs[i].sampling, false);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(a.tokens, want->tokens) << "sequence " << i;
  }

  // Sharing saved prefill: every shared token is one not fed. (Tokens fed, not prefill tokens: a
  // prompt's last token fed alone counts as a decode, and when that happens depends on timing.)
  EXPECT_GT(with.stats.prefix_hits, 0u);
  EXPECT_GE(with.stats.prefix_lookups, with.stats.prefix_hits);
  EXPECT_EQ(with.stats.shared_tokens, with.stats.prefix_hits * 4);
  EXPECT_EQ(with.stats.tokens + with.stats.shared_tokens, without.stats.tokens);
  EXPECT_LT(with.stats.kv_pages_peak, without.stats.kv_pages_peak);
  EXPECT_GE(with.stats.kv_pages_peak, with.peak_pages) << "the peak is taken inside the step";
  EXPECT_GE(without.stats.kv_pages_peak, without.peak_pages);
  int shared_tokens = 0;
  for (const SequenceInfo& info : with.infos) shared_tokens += info.stats.shared_tokens;
  EXPECT_EQ(static_cast<uint64_t>(shared_tokens), with.stats.shared_tokens);
  EXPECT_EQ(without.stats.prefix_lookups, 0u);
  EXPECT_EQ(without.stats.shared_tokens, 0u);
  // A sequence arriving once the system prompt is computed shares all its 5 full pages.
  EXPECT_EQ(with.infos[5].stats.shared_tokens, 20);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, PrefixSharing,
    ::testing::Values(Case{PolicyKind::fifo, "llama", llm::GgmlType::F32},
                      Case{PolicyKind::round_robin, "llama", llm::GgmlType::F32},
                      Case{PolicyKind::fair_share, "llama", llm::GgmlType::F32},
                      Case{PolicyKind::fair_share, "gemma3", llm::GgmlType::Q8_0}),
    [](const auto& p) {
      return std::string(policy_kind_name(p.param.policy)) + "_" + p.param.arch;
    });

TEST(PrefixSharingDetail, ASequencePartWayThroughItsPrefillAttachesPagesComputedMeanwhile) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  TinyRandom rng(41);
  const std::vector<int32_t> prompt = prompt_tokens(rng, 42);
  SequenceSpec a = spec(prompt, 4);
  a.stop_at_end_of_generation = false;
  SequenceSpec b = a;  // the same prompt exactly
  SchedulerOptions options;
  options.token_budget = 6;
  options.prefill_chunk = 4;
  Outcome r;
  // fifo: a is served first with 4 tokens a step, b (from step 2) with the 2 left, so a runs
  // ahead. When b arrives a has computed 2 pages; b finds more of a's pages at its later page
  // boundaries.
  run_agents(*rig, 4, 64, PolicyKind::fifo, options, {a, b}, r, {0, 2});
  const SequenceInfo& ib = r.infos[1];
  EXPECT_GT(ib.stats.shared_tokens, 8);
  // Each fed its 42 prompt tokens (shared ones apart) and 3 of its 4 sampled tokens.
  EXPECT_EQ(r.stats.tokens + r.stats.shared_tokens, 2u * 42 + 2 * 3);
  EXPECT_EQ(r.recorder.logs[r.ids[0]].tokens, r.recorder.logs[r.ids[1]].tokens);
  auto solo_backend = rig->backend(16, 64).value();
  auto want = solo(*solo_backend, rig->tokenizer(), prompt, a.sampling, false).value();
  EXPECT_EQ(r.recorder.logs[r.ids[1]].tokens, want.tokens);
}

TEST(PrefixSharingDetail, TheLastTokensPageIsAlwaysComputed) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  auto backend = rig->backend(4, 64).value();
  Recorder recorder;
  auto s = make_scheduler(*backend, *rig, {PolicyKind::fifo}, &recorder).value();
  TinyRandom rng(43);
  // 40 tokens, 10 full pages; the first sequence pauses and keeps them.
  SequenceSpec first = spec(prompt_tokens(rng, 40), 3);
  first.stop_at_end_of_generation = false;
  first.on_stop = OnStop::pause;
  SequenceSpec second = first;
  second.on_stop = OnStop::finish;
  const SequenceId i1 = s->submit(first).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  const SequenceId i2 = s->submit(second).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  // The 40th token must be fed to sample from its logits, so its page (the 10th) is computed.
  EXPECT_EQ(s->info(i2)->stats.shared_tokens, 36);
  EXPECT_EQ(recorder.logs[i1].tokens, recorder.logs[i2].tokens);
  EXPECT_EQ(s->stats().prefix_hits, 9u);
}

TEST(PrefixSharingDetail, PreemptionInATinyPoolKeepsEveryOutput) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  const std::vector<SequenceSpec> specs = agents(10, 13, 57);  // 3 full pages in common
  SchedulerOptions shared;
  shared.token_budget = 32;
  shared.max_batch = 8;
  SchedulerOptions unshared = shared;
  unshared.share_prefixes = false;
  for (PolicyKind policy : {PolicyKind::fifo, PolicyKind::fair_share}) {
    Outcome with, without;
    run_agents(*rig, 4, 16, policy, shared, specs, with);  // 64 positions; each needs up to 34
    run_agents(*rig, 4, 16, policy, unshared, specs, without);
    auto solo_backend = rig->backend(16, 64).value();
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& a = with.recorder.logs[with.ids[i]];
      EXPECT_EQ(a.tokens, without.recorder.logs[without.ids[i]].tokens) << "sequence " << i;
      EXPECT_LE(logprob_diff(with.recorder.samples[with.ids[i]],
                             without.recorder.samples[without.ids[i]]),
                1e-4);
      auto want = solo(*solo_backend, rig->tokenizer(), specs[i].prompt, specs[i].sampling, false);
      EXPECT_EQ(a.tokens, want->tokens) << "sequence " << i;
      EXPECT_EQ(a.finished, FinishReason::max_tokens);
    }
    EXPECT_GT(with.stats.preemptions, 0u) << policy_kind_name(policy);
    EXPECT_GT(with.stats.prefix_hits, 0u) << policy_kind_name(policy);
  }
}

TEST(PrefixSharingDetail, APausedAgentsPagesServeTheNextAgentAndItsResumeStillMatches) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  auto backend = rig->backend(4, 128).value();
  SampleRecorder recorder;
  auto s = make_scheduler(*backend, *rig, {PolicyKind::fair_share}, &recorder).value();
  TinyRandom rng(77);
  const std::vector<int32_t> system = prompt_tokens(rng, 17);
  SequenceSpec a = spec(system, 3);
  a.on_stop = OnStop::pause;
  a.stop_at_end_of_generation = false;
  const SequenceId ia = s->submit(a).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  ASSERT_EQ(s->info(ia)->state, SequenceState::paused);

  // b begins with a's prompt: a holds those pages while paused, so b shares them.
  SequenceSpec b = spec(concat(system, {40, 41, 42}), 5);
  b.stop_at_end_of_generation = false;
  const SequenceId ib = s->submit(b).value();
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  EXPECT_EQ(s->info(ib)->stats.shared_tokens, 16);

  const std::vector<int32_t> result = {50, 51, 52, 53, 54};
  ASSERT_TRUE(s->resume(ia, {result, std::nullopt}).ok());
  ASSERT_TRUE(drive(*s, recorder, 100).ok());
  auto solo_backend = rig->backend(16, 64).value();
  auto want_b = solo(*solo_backend, rig->tokenizer(), b.prompt, b.sampling, false).value();
  EXPECT_EQ(recorder.logs[ib].tokens, want_b.tokens);
  const std::vector<int32_t> first_turn(recorder.logs[ia].tokens.begin(),
                                        recorder.logs[ia].tokens.begin() + 3);
  auto want_a = solo(*solo_backend, rig->tokenizer(), concat(concat(system, first_turn), result),
                     a.sampling, false)
                    .value();
  EXPECT_EQ(
      std::vector<int32_t>(recorder.logs[ia].tokens.begin() + 3, recorder.logs[ia].tokens.end()),
      want_a.tokens);
  ASSERT_TRUE(s->release(ia).ok());
  ASSERT_TRUE(s->release(ib).ok());
  EXPECT_EQ(s->stats().kv_pages_free, s->stats().kv_pages_total);
}

}  // namespace
}  // namespace icam::sched::testing
