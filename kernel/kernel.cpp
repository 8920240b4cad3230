#include "kernel/kernel.h"

#include "drivers/llm/engine/backend_factory.h"
#include "memory/model_identity.h"

namespace icam::kernel {

KernelOptions kernel_options(const Config& config) {
  KernelOptions options;
  options.model_path = config.model;
  options.threads = config.threads;
  options.kv_pool_bytes = config.kv_pool_bytes;
  options.backend = config.backend;
  // Made on the first syscall only, so kernels whose processes make none leave no file.
  options.audit_path = config.home + "/audit.db";
  options.workspace_root = config.home + "/workspaces";
  options.archive_path = config.home + "/archive.db";  // made on the first mem.* call
  options.page_store_path = config.home + "/pages";
  return options;
}

Result<std::unique_ptr<Kernel>> Kernel::create(const KernelOptions& options) {
  if (options.model_path.empty())
    return make_error(Errc::invalid_argument, "embedded kernel: no model path");
  std::unique_ptr<Kernel> k(new Kernel());
  k->model_path_ = options.model_path;
  k->model_ = ICAM_TRY(llm::Model::load(options.model_path));
  llm::KvPoolOptions kv;
  kv.bytes = options.kv_pool_bytes;
  kv.page_tokens = options.kv_page_tokens;
  llm::BackendOptions backend;
  backend.kv = kv;
  backend.threads = options.threads;
  k->backend_ = ICAM_TRY(llm::make_backend(options.backend, *k->model_, backend));
  SyscallHandler* handler = options.syscalls;
  if (!handler) {
    DispatcherOptions d;
    d.audit_path = options.audit_path;
    d.driver_dir = options.driver_dir;
    d.workspace_root = options.workspace_root;
    d.archive_path = options.archive_path;
    d.human_answers = options.human_answers;
    k->dispatcher_ = ICAM_TRY(SyscallDispatcher::create(std::move(d)));
    handler = k->dispatcher_.get();
  }
  k->loop_ = std::make_unique<AgentLoop>(k->model_->tokenizer(), k->model_->chat_family(), handler);
  std::unique_ptr<sched::Policy> policy = ICAM_TRY(sched::make_policy(options.policy));
  sched::SchedulerEvents* events = k->loop_.get();
  if (options.events_tap) {
    k->tap_ = options.events_tap(*k->loop_);
    if (k->tap_) events = k->tap_.get();
  }
  sched::SchedulerOptions scheduling = options.scheduler;
  if (!options.page_store_path.empty() && !scheduling.page_store) {
    memory::PageStoreOptions store;
    store.max_bytes = options.page_store_bytes;
    auto opened = memory::PageStore::open(options.page_store_path, store);
    if (opened.ok()) {
      k->page_store_ = std::move(opened).value();
      scheduling.page_store = k->page_store_.get();
      scheduling.model_identity = memory::model_identity(*k->model_);
    } else {
      // Swapping is an optimisation: without the store, preempted contexts are recomputed.
      k->page_store_error_ = opened.error().message();
    }
  }
  k->scheduler_ = ICAM_TRY(sched::Scheduler::create(
      *k->backend_, k->model_->tokenizer(), std::move(policy), events, scheduling));
  k->loop_->attach(*k->scheduler_);
  k->loop_->set_constrained_tool_calls(options.constrained_tool_calls);
  return k;
}

std::vector<syscalls::ProvenanceEntry> Kernel::capabilities(Pid pid) const {
  if (!dispatcher_) return {};
  return dispatcher_->capabilities().provenance(pid, syscalls::unix_now());
}

Result<Pid> Kernel::spawn(const JobSpec& job, Pid parent, std::optional<uint32_t> owner_uid) {
  if (!job.model.empty() && job.model != model_path_)
    return make_error(Errc::unsupported, "job '", job.name, "': model '", job.model,
                      "' is not the kernel's model '", model_path_,
                      "' (one model per kernel for now)");
  return loop_->spawn(job, parent, owner_uid);
}

Status Kernel::answer_human(Pid pid, bool approved, const std::string& text) {
  if (!dispatcher_) return make_error(Errc::unsupported, "this kernel's syscalls are served elsewhere");
  return dispatcher_->answer_human(pid, approved, text);
}

std::string Kernel::pending_question(Pid pid) const {
  return dispatcher_ ? dispatcher_->pending_question(pid) : std::string();
}

Status Kernel::step() {
  const auto now = AgentLoop::Clock::now();
  loop_->tick(now);  // pending calls past their deadline complete (timed out)
  loop_->deliver_completions();
  loop_->check_wall_budgets(now);
  if (!scheduler_->has_work()) return ok_status();
  Status st = scheduler_->step();
  if (!st.ok()) loop_->fail_all(st.error().message());
  return st;
}

Status Kernel::run_until_idle(const AgentCallbacks& callbacks) {
  loop_->set_callbacks(callbacks);
  Status result = ok_status();
  // While every live process waits on a syscall, sleep until a completion arrives, at most this
  // long, so deadlines and wall-clock budgets are still enforced.
  constexpr auto kBlockedTick = std::chrono::milliseconds(100);
  while (true) {
    result = step();
    if (!result.ok()) break;
    if (has_work()) continue;
    if (loop_->blocked_processes() == 0) break;
    loop_->completions().wait_for(kBlockedTick);
  }
  loop_->set_callbacks({});
  return result;
}

}  // namespace icam::kernel
