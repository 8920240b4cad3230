// Continuous batching must not change what any sequence generates: with staggered arrivals, mixed
// prompt lengths, chunked prefills, every policy and a batch that is often full, each sequence
// gets exactly the tokens, text and finish reason it gets alone through llm::generate().
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

struct BatchCase {
  const char* arch;
  llm::GgmlType type;
  PolicyKind policy;
  int sequences;
};

std::string case_name(const ::testing::TestParamInfo<BatchCase>& p) {
  return std::string(p.param.arch) + "_" + std::string(policy_kind_name(p.param.policy)) + "_" +
         std::to_string(p.param.sequences);
}

// Sequence i of a batch case: its spec and the step it arrives at.
struct Arrival {
  SequenceSpec spec;
  uint64_t step;
};

std::vector<Arrival> arrivals(int n) {
  TinyRandom rng(1000 + n);
  std::vector<Arrival> out;
  for (int i = 0; i < n; ++i) {
    Arrival a;
    a.spec = spec(prompt_tokens(rng, 2 + (i * 7) % 40), 1 + (i * 5) % 20, 1 + (i * 13) % 50);
    if (i % 3 == 2) {
      // Seeded sampling: a sequence's draws must not depend on who shares its steps.
      a.spec.sampling.temperature = 0.9f;
      a.spec.sampling.top_k = 40;
      a.spec.sampling.seed = 77 + i;
    }
    if (i % 4 == 3) a.spec.sampling.stop_strings = {"a"};
    if (i % 5 == 4) a.spec.stop_at_end_of_generation = false;
    a.step = static_cast<uint64_t>((i * 3) % 10);
    out.push_back(std::move(a));
  }
  return out;
}

class ContinuousBatching : public ::testing::TestWithParam<BatchCase> {};

TEST_P(ContinuousBatching, EverySequenceGetsItsSoloOutput) {
  const BatchCase& c = GetParam();
  auto rig = make_rig(c.arch, c.type);
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  auto solo_backend = rig->backend(16, 64);
  // Three threads: the step's sequences are sampled in parallel (Backend::parallel_for_each),
  // seeded ones among them, and must still draw exactly what they draw alone.
  auto backend = rig->backend(8, 256, 3);
  ASSERT_TRUE(solo_backend.ok() && backend.ok());

  Recorder recorder;
  SchedulerOptions options;
  options.token_budget = 24;  // prompts up to 41 tokens: chunked prefills
  options.max_batch = 5;      // often full with 12 sequences
  auto scheduler = make_scheduler(**backend, *rig, {c.policy, 8}, &recorder, options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.error().message();
  Scheduler& s = **scheduler;

  const std::vector<Arrival> plan = arrivals(c.sequences);
  std::map<SequenceId, size_t> index_of;
  size_t submitted = 0;
  auto submit_due = [&](uint64_t step) {
    for (size_t i = 0; i < plan.size(); ++i) {
      if (plan[i].step != step) continue;
      auto id = s.submit(plan[i].spec);
      ASSERT_TRUE(id.ok()) << id.error().message();
      index_of[*id] = i;
      ++submitted;
    }
  };
  Status driven = drive(s, recorder, 5000, submit_due, [&] { return submitted < plan.size(); });
  ASSERT_TRUE(driven.ok()) << driven.error().message();
  ASSERT_EQ(submitted, plan.size());
  EXPECT_FALSE(s.has_work());

  for (const auto& [id, i] : index_of) {
    const SequenceSpec& sp = plan[i].spec;
    auto want = solo(**solo_backend, rig->tokenizer(), sp.prompt, sp.sampling,
                     sp.stop_at_end_of_generation);
    ASSERT_TRUE(want.ok()) << want.error().message();
    const SequenceLog& got = recorder.logs[id];
    EXPECT_EQ(got.tokens, want->tokens) << "sequence " << i;
    EXPECT_EQ(got.text, want->text) << "sequence " << i;
    ASSERT_TRUE(got.finished.has_value()) << "sequence " << i;
    EXPECT_EQ(finish_reason_name(*got.finished), want->finish) << "sequence " << i;

    auto info = s.info(id);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->state, SequenceState::finished);
    EXPECT_EQ(info->kv_pages, 0);
    EXPECT_EQ(info->stats.generated_tokens, static_cast<int>(want->tokens.size()));
    EXPECT_EQ(info->stats.prompt_tokens, static_cast<int>(sp.prompt.size()));
    EXPECT_EQ(info->stats.token_latencies.size(), want->tokens.size());
    auto context = s.context(id);
    ASSERT_TRUE(context.ok());
    std::vector<int32_t> expected = sp.prompt;
    expected.insert(expected.end(), want->tokens.begin(), want->tokens.end());
    EXPECT_EQ(*context, expected);
  }

  const SchedulerStats stats = s.stats();
  EXPECT_EQ(stats.kv_pages_free, stats.kv_pages_total) << "finished sequences keep no pages";
  EXPECT_LE(stats.max_batch_seen, options.max_batch);
  EXPECT_EQ(stats.tokens, stats.prefill_tokens + stats.decode_tokens);
  EXPECT_EQ(stats.preemptions, 0u) << "the pool is large enough for everyone";
  EXPECT_EQ(stats.finished, plan.size());
  if (c.sequences >= 3) {
    EXPECT_GE(stats.max_batch_seen, 2) << "sequences were batched";
  }
  for (SequenceId id : s.sequences()) ASSERT_TRUE(s.release(id).ok());
  EXPECT_TRUE(s.sequences().empty());
}

std::vector<BatchCase> batch_cases() {
  std::vector<BatchCase> cases;
  for (PolicyKind policy : {PolicyKind::fifo, PolicyKind::round_robin, PolicyKind::fair_share})
    for (int n : {1, 2, 5, 8, 12}) cases.push_back({"llama", llm::GgmlType::F32, policy, n});
  // Sliding-window attention and quantized activations.
  cases.push_back({"gemma3", llm::GgmlType::Q8_0, PolicyKind::fair_share, 12});
  cases.push_back({"qwen3", llm::GgmlType::Q8_0, PolicyKind::round_robin, 7});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Policies, ContinuousBatching, ::testing::ValuesIn(batch_cases()),
                         case_name);

// A sequence that arrives while another decodes is prefilled in the same forward call as that
// decode, and both still produce their solo outputs.
TEST(MixedSteps, PrefillChunksAndDecodesShareOneForwardCall) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok()) << rig.error().message();
  auto solo_backend = rig->backend(16, 64);
  auto backend = rig->backend(16, 64);
  ASSERT_TRUE(solo_backend.ok() && backend.ok());
  Recorder recorder;
  SchedulerOptions options;
  options.token_budget = 16;
  auto scheduler = make_scheduler(**backend, *rig, {PolicyKind::fair_share}, &recorder, options);
  ASSERT_TRUE(scheduler.ok());
  Scheduler& s = **scheduler;

  TinyRandom rng(3);
  SequenceSpec a = spec(prompt_tokens(rng, 5), 20);
  a.stop_at_end_of_generation = false;
  SequenceSpec b = spec(prompt_tokens(rng, 40), 6);
  b.stop_at_end_of_generation = false;
  const SequenceId ia = s.submit(a).value();
  ASSERT_TRUE(s.step().ok());
  EXPECT_EQ(s.info(ia)->state, SequenceState::decoding);
  const SequenceId ib = s.submit(b).value();
  EXPECT_EQ(s.info(ib)->state, SequenceState::waiting);

  // b's 40 tokens take three steps of a 16-token budget, each beside a's decode.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.step().ok());
    const StepPlan& plan = s.last_step();
    ASSERT_EQ(plan.members.size(), 2u) << "step " << i;
    EXPECT_TRUE(plan.mixed());
    EXPECT_EQ(plan.members[0].id == ia ? plan.members[0].kind : plan.members[1].kind,
              StepKind::decode);
    const StepMember& pb = plan.members[0].id == ib ? plan.members[0] : plan.members[1];
    EXPECT_EQ(pb.kind, StepKind::prefill);
    EXPECT_EQ(pb.count, i < 2 ? 15 : 10) << "the budget less one token set aside for the decode";
    EXPECT_EQ(pb.samples, i == 2);
    EXPECT_EQ(plan.tokens, pb.count + 1);
    if (i < 2) {
      EXPECT_EQ(s.info(ib)->state, SequenceState::prefilling);
    }
  }
  EXPECT_EQ(s.info(ib)->state, SequenceState::decoding);
  ASSERT_TRUE(drive(s, recorder, 100).ok());
  EXPECT_GE(s.stats().mixed_steps, 3u);

  for (auto [id, sp] : {std::pair{ia, &a}, std::pair{ib, &b}}) {
    auto want = solo(**solo_backend, rig->tokenizer(), sp->prompt, sp->sampling, false);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(recorder.logs[id].tokens, want->tokens);
  }
}

TEST(Stats, CountStepsTokensAndPages) {
  auto rig = make_rig();
  ASSERT_TRUE(rig.ok());
  auto backend = rig->backend(4, 64);
  ASSERT_TRUE(backend.ok());
  Recorder recorder;
  auto scheduler = make_scheduler(**backend, *rig, {PolicyKind::fifo}, &recorder);
  ASSERT_TRUE(scheduler.ok());
  Scheduler& s = **scheduler;
  EXPECT_FALSE(s.has_work());
  ASSERT_TRUE(s.step().ok()) << "an idle step is not an error";
  EXPECT_EQ(s.stats().idle_steps, 1u);
  EXPECT_EQ(s.stats().steps, 0u);

  TinyRandom rng(9);
  SequenceSpec a = spec(prompt_tokens(rng, 10), 5);
  a.stop_at_end_of_generation = false;
  const SequenceId id = s.submit(a).value();
  ASSERT_TRUE(s.step().ok());
  SchedulerStats st = s.stats();
  EXPECT_EQ(st.steps, 1u);
  EXPECT_EQ(st.prefill_tokens, 10u);
  EXPECT_EQ(st.kv_pages_used(), 3) << "pages for the 10-token context, 4 tokens a page";
  EXPECT_EQ(s.info(id)->kv_pages, 3);
  ASSERT_TRUE(drive(s, recorder, 100).ok());
  st = s.stats();
  EXPECT_EQ(st.steps, 5u) << "one prefill step (first token), then four decodes";
  EXPECT_EQ(st.decode_tokens, 4u);
  EXPECT_EQ(st.sampled_tokens, 5u);
  EXPECT_EQ(st.tokens, 14u);
  EXPECT_DOUBLE_EQ(st.mean_batch_size(), 1.0);
  EXPECT_EQ(st.batch_size_histogram.at(1), 5u);
  EXPECT_EQ(st.kv_pages_used(), 0);
  EXPECT_GE(st.step_seconds, st.forward_seconds);
  EXPECT_GE(st.overhead_seconds() + 1e-9, st.sample_seconds) << "sampling is part of the overhead";
  const SequenceInfo info = s.info(id).value();
  EXPECT_GE(info.stats.time_to_first_token, 0.0);
  EXPECT_EQ(info.stats.token_latencies.size(), 5u);
  EXPECT_DOUBLE_EQ(info.stats.token_latencies[0], info.stats.time_to_first_token);
}

}  // namespace
}  // namespace icam::sched::testing
