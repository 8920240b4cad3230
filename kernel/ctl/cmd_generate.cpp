#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "drivers/llm/engine/backend_factory.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/generate.h"
#include "drivers/llm/engine/model.h"
#include "kernel/ctl/args.h"
#include "kernel/ctl/commands.h"

namespace icam::ctl {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
  g_interrupted.store(true);
}

const std::vector<OptionSpec>& generate_specs() {
  static const std::vector<OptionSpec> specs = {
      {"model", "m", true, false, "GGUF model path (default: the configured model)"},
      {"prompt", "p", true, false, "prompt text (default: read standard input)"},
      {"chat", "", false, false, "wrap the prompt as a user turn in the model's chat template"},
      {"system", "", true, false, "system message for --chat"},
      {"max-tokens", "n", true, false, "tokens to generate at most (default 128)"},
      {"temperature", "t", true, false, "sampling temperature; 0 = greedy (default 0)"},
      {"top-k", "", true, false, "keep the k most likely tokens (0 = off)"},
      {"top-p", "", true, false, "nucleus sampling mass in (0, 1] (1 = off)"},
      {"min-p", "", true, false, "drop tokens below min-p times the best (0 = off)"},
      {"repeat-penalty", "", true, false, "repetition penalty (1 = off)"},
      {"repeat-window", "", true, false, "tokens the penalties look back over (default 64)"},
      {"presence-penalty", "", true, false, "presence penalty in [-2, 2]"},
      {"frequency-penalty", "", true, false, "frequency penalty in [-2, 2]"},
      {"seed", "s", true, false, "random seed (default 0)"},
      {"stop", "", true, true, "stop string (repeatable)"},
      {"logprobs", "", true, false,
       "print the top-N log-probabilities of each token to stderr as JSON lines"},
      {"threads", "", true, false, "worker threads (default: configured, 0 = all cores)"},
      {"backend", "", true, false, "cpu, cuda or auto (default: configured)"},
      {"special", "", false, false,
       "parse special-token text (e.g. <start_of_turn>) in the prompt"},
      {"no-bos", "", false, false, "do not add the BOS token"},
      {"help", "h", false, false, "show this help"},
  };
  return specs;
}

Result<llm::SamplingParams> sampling_from(const Args& a) {
  llm::SamplingParams s;
  s.max_tokens = static_cast<int>(ICAM_TRY(a.get_int("max-tokens", 128, 1, 1 << 24)));
  s.temperature = static_cast<float>(ICAM_TRY(a.get_double("temperature", 0)));
  s.top_k = static_cast<int>(ICAM_TRY(a.get_int("top-k", 0, 0, 1 << 30)));
  s.top_p = static_cast<float>(ICAM_TRY(a.get_double("top-p", 1)));
  s.min_p = static_cast<float>(ICAM_TRY(a.get_double("min-p", 0)));
  s.repetition_penalty = static_cast<float>(ICAM_TRY(a.get_double("repeat-penalty", 1)));
  s.repetition_window = static_cast<int>(ICAM_TRY(a.get_int("repeat-window", 64, 0, 1 << 24)));
  s.presence_penalty = static_cast<float>(ICAM_TRY(a.get_double("presence-penalty", 0)));
  s.frequency_penalty = static_cast<float>(ICAM_TRY(a.get_double("frequency-penalty", 0)));
  s.seed = static_cast<uint64_t>(ICAM_TRY(a.get_int("seed", 0, 0, INT64_MAX)));
  s.logprobs = static_cast<int>(ICAM_TRY(a.get_int("logprobs", 0, 0, 1000)));
  s.stop_strings = a.get_all("stop");
  ICAM_TRY(llm::validate(s));
  return s;
}

}  // namespace

int cmd_generate(const Config& config, const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, generate_specs());
  if (!args.ok()) return fail(kExitUsage, args.error().message());
  if (args->has("help")) {
    std::cout << "usage: icamctl generate [OPTIONS]\n\n"
              << "Streams generated text to stdout and a summary line to stderr.\n\n"
              << usage_lines(generate_specs());
    return kExitOk;
  }
  if (!args->positional().empty())
    return fail(kExitUsage, "generate takes no positional arguments (use --prompt)");
  auto sampling = sampling_from(*args);
  if (!sampling.ok()) return fail(kExitUsage, sampling.error().message());
  auto threads = args->get_int("threads", config.threads, 0, 1024);
  if (!threads.ok()) return fail(kExitUsage, threads.error().message());
  const std::string backend_name = args->get("backend").value_or(config.backend);
  if (backend_name != "cpu" && backend_name != "cuda" && backend_name != "auto")
    return fail(kExitUsage, "--backend must be cpu, cuda or auto, not '" + backend_name + "'");

  std::string prompt;
  if (auto p = args->get("prompt")) {
    prompt = *p;
  } else {
    if (isatty(STDIN_FILENO)) std::fprintf(stderr, "icamctl: reading the prompt from stdin\n");
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (prompt.empty()) return fail(kExitUsage, "the prompt is empty");

  const std::string path = args->get("model").value_or(config.model);
  auto model = llm::Model::load(path);
  if (!model.ok()) return fail(kExitFailure, model.error().message());
  const llm::Model& m = **model;

  std::string text = prompt;
  bool parse_special = args->has("special");
  if (args->has("chat")) {
    std::vector<llm::ChatMessage> messages;
    if (auto system = args->get("system")) messages.push_back({"system", *system});
    messages.push_back({"user", prompt});
    auto rendered = llm::render_chat(m.chat_family(), messages, /*add_generation_prompt=*/true);
    if (!rendered.ok()) return fail(kExitFailure, rendered.error().message());
    text = *rendered;
    parse_special = true;
  } else if (args->has("system")) {
    return fail(kExitUsage, "--system needs --chat");
  }
  const bool add_bos = !args->has("no-bos") && m.tokenizer().add_bos_default();
  auto tokens = m.tokenizer().encode(text, add_bos, parse_special);
  if (!tokens.ok()) return fail(kExitFailure, "prompt: " + tokens.error().message());

  llm::KvPoolOptions kv;
  kv.bytes = config.kv_pool_bytes;
  llm::BackendOptions backend_options;
  backend_options.kv = kv;
  backend_options.threads = static_cast<int>(*threads);
  auto backend = llm::make_backend(backend_name, m, backend_options);
  if (!backend.ok()) return fail(kExitFailure, backend.error().message());

  llm::GenerateRequest request;
  request.prompt = std::move(*tokens);
  request.sampling = *sampling;

  g_interrupted.store(false);
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigaction(SIGINT, &action, nullptr);

  auto result = llm::generate(**backend, m.tokenizer(), request, [&](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return !g_interrupted.load();
  });
  if (!result.ok()) return fail(kExitFailure, result.error().message());
  if (sampling->logprobs > 0) {
    for (const llm::SampleResult& s : result->samples) {
      nlohmann::json line = {{"token", s.token},
                             {"piece", m.tokenizer().token_piece(s.token)},
                             {"logprob", s.logprob}};
      for (const auto& [id, lp] : s.top_logprobs) line["top"].push_back({id, lp});
      std::fprintf(stderr, "%s\n",
                   line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
  }
  std::fputs("\n", stdout);
  std::fflush(stdout);
  const double prompt_tps =
      result->prefill_seconds > 0 ? result->prompt_tokens / result->prefill_seconds : 0;
  const size_t n_gen = result->tokens.size();
  const double decode_tps =
      result->decode_seconds > 0 && n_gen > 1 ? (n_gen - 1) / result->decode_seconds : 0;
  const auto* cpu = dynamic_cast<const llm::CpuBackend*>(backend->get());
  const std::string where = cpu ? ", " + std::to_string(cpu->threads()) + " threads" : "";
  std::fprintf(
      stderr,
      "prompt: %d tokens, %.1f tokens/s | decode: %zu tokens, %.1f tokens/s | finish: %s | "
      "backend: %s%s\n",
      result->prompt_tokens, prompt_tps, n_gen, decode_tps,
      std::string(llm::finish_reason_name(result->finish)).c_str(),
      std::string((*backend)->name()).c_str(), where.c_str());
  return result->finish == llm::FinishReason::cancelled ? 130 : kExitOk;
}

}  // namespace icam::ctl
