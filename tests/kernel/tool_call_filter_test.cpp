// The tool-call token filter (kernel/tool_call_filter.h) over a real vocabulary (the tiny
// model's: byte tokens and SentencePiece pieces), alone and inside a real scheduler: a model with
// random weights, whose unconstrained output is never a tool call, writes only well-formed calls
// once the filter is active.
#include "kernel/tool_call_filter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kernel/tool_call.h"
#include "syscalls/arg_schema.h"
#include "syscalls/syscall_table.h"
#include "tests/sched/sched_harness.h"

namespace icam::kernel {
namespace {

using sched::testing::make_rig;
using sched::testing::TinyRig;

struct FilterRig {
  TinyRig rig;
  std::shared_ptr<const TokenBytes> vocab;
};

FilterRig filter_rig() {
  auto rig = make_rig("llama");
  EXPECT_TRUE(rig.ok()) << rig.error().message();
  FilterRig f{std::move(rig).value(), nullptr};
  f.vocab = TokenBytes::build(f.rig.tokenizer());
  return f;
}

std::shared_ptr<ToolCallFilter> make_filter(const FilterRig& f,
                                            const std::vector<std::string>& tools,
                                            const std::vector<ExternalTool>& external = {}) {
  auto grammar = ToolCallGrammar::create(tools, external);
  EXPECT_TRUE(grammar.ok()) << grammar.error().message();
  return std::make_shared<ToolCallFilter>(
      f.vocab, std::make_shared<const ToolCallGrammar>(std::move(grammar).value()));
}

std::vector<int32_t> encode(const FilterRig& f, std::string_view text) {
  auto ids = f.rig.tokenizer().encode(text, /*add_bos=*/false, /*parse_special=*/false);
  EXPECT_TRUE(ids.ok());
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

// `text` as byte tokens, one per byte (<0x00> is token kTinyFirstByte): exactly its bytes, where
// encode() would add SentencePiece's space prefix.
std::vector<int32_t> byte_tokens(std::string_view text) {
  std::vector<int32_t> ids;
  for (char c : text) ids.push_back(llm::testing::kTinyFirstByte + static_cast<uint8_t>(c));
  return ids;
}

TEST(ToolCallFilter, TokenBytesAreTheTokensText) {
  FilterRig f = filter_rig();
  const llm::Tokenizer& tok = f.rig.tokenizer();
  ASSERT_EQ(f.vocab->vocab_size(), tok.vocab_size());
  for (int32_t t = 0; t < tok.vocab_size(); ++t) {
    if (tok.is_control(t) || tok.is_end_of_generation(t)) {
      EXPECT_FALSE(f.vocab->is_text(t)) << t;
      continue;
    }
    if (!f.vocab->is_text(t)) continue;
    EXPECT_EQ(f.vocab->bytes(t), tok.token_piece(t)) << t;
  }
  EXPECT_FALSE(f.vocab->is_text(llm::testing::kTinyEos));
}

TEST(ToolCallFilter, ActiveFromTheOpeningTagUntilTheCallIsComplete) {
  FilterRig f = filter_rig();
  auto filter = make_filter(f, {"clock.now"});
  for (int32_t t : encode(f, "Let me check the time. <tool_call")) filter->accept(t);
  EXPECT_FALSE(filter->active());
  for (int32_t t : byte_tokens(">")) filter->accept(t);
  EXPECT_TRUE(filter->active());
  EXPECT_FALSE(filter->allows(llm::testing::kTinyEos));  // the turn cannot end inside a call
  for (int32_t t : byte_tokens(R"({"name": "clock.now", "arguments": {}})")) {
    ASSERT_TRUE(filter->allows(t)) << t;
    filter->accept(t);
  }
  EXPECT_TRUE(filter->active());
  for (int32_t t : byte_tokens("</tool_call>")) filter->accept(t);
  EXPECT_FALSE(filter->active());
  EXPECT_EQ(filter->calls_opened(), 1);
  EXPECT_EQ(filter->calls_completed(), 1);
  // Watching again: a second call opens the same way.
  for (int32_t t : byte_tokens("\n<tool_call>{")) filter->accept(t);
  EXPECT_TRUE(filter->active());
  EXPECT_EQ(filter->calls_opened(), 2);
}

TEST(ToolCallFilter, TheAllowedSetMatchesAskingTokenByToken) {
  FilterRig f = filter_rig();
  auto filter = make_filter(f, {"fs.write", "exec.run", "clock.now"});
  for (int32_t t : encode(f, "<tool_call>")) filter->accept(t);
  ASSERT_TRUE(filter->active());
  // At several points of one call: structure, a name, inside a string, inside an array.
  const std::string call =
      R"({"name": "exec.run", "arguments": {"argv": ["/bin/echo", "h\u00e9 <b>"], "timeout_ms": 500}})";
  std::vector<uint8_t> allowed;
  size_t checked = 0;
  for (size_t i = 0; i < call.size(); ++i) {
    if (i % 7 == 0) {
      filter->allowed_tokens(f.vocab->vocab_size(), allowed);
      for (int32_t t = 0; t < f.vocab->vocab_size(); ++t)
        ASSERT_EQ(allowed[t] != 0, filter->allows(t)) << "token " << t << " at byte " << i;
      ++checked;
    }
    filter->accept(byte_tokens(call.substr(i, 1))[0]);
  }
  EXPECT_GT(checked, 10u);
  EXPECT_TRUE(filter->active());
}

// Samples from a model with random weights at temperature 1; each sequence's filter has already
// seen "<tool_call>", as if the model had opened a call.
struct RunResult {
  int completed = 0;  // turns that ended at "</tool_call>"
  int valid = 0;      // of those, calls that parse and validate
  std::vector<std::string> texts;
};

// Calls are checked as the dispatcher would: the table's schema and, for tool.call, that it names
// one of `external` and that the arguments pass its checked schema.
RunResult run_sequences(FilterRig& f, bool constrained, int sequences,
                        const std::vector<std::string>& tools = {"clock.now", "kv.get"},
                        const std::vector<ExternalTool>& external = {}) {
  RunResult out;
  auto backend = f.rig.backend(16, sequences * 16 + 16);
  EXPECT_TRUE(backend.ok());
  sched::testing::Recorder recorder;
  auto scheduler = sched::testing::make_scheduler(**backend, f.rig, {}, &recorder);
  EXPECT_TRUE(scheduler.ok());
  std::vector<sched::SequenceId> ids;
  for (int i = 0; i < sequences; ++i) {
    sched::SequenceSpec spec = sched::testing::spec({llm::testing::kTinyBos, 100 + i, 40}, 200);
    spec.sampling.temperature = 1.0f;
    spec.sampling.seed = 1000 + i;
    spec.sampling.stop_strings.push_back(std::string(kToolCallClose));
    spec.stop_at_end_of_generation = false;
    if (constrained) {
      auto filter = make_filter(f, tools, external);
      for (int32_t t : encode(f, "<tool_call>")) filter->accept(t);
      spec.token_filter = filter;
    }
    auto id = (*scheduler)->submit(std::move(spec));
    EXPECT_TRUE(id.ok());
    ids.push_back(*id);
  }
  EXPECT_TRUE(sched::testing::drive(**scheduler, recorder, 2000).ok());
  for (sched::SequenceId id : ids) {
    const sched::testing::SequenceLog& log = recorder.logs[id];
    out.texts.push_back(log.text);
    if (!log.finished || *log.finished != sched::FinishReason::stop_string) continue;
    ++out.completed;
    auto call = parse_tool_call(log.text);
    if (!call.ok()) continue;
    const syscalls::SyscallSpec* spec = syscalls::find_syscall(call->name);
    if (!spec || !syscalls::validate_syscall_arguments(*spec, call->arguments).ok()) continue;
    if (call->name == "tool.call") {
      const nlohmann::json& a = call->arguments;
      const ExternalTool* tool = nullptr;
      for (const ExternalTool& t : external)
        if (t.driver == a["driver"] && t.name == a["tool"]) tool = &t;
      if (!tool || !a.contains("arguments")) continue;
      if (!tool->checked_schema.is_null() &&
          !syscalls::validate_arguments(tool->checked_schema, a["arguments"]).ok())
        continue;
    }
    ++out.valid;
  }
  return out;
}

TEST(ToolCallFilter, ARandomModelWritesOnlyWellFormedCalls) {
  FilterRig f = filter_rig();
  const int n = 16;
  RunResult constrained = run_sequences(f, true, n);
  // Every turn that reached the closing tag is a valid call; the others ran out of tokens
  // inside a long string, and what they wrote is still a prefix of a valid call.
  EXPECT_EQ(constrained.valid, constrained.completed);
  std::printf("constrained: %d of %d sequences wrote a complete call\n", constrained.completed, n);
  EXPECT_GE(constrained.completed, n / 4);
  auto grammar = ToolCallGrammar::create({"clock.now", "kv.get"});
  ASSERT_TRUE(grammar.ok());
  for (const std::string& text : constrained.texts) {
    ToolCallGrammar::State s = grammar->initial();
    EXPECT_TRUE(grammar->feed(s, text)) << text;
  }
  // Unconstrained, the same model and seeds never write a valid call.
  RunResult free = run_sequences(f, false, n);
  EXPECT_EQ(free.valid, 0);
}

TEST(ToolCallFilter, ARandomModelCallsOnlyTheExternalToolsItHas) {
  FilterRig f = filter_rig();
  auto tool = [](std::string driver, std::string name, const char* schema) {
    auto checked = syscalls::supported_schema(nlohmann::json::parse(schema));
    EXPECT_TRUE(checked.ok());
    return ExternalTool{std::move(driver), std::move(name), "", checked.ok() ? *checked : nullptr};
  };
  const std::vector<ExternalTool> external = {
      tool("calc", "add", R"({"type": "object", "properties": {"a": {"type": "integer"},
           "b": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["a", "b"],
           "additionalProperties": false})"),
      tool("calc", "echo", R"({"type": "object", "properties": {"text": {"type": "string",
           "maxLength": 6}, "loud": {"type": "boolean"}}, "required": ["text"],
           "additionalProperties": false})"),
      tool("clock", "now", R"({"type": "object", "additionalProperties": false})"),
  };
  const int n = 16;
  RunResult constrained = run_sequences(f, true, n, {"tool.call"}, external);
  std::printf("constrained: %d of %d sequences wrote a complete call\n", constrained.completed, n);
  EXPECT_EQ(constrained.valid, constrained.completed);
  EXPECT_GE(constrained.completed, n / 4);
  auto grammar = ToolCallGrammar::create({"tool.call"}, external);
  ASSERT_TRUE(grammar.ok());
  for (const std::string& text : constrained.texts) {
    ToolCallGrammar::State s = grammar->initial();
    EXPECT_TRUE(grammar->feed(s, text)) << text;
  }
}

}  // namespace
}  // namespace icam::kernel
