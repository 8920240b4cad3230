#include "kernel/embedded_kernel.h"

namespace icam::kernel {

Result<std::unique_ptr<EmbeddedKernel>> EmbeddedKernel::create(const EmbeddedOptions& options) {
  if (options.model_path.empty())
    return make_error(Errc::invalid_argument, "embedded kernel: no model path");
  std::unique_ptr<EmbeddedKernel> k(new EmbeddedKernel());
  k->model_path_ = options.model_path;
  k->model_ = ICAM_TRY(llm::Model::load(options.model_path));
  llm::KvPoolOptions kv;
  kv.bytes = options.kv_pool_bytes;
  kv.page_tokens = options.kv_page_tokens;
  k->backend_ = ICAM_TRY(
      llm::CpuBackend::create(k->model_->config(), k->model_->weights(), kv, options.threads));
  k->loop_ = std::make_unique<AgentLoop>(k->model_->tokenizer(), k->model_->chat_family(),
                                         options.syscalls);
  std::unique_ptr<sched::Policy> policy = ICAM_TRY(sched::make_policy(options.policy));
  k->scheduler_ = ICAM_TRY(sched::Scheduler::create(
      *k->backend_, k->model_->tokenizer(), std::move(policy), k->loop_.get(), options.scheduler));
  k->loop_->attach(*k->scheduler_);
  return k;
}

Result<Pid> EmbeddedKernel::spawn(const JobSpec& job, Pid parent) {
  if (!job.model.empty() && job.model != model_path_)
    return make_error(Errc::unsupported, "job '", job.name, "': model '", job.model,
                      "' is not the kernel's model '", model_path_,
                      "' (one model per kernel for now)");
  return loop_->spawn(job, parent);
}

Status EmbeddedKernel::run_until_idle(const AgentCallbacks& callbacks) {
  loop_->set_callbacks(callbacks);
  Status result = ok_status();
  while (true) {
    loop_->check_wall_budgets(AgentLoop::Clock::now());
    if (!scheduler_->has_work()) break;
    if (Status st = scheduler_->step(); !st.ok()) {
      loop_->fail_all(st.error().message());
      result = st;
      break;
    }
  }
  loop_->set_callbacks({});
  return result;
}

}  // namespace icam::kernel
