#include "kernel/daemon/engine_thread.h"

#include "common/log.h"

namespace icam::daemon {
namespace {

using Clock = std::chrono::steady_clock;

// While processes are alive but none can run, wake this often to enforce wall-clock budgets.
constexpr auto kBudgetTick = std::chrono::milliseconds(100);
// Records of live processes are republished at most this often (accounting moves every step;
// clients poll no faster than this). Exits and spawns are published at once.
constexpr auto kRecordsPeriod = std::chrono::milliseconds(200);

}  // namespace

EngineThread::EngineThread(std::unique_ptr<kernel::Kernel> kernel, ReportSink sink)
    : kernel_(std::move(kernel)), sink_(std::move(sink)) {
  kernel::AgentCallbacks callbacks;
  callbacks.on_text = [this](kernel::Pid pid, std::string_view text) {
    if (!pending_.text.empty() && pending_.text.back().first == pid) {
      pending_.text.back().second += text;
    } else {
      pending_.text.emplace_back(pid, std::string(text));
    }
  };
  callbacks.on_exit = [this](const kernel::Process& p) {
    pending_.records.push_back(kernel::to_json(p));
    exited_.push_back(p.pid);
  };
  kernel_->set_callbacks(std::move(callbacks));
  // A blocking syscall that completes (on a driver's worker thread, say) wakes the engine from its
  // idle wait with a no-op command; the next step delivers the completion.
  kernel_->set_wakeup([this] { post([](kernel::Kernel&) {}); });
  thread_ = std::thread([this] { run(); });
}

EngineThread::~EngineThread() {
  stop();
  // The kernel goes first, while the queue its wake-up posts to still exists: destroying it joins
  // the syscall layer's worker threads, which may still report a (dropped) completion.
  kernel_.reset();
}

void EngineThread::post(Command command) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    commands_.push_back(std::move(command));
  }
  wake_.notify_one();
}

void EngineThread::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

nlohmann::json EngineThread::stats_json(const kernel::Kernel& k) {
  const sched::SchedulerStats s = k.scheduler().stats();
  const llm::KvPool& pool = k.kv_pool();
  return {
      {"processes", {{"live", k.live_processes()}}},
      {"scheduler",
       {{"policy", k.scheduler().policy().name()},
        {"steps", s.steps},
        {"tokens", s.tokens},
        {"prefill_tokens", s.prefill_tokens},
        {"decode_tokens", s.decode_tokens},
        {"sampled_tokens", s.sampled_tokens},
        {"preemptions", s.preemptions},
        {"recomputed_tokens", s.recomputed_tokens},
        {"submitted", s.submitted},
        {"finished", s.finished},
        {"last_batch", k.scheduler().last_step().members.size()},
        {"max_batch", s.max_batch_seen},
        {"mean_batch", s.mean_batch_size()},
        {"step_seconds", s.step_seconds},
        {"forward_seconds", s.forward_seconds},
        {"sample_seconds", s.sample_seconds},
        {"overhead_share", s.overhead_share()},
        {"scheduler_share", s.scheduler_share()},
        {"prefix_lookups", s.prefix_lookups},
        {"prefix_hits", s.prefix_hits},
        {"shared_tokens", s.shared_tokens}}},
      {"kv",
       {{"pages_total", s.kv_pages_total},
        {"pages_used", s.kv_pages_used()},
        {"pages_peak", s.kv_pages_peak},
        {"page_tokens", pool.page_tokens()},
        {"page_bytes", pool.page_bytes()},
        {"bytes", pool.bytes()}}},
      {"swap",
       {{"store", k.page_store() ? k.page_store()->path() : std::string()},
        {"store_error", k.page_store_error()},
        {"pages_out", s.swap_out_pages},
        {"pages_out_present", s.swap_out_present},
        {"pages_in", s.swap_in_pages},
        {"pages_in_prefetched", s.swap_in_prefetched},
        {"prefetch_requested", s.prefetch_requested},
        {"prefetch_staged", s.prefetch_staged},
        {"prefetch_unused", s.prefetch_unused},
        {"prefetch_dropped", s.prefetch_dropped},
        {"errors", s.swap_errors},
        {"out_seconds", s.swap_out_seconds},
        {"in_seconds", s.swap_in_seconds}}},
  };
}

void EngineThread::publish(bool force_records) {
  const auto now = Clock::now();
  // Exits change the counters too; an idle engine will not publish again until woken.
  const bool records_due = force_records || !exited_.empty() || !kernel_->has_work() ||
                           now - last_full_publish_ >= kRecordsPeriod;
  if (records_due) {
    last_full_publish_ = now;
    for (kernel::Pid pid : kernel_->pids()) {
      const kernel::Process* p = kernel_->process(pid);
      if (!p || p->exit) continue;
      nlohmann::json record = kernel::to_json(*p);
      if (auto m = kernel_->process_memory(pid))
        record["memory"] = {{"context_tokens", m->context_tokens},
                            {"cached_tokens", m->cached_tokens},
                            {"resident_pages", m->resident_pages},
                            {"out_pages", m->out_pages},
                            {"shared_tokens", m->shared_tokens}};
      pending_.records.push_back(std::move(record));
    }
    pending_.stats = stats_json(*kernel_);
  }
  if (!pending_.text.empty() || !pending_.records.empty() || !pending_.stats.is_null()) {
    EngineReport report = std::move(pending_);
    pending_ = EngineReport{};
    sink_(std::move(report));
  }
  for (kernel::Pid pid : exited_) (void)kernel_->reap(pid);
  exited_.clear();
  auto after = std::move(after_publish_);
  after_publish_.clear();
  for (auto& fn : after) fn();
}

void EngineThread::run() {
  while (true) {
    std::deque<Command> commands;
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      if (commands_.empty() && !stopping_ && !kernel_->has_work()) {
        if (kernel_->live_processes() > 0) {
          wake_.wait_for(lock, kBudgetTick);
        } else {
          wake_.wait(lock, [this] { return stopping_ || !commands_.empty(); });
        }
      }
      commands.swap(commands_);
      stopping = stopping_;
    }
    for (Command& command : commands) command(*kernel_);
    if (stopping) {
      publish(true);
      return;
    }
    // step() also enforces wall-clock budgets, so it runs on every wake-up.
    if (Status st = kernel_->step(); !st.ok())
      log::error("engine", "engine step failed; its processes were ended: ", st.error().message());
    publish(!commands.empty());
  }
}

}  // namespace icam::daemon
