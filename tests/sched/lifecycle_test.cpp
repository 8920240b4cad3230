// A sequence's life outside plain generation: pausing at a stop and resuming with appended tokens
// (the tool-call hand-off), blocking, cancelling, releasing; invalid submissions and calls; events
// that call back into the scheduler; and an engine that refuses a step.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/sched/sched_harness.h"

namespace icam::sched::testing {
namespace {

struct Fixture {
  TinyRig rig;
  std::unique_ptr<llm::CpuBackend> solo_backend;
  std::unique_ptr<llm::CpuBackend> backend;
  Recorder recorder;
  std::unique_ptr<Scheduler> s;
};

// A scheduler over a pool of `pages` pages of 4 tokens.
std::unique_ptr<Fixture> make_fixture(int pages = 256, PolicyKind policy = PolicyKind::fair_share) {
  auto f = std::make_unique<Fixture>();
  f->rig = make_rig().value();
  f->solo_backend = f->rig.backend(16, 64).value();
  f->backend = f->rig.backend(4, pages).value();
  f->s = make_scheduler(*f->backend, f->rig, {policy}, &f->recorder).value();
  return f;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<int32_t> first(const std::vector<int32_t>& v, size_t n) {
  return std::vector<int32_t>(v.begin(), v.begin() + std::min(n, v.size()));
}

// The tool-call hand-off: a sequence stops on a token that ends its "call", pauses with its KV
// pages, and resumes with a "result" appended; what it then generates is what a solo run over the
// whole context (prompt, first turn, result) generates. `evict` makes another sequence take the
// paused one's pages meanwhile, so the resume recomputes them.
void pause_and_resume(bool evict) {
  auto f = make_fixture(evict ? 12 : 256);
  Scheduler& s = *f->s;
  TinyRandom rng(21);
  const std::vector<int32_t> prompt = prompt_tokens(rng, 9);

  llm::SamplingParams free_run;
  free_run.max_tokens = 20;
  auto reference = solo(*f->solo_backend, f->rig.tokenizer(), prompt, free_run, false).value();
  // Stop at the first occurrence of the sixth generated token.
  const int32_t stop = reference.tokens[5];
  const size_t k =
      std::find(reference.tokens.begin(), reference.tokens.end(), stop) - reference.tokens.begin();
  SequenceSpec a = spec(prompt, 20);
  a.stop_at_end_of_generation = false;
  a.on_stop = OnStop::pause;
  a.sampling.stop_tokens = {stop};
  auto first_turn = solo(*f->solo_backend, f->rig.tokenizer(), prompt, a.sampling, false).value();
  ASSERT_EQ(first_turn.tokens, first(reference.tokens, k + 1));

  const SequenceId id = s.submit(a).value();
  // A neighbour shares the steps.
  SequenceSpec other = spec(prompt_tokens(rng, 5), 4);
  const SequenceId neighbour = s.submit(other).value();
  ASSERT_TRUE(drive(s, f->recorder, 200).ok());

  SequenceLog& log = f->recorder.logs[id];
  EXPECT_EQ(log.tokens, first_turn.tokens);
  EXPECT_EQ(log.text, first_turn.text) << "the stop token's text is not shown";
  EXPECT_EQ(log.pauses, std::vector<FinishReason>{FinishReason::stop_token});
  EXPECT_FALSE(log.finished.has_value());
  SequenceInfo info = s.info(id).value();
  EXPECT_EQ(info.state, SequenceState::paused);
  EXPECT_EQ(info.finish, FinishReason::stop_token);
  EXPECT_GT(info.kv_pages, 0) << "a paused sequence keeps its pages";
  EXPECT_TRUE(f->recorder.logs[neighbour].finished.has_value());

  if (evict) {
    // 12 pages of 4: the paused sequence holds 4; this one needs 10 at once.
    SequenceSpec hog = spec(prompt_tokens(rng, 38), 2);
    const SequenceId h = s.submit(hog).value();
    ASSERT_TRUE(drive(s, f->recorder, 200).ok());
    EXPECT_TRUE(f->recorder.logs[h].finished.has_value());
    info = s.info(id).value();
    EXPECT_EQ(info.state, SequenceState::paused);
    EXPECT_EQ(info.kv_pages, 0) << "the paused sequence's pages were taken";
    EXPECT_EQ(info.stats.preemptions, 1);
  }

  // The "tool result", with fresh sampling params for the next turn.
  const std::vector<int32_t> result = prompt_tokens(rng, 7);
  llm::SamplingParams next;
  next.max_tokens = 12;
  ASSERT_TRUE(s.resume(id, {result, next}).ok());
  EXPECT_EQ(s.info(id)->state, evict ? SequenceState::preempted : SequenceState::prefilling);
  ASSERT_TRUE(drive(s, f->recorder, 200).ok());

  const std::vector<int32_t> context = concat(concat(prompt, first_turn.tokens), result);
  auto second_turn = solo(*f->solo_backend, f->rig.tokenizer(), context, next, false).value();
  EXPECT_EQ(std::vector<int32_t>(log.tokens.begin() + first_turn.tokens.size(), log.tokens.end()),
            second_turn.tokens);
  EXPECT_EQ(log.text, first_turn.text + second_turn.text);
  // OnStop::pause covers max_tokens too: the second turn ends paused as well.
  EXPECT_EQ(log.pauses,
            (std::vector<FinishReason>{FinishReason::stop_token, FinishReason::max_tokens}));
  EXPECT_FALSE(log.finished.has_value());
  EXPECT_EQ(s.context(id).value(), concat(context, second_turn.tokens));
  info = s.info(id).value();
  EXPECT_EQ(info.stats.turns, 2);
  EXPECT_EQ(info.stats.appended_tokens, 7);
  EXPECT_EQ(info.stats.generated_tokens, static_cast<int>(log.tokens.size()));
  if (evict) {
    EXPECT_EQ(info.stats.recomputed_tokens, static_cast<int>(prompt.size() + k));
  }
  ASSERT_TRUE(s.release(id).ok());
  EXPECT_EQ(s.stats().kv_pages_free, s.stats().kv_pages_total);
}

TEST(PauseResume, AppendedTokensContinueAsASoloRunOverTheWholeContext) {
  pause_and_resume(false);
}

TEST(PauseResume, APausedSequenceThatLostItsPagesRecomputesThem) {
  pause_and_resume(true);
}

TEST(PauseResume, EndOfTurnAndMaxTokensPauseTooAndTheSamplerCanBeKept) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(22);
  SequenceSpec a = spec(prompt_tokens(rng, 6), 4);
  a.on_stop = OnStop::pause;
  a.stop_at_end_of_generation = false;
  const SequenceId id = s.submit(a).value();
  ASSERT_TRUE(drive(s, f->recorder, 50).ok());
  EXPECT_EQ(f->recorder.logs[id].pauses, std::vector<FinishReason>{FinishReason::max_tokens});
  // No appended tokens, same params: simply four more tokens, as one run of eight would give.
  ASSERT_TRUE(s.resume(id, {}).ok());
  EXPECT_EQ(s.info(id)->state, SequenceState::decoding);
  ASSERT_TRUE(drive(s, f->recorder, 50).ok());
  llm::SamplingParams eight;
  eight.max_tokens = 8;
  auto want = solo(*f->solo_backend, f->rig.tokenizer(), a.prompt, eight, false).value();
  EXPECT_EQ(f->recorder.logs[id].tokens, want.tokens);
  EXPECT_EQ(s.info(id)->state, SequenceState::paused);
  ASSERT_TRUE(s.release(id).ok());
  EXPECT_EQ(s.stats().kv_pages_free, s.stats().kv_pages_total);
}

TEST(PauseResume, ResumeErrorsLeaveTheSequencePaused) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(23);
  SequenceSpec a = spec(prompt_tokens(rng, 6), 2);
  a.on_stop = OnStop::pause;
  a.stop_at_end_of_generation = false;
  const SequenceId id = s.submit(a).value();

  Status early = s.resume(id, {});
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), Errc::invalid_argument);
  EXPECT_NE(early.error().message().find("waiting"), std::string::npos) << early.error().message();
  ASSERT_TRUE(drive(s, f->recorder, 50).ok());
  ASSERT_EQ(s.info(id)->state, SequenceState::paused);

  Status bad_token = s.resume(id, {{5, kTinyVocab}, std::nullopt});
  ASSERT_FALSE(bad_token.ok());
  EXPECT_NE(bad_token.error().message().find("outside the vocabulary"), std::string::npos);
  Status too_long = s.resume(id, {std::vector<int32_t>(300, 5), std::nullopt});
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message().find("context"), std::string::npos);
  llm::SamplingParams bad;
  bad.top_p = 0;
  Status bad_sampling = s.resume(id, {{5}, bad});
  ASSERT_FALSE(bad_sampling.ok());
  EXPECT_NE(bad_sampling.error().message().find("top_p"), std::string::npos);
  Status unknown = s.resume(999, {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Errc::not_found);

  const SequenceInfo info = s.info(id).value();
  EXPECT_EQ(info.state, SequenceState::paused);
  EXPECT_EQ(info.context_tokens, 8);
  EXPECT_EQ(info.stats.turns, 1);
  EXPECT_TRUE(s.resume(id, {{5, 6}, std::nullopt}).ok());
}

TEST(Block, BlockedSequencesWaitAndContinueUnchanged) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(24);
  SequenceSpec a = spec(prompt_tokens(rng, 7), 12);
  a.stop_at_end_of_generation = false;
  SequenceSpec b = spec(prompt_tokens(rng, 5), 12);
  b.stop_at_end_of_generation = false;
  const SequenceId ia = s.submit(a).value();
  const SequenceId ib = s.submit(b).value();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.step().ok());
  ASSERT_TRUE(s.block(ia).ok());
  EXPECT_EQ(s.info(ia)->state, SequenceState::blocked);
  const size_t before = f->recorder.logs[ia].tokens.size();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(s.step().ok());
    for (const StepMember& m : s.last_step().members) EXPECT_NE(m.id, ia);
  }
  EXPECT_EQ(f->recorder.logs[ia].tokens.size(), before);
  EXPECT_FALSE(s.block(ia).ok()) << "blocked already";
  EXPECT_FALSE(s.unblock(ib).ok()) << "not blocked";
  ASSERT_TRUE(s.unblock(ia).ok());
  ASSERT_TRUE(drive(s, f->recorder, 100).ok());
  for (auto [id, sp] : {std::pair{ia, &a}, std::pair{ib, &b}}) {
    auto want = solo(*f->solo_backend, f->rig.tokenizer(), sp->prompt, sp->sampling, false).value();
    EXPECT_EQ(f->recorder.logs[id].tokens, want.tokens);
  }
  EXPECT_FALSE(s.block(ia).ok()) << "finished";
}

TEST(Cancel, FreesPagesAndReportsCancelled) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(25);
  std::vector<SequenceId> ids;
  std::vector<SequenceSpec> specs;
  for (int i = 0; i < 3; ++i) {
    specs.push_back(spec(prompt_tokens(rng, 6 + 4 * i), 10));
    specs.back().stop_at_end_of_generation = false;
    ids.push_back(s.submit(specs.back()).value());
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(s.step().ok());
  const int held = s.info(ids[1])->kv_pages;
  ASSERT_GT(held, 0);
  const int free_before = s.stats().kv_pages_free;
  ASSERT_TRUE(s.cancel(ids[1]).ok());
  EXPECT_EQ(f->recorder.logs[ids[1]].finished, FinishReason::cancelled) << "delivered at once";
  EXPECT_EQ(s.stats().kv_pages_free, free_before + held);
  SequenceInfo info = s.info(ids[1]).value();
  EXPECT_EQ(info.state, SequenceState::finished);
  EXPECT_EQ(info.finish, FinishReason::cancelled);
  EXPECT_EQ(info.kv_pages, 0);
  Status again = s.cancel(ids[1]);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("finished"), std::string::npos);

  // One that never ran cancels as well.
  const SequenceId waiting = s.submit(specs[0]).value();
  ASSERT_TRUE(s.cancel(waiting).ok());
  EXPECT_EQ(f->recorder.logs[waiting].finished, FinishReason::cancelled);
  EXPECT_TRUE(f->recorder.logs[waiting].tokens.empty());

  ASSERT_TRUE(drive(s, f->recorder, 100).ok());
  for (size_t i : {0u, 2u}) {
    auto want =
        solo(*f->solo_backend, f->rig.tokenizer(), specs[i].prompt, specs[i].sampling, false)
            .value();
    EXPECT_EQ(f->recorder.logs[ids[i]].tokens, want.tokens);
  }
  EXPECT_EQ(s.stats().kv_pages_free, s.stats().kv_pages_total);

  ASSERT_TRUE(s.release(ids[1]).ok());
  auto gone = s.info(ids[1]);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), Errc::not_found);
  EXPECT_EQ(s.release(ids[1]).error().code(), Errc::not_found);
  EXPECT_EQ(s.cancel(12345).error().code(), Errc::not_found);
}

TEST(Cancel, ReleasingARunningSequenceFreesItsPagesSilently) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(26);
  const SequenceId id = s.submit(spec(prompt_tokens(rng, 9), 10)).value();
  ASSERT_TRUE(s.step().ok());
  ASSERT_GT(s.info(id)->kv_pages, 0);
  ASSERT_TRUE(s.release(id).ok());
  EXPECT_FALSE(s.has_work());
  EXPECT_FALSE(f->recorder.logs[id].finished.has_value());
  EXPECT_EQ(s.stats().kv_pages_free, s.stats().kv_pages_total);
}

TEST(Submit, InvalidSubmissionsAreClearErrors) {
  auto f = make_fixture(8);  // 32 positions
  Scheduler& s = *f->s;
  struct Case {
    const char* what;
    SequenceSpec spec;
    Errc code;
    const char* message;
  };
  auto with = [](auto edit) {
    SequenceSpec sp = spec({1, 50, 60}, 4);
    edit(sp);
    return sp;
  };
  std::vector<Case> cases = {
      {"empty prompt", with([](SequenceSpec& sp) { sp.prompt.clear(); }), Errc::invalid_argument,
       "prompt is empty"},
      {"prompt fills the context", with([](SequenceSpec& sp) { sp.prompt.assign(256, 5); }),
       Errc::invalid_argument, "context of 256"},
      {"token beyond the vocabulary", with([](SequenceSpec& sp) { sp.prompt[1] = kTinyVocab; }),
       Errc::invalid_argument, "outside the vocabulary"},
      {"negative token", with([](SequenceSpec& sp) { sp.prompt[2] = -1; }), Errc::invalid_argument,
       "token 2"},
      {"priority 0", with([](SequenceSpec& sp) { sp.priority = 0; }), Errc::invalid_argument,
       "priority"},
      {"priority 101", with([](SequenceSpec& sp) { sp.priority = 101; }), Errc::invalid_argument,
       "priority"},
      {"negative temperature", with([](SequenceSpec& sp) { sp.sampling.temperature = -1; }),
       Errc::invalid_argument, "temperature"},
      {"zero max_tokens", with([](SequenceSpec& sp) { sp.sampling.max_tokens = 0; }),
       Errc::invalid_argument, "max_tokens"},
      {"empty stop string", with([](SequenceSpec& sp) { sp.sampling.stop_strings = {""}; }),
       Errc::invalid_argument, "stop_strings"},
      {"prompt beyond the pool", with([](SequenceSpec& sp) { sp.prompt.assign(40, 5); }),
       Errc::resource_exhausted, "KV pages"},
  };
  for (const Case& c : cases) {
    auto id = s.submit(c.spec);
    ASSERT_FALSE(id.ok()) << c.what;
    EXPECT_EQ(id.error().code(), c.code) << c.what << ": " << id.error().message();
    EXPECT_NE(id.error().message().find(c.message), std::string::npos)
        << c.what << ": " << id.error().message();
  }
  EXPECT_TRUE(s.sequences().empty()) << "nothing was queued";
  EXPECT_FALSE(s.has_work());
  EXPECT_EQ(s.stats().submitted, 0u);
  EXPECT_EQ(s.stats().kv_pages_free, 8);
  // The scheduler is untouched: a valid submission still works, the first id.
  auto ok = s.submit(spec({1, 50, 60}, 2));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(*ok, 1u);
}

TEST(Submit, CreateChecksItsOptions) {
  auto rig = make_rig().value();
  auto backend = rig.backend(4, 8).value();
  auto with = [&](SchedulerOptions o) {
    return Scheduler::create(*backend, rig.tokenizer(), make_policy({}).value(), nullptr, o);
  };
  EXPECT_FALSE(with({.token_budget = 0}).ok());
  EXPECT_FALSE(with({.max_batch = 0}).ok());
  EXPECT_FALSE(with({.prefill_chunk = -1}).ok());
  auto none = Scheduler::create(*backend, rig.tokenizer(), nullptr, nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("policy"), std::string::npos);
  // Without an events sink, it still runs.
  auto quiet = with({});
  ASSERT_TRUE(quiet.ok());
  SequenceSpec three = spec({1, 70}, 3);
  three.stop_at_end_of_generation = false;
  const SequenceId id = (*quiet)->submit(three).value();
  while ((*quiet)->has_work()) ASSERT_TRUE((*quiet)->step().ok());
  EXPECT_EQ((*quiet)->info(id)->stats.generated_tokens, 3);
}

TEST(Events, CallbacksMayCallBackButNotStep) {
  auto f = make_fixture();
  Scheduler& s = *f->s;
  TinyRandom rng(27);
  const SequenceId a = s.submit(spec(prompt_tokens(rng, 5), 6)).value();
  const SequenceId b = s.submit(spec(prompt_tokens(rng, 5), 6)).value();
  Status nested = ok_status();
  SequenceId submitted = 0;
  f->recorder.token_hook = [&](SequenceId id, int32_t) {
    if (id != a || submitted != 0) return;
    nested = s.step();
    EXPECT_TRUE(s.cancel(b).ok());
    SequenceSpec late = spec(prompt_tokens(rng, 4), 2);
    late.stop_at_end_of_generation = false;
    submitted = s.submit(late).value();
  };
  ASSERT_TRUE(s.step().ok());
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message().find("callback"), std::string::npos);
  // The cancel's event is delivered in the same round as the step's own events.
  EXPECT_EQ(f->recorder.logs[b].finished, FinishReason::cancelled);
  ASSERT_TRUE(drive(s, f->recorder, 50).ok());
  EXPECT_EQ(f->recorder.logs[submitted].tokens.size(), 2u);
}

// A backend that refuses a step on request and otherwise forwards to a real one.
class FlakyBackend final : public llm::Backend {
 public:
  explicit FlakyBackend(llm::Backend& inner) : inner_(inner) {}
  std::string_view name() const override { return "flaky"; }
  const llm::ModelConfig& config() const override { return inner_.config(); }
  llm::KvPool& kv_pool() override { return inner_.kv_pool(); }
  Status forward(std::span<const llm::SequenceStep> batch, std::vector<float>& logits) override {
    if (fail_next) {
      fail_next = false;
      return make_error(Errc::unavailable, "device lost");
    }
    return inner_.forward(batch, logits);
  }
  llm::BackendStats stats() const override { return inner_.stats(); }
  bool fail_next = false;

 private:
  llm::Backend& inner_;
};

TEST(Events, AnEngineErrorFinishesTheBatchAndTheSchedulerGoesOn) {
  auto rig = make_rig().value();
  auto inner = rig.backend(4, 64).value();
  FlakyBackend backend(*inner);
  Recorder recorder;
  auto s = make_scheduler(backend, rig, {PolicyKind::fifo}, &recorder).value();
  TinyRandom rng(28);
  const SequenceId a = s->submit(spec(prompt_tokens(rng, 5), 6)).value();
  const SequenceId b = s->submit(spec(prompt_tokens(rng, 7), 6)).value();
  ASSERT_TRUE(s->step().ok());
  backend.fail_next = true;
  Status failed = s->step();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("device lost"), std::string::npos);
  for (SequenceId id : {a, b}) {
    EXPECT_EQ(recorder.logs[id].finished, FinishReason::error);
    const SequenceInfo info = s->info(id).value();
    EXPECT_EQ(info.finish, FinishReason::error);
    EXPECT_NE(info.error.find("device lost"), std::string::npos) << info.error;
  }
  EXPECT_EQ(s->stats().kv_pages_free, s->stats().kv_pages_total);
  SequenceSpec three = spec(prompt_tokens(rng, 5), 3);
  three.stop_at_end_of_generation = false;
  const SequenceId c = s->submit(three).value();
  ASSERT_TRUE(drive(*s, recorder, 50).ok());
  EXPECT_EQ(recorder.logs[c].tokens.size(), 3u);
}

}  // namespace
}  // namespace icam::sched::testing
