// The kernel in embedded mode: one model, one CPU backend, one scheduler and the agent loop, all
// in the calling process and driven by the calling thread. `icamctl run` uses it until the daemon
// exists; the daemon will own the same parts and drive them from its engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "drivers/llm/engine/cpu_backend.h"
#include "drivers/llm/engine/model.h"
#include "kernel/agent_loop.h"
#include "kernel/job.h"
#include "kernel/process.h"
#include "sched/policy.h"
#include "sched/scheduler.h"

namespace icam::kernel {

struct EmbeddedOptions {
  std::string model_path;                 // GGUF file; required
  int threads = 0;                        // engine worker threads; 0 = one per online core
  uint64_t kv_pool_bytes = 256ull << 20;  // KV pool size
  int kv_page_tokens = 16;
  sched::SchedulerOptions scheduler;
  sched::PolicyOptions policy;         // fair share by default: priorities matter
  SyscallHandler* syscalls = nullptr;  // serves tool calls but proc.exit; null = none; outlives
};

class EmbeddedKernel {
 public:
  // Loads the model and builds the backend and scheduler. Errors name the model file.
  static Result<std::unique_ptr<EmbeddedKernel>> create(const EmbeddedOptions& options);

  // Spawns a process for `job`. A job naming a model other than the kernel's is refused
  // (unsupported): one kernel serves one model for now.
  Result<Pid> spawn(const JobSpec& job, Pid parent = 0);

  // Steps the scheduler until no process can make progress, enforcing wall-clock budgets before
  // every step; `callbacks` hear streamed text and exits. A failed engine step ends every live
  // process with ExitReason::error and is returned.
  Status run_until_idle(const AgentCallbacks& callbacks = {});

  Status cancel(Pid pid) { return loop_->cancel(pid); }
  const Process* process(Pid pid) const { return loop_->process(pid); }
  std::vector<Pid> pids() const { return loop_->pids(); }

  const llm::Model& model() const { return *model_; }
  const llm::Backend& backend() const { return *backend_; }
  const sched::Scheduler& scheduler() const { return *scheduler_; }

 private:
  EmbeddedKernel() = default;
  // Destroyed in reverse: the scheduler (which holds pages of the backend's pool) first, the
  // model (whose weights the backend maps) last.
  std::string model_path_;
  std::unique_ptr<llm::Model> model_;
  std::unique_ptr<llm::CpuBackend> backend_;
  std::unique_ptr<AgentLoop> loop_;
  std::unique_ptr<sched::Scheduler> scheduler_;
};

}  // namespace icam::kernel
