// One real job on the real default model (from the configuration); skipped when it is absent.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/config.h"
#include "kernel/kernel.h"

namespace icam::kernel {
namespace {

TEST(KernelModelTest, RunsAJobOnTheDefaultModel) {
  auto config = load_config();
  ASSERT_TRUE(config.ok()) << config.error().message();
  if (!std::filesystem::exists(config->model)) GTEST_SKIP() << "no model at " << config->model;
  KernelOptions options;
  options.model_path = config->model;
  options.threads = config->threads;
  options.kv_pool_bytes = 64u << 20;
  auto k = Kernel::create(options);
  ASSERT_TRUE(k.ok()) << k.error().message();
  JobSpec job;
  job.name = "model-test";
  job.system = "You are a helpful assistant.";
  job.task = "Name three colours.";
  job.budgets.tokens = 24;
  auto pid = (*k)->spawn(job);
  ASSERT_TRUE(pid.ok()) << pid.error().message();
  std::string streamed;
  AgentCallbacks cb;
  cb.on_text = [&](Pid, std::string_view text) { streamed += text; };
  ASSERT_TRUE((*k)->run_until_idle(cb).ok());
  const Process* p = (*k)->process(*pid);
  ASSERT_TRUE(p->exit.has_value());
  EXPECT_TRUE(p->exit->reason == ExitReason::completed ||
              p->exit->reason == ExitReason::budget_tokens)
      << exit_reason_name(p->exit->reason) << " " << p->exit->error;
  EXPECT_FALSE(streamed.empty());
  EXPECT_FALSE(p->exit->answer.empty());
  EXPECT_LE(p->accounting.generated_tokens, 24);
}

}  // namespace
}  // namespace icam::kernel
