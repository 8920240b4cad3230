#include "kernel/kernel.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "common/log.h"
#include "drivers/llm/engine/backend_factory.h"
#include "memory/model_identity.h"

namespace icam::kernel {
namespace {

// One kernel at a time writes a journal: two would number processes alike, and both would
// revive the same processes (running their calls twice). The lock is an flock on a file beside
// the journal, released by the kernel (or by the system when the daemon dies).
Result<int> lock_journal(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ignored;
    std::filesystem::create_directories(parent, ignored);
  }
  const std::string lock = path + ".lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(Errc::io, "process journal '", path, "': cannot open its lock file '", lock,
                      "': ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return make_error(Errc::unavailable, "process journal '", path,
                        "' is in use by another kernel (is another icamd running on this home?)");
    return make_error(Errc::io, "process journal '", path, "': cannot lock '", lock,
                      "': ", std::strerror(err));
  }
  return fd;
}

// A process record for one that could not be revived.
// For each revived process still live, what `pick` takes from each of its recorded results of
// syscall `name` (arguments and result parsed; a result it gives nothing for is skipped).
template <typename T>
std::map<Pid, std::set<T>> recorded_numbers(
    const AgentLoop& loop, const std::vector<memory::JournalProcess>& revived,
    std::string_view name,
    const std::function<std::optional<T>(const nlohmann::json&, const nlohmann::json&)>& pick) {
  std::map<Pid, std::set<T>> out;
  for (const memory::JournalProcess& jp : revived) {
    const Process* p = loop.process(jp.pid);
    if (p == nullptr || p->exit) continue;
    std::set<T>& numbers = out[jp.pid];
    for (const memory::JournalToolResult& r : jp.tool_results) {
      if (r.name != name) continue;
      const std::optional<T> n = pick(nlohmann::json::parse(r.arguments, nullptr, false),
                                      nlohmann::json::parse(r.result, nullptr, false));
      if (n) numbers.insert(*n);
    }
  }
  return out;
}

Process failed_record(const memory::JournalProcess& jp, const std::string& error) {
  Process p;
  p.pid = jp.pid;
  p.owner_uid = jp.owner_uid;
  const auto job = nlohmann::json::parse(jp.job, nullptr, false);
  if (job.is_object() && job.contains("name") && job["name"].is_string())
    p.name = job["name"].get<std::string>();
  p.exit = ExitStatus{ExitReason::error, "", error};
  p.state = ProcessState::exited;
  return p;
}

}  // namespace

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
  options.journal_path = config.home + "/journal.db";
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
  if (!options.journal_path.empty()) {
    // Opened before anything runs, so a damaged or locked journal stops the kernel at startup
    // with an error naming the file, instead of failing processes later.
    k->journal_lock_fd_ = ICAM_TRY(lock_journal(options.journal_path));
    k->journal_ = ICAM_TRY_CTX(memory::ProcessJournal::open(options.journal_path),
                               "process journal");
    ICAM_TRY_CTX(k->journal_->check_writable(), "process journal");
    if (k->dispatcher_) {
      // Messages live beside the journal, so a restart loses none (memory/mailbox_store.h).
      k->mailboxes_ = ICAM_TRY_CTX(memory::MailboxStore::open(options.journal_path),
                                   "process journal");
      k->dispatcher_->set_mailboxes(k->mailboxes_.get());
    }
    const uint64_t max_pid = ICAM_TRY_CTX(k->journal_->max_pid(), "process journal");
    k->loop_->set_next_pid(max_pid + 1);
    if (options.resume_journaled) {
      k->to_resume_ = ICAM_TRY_CTX(k->journal_->live_processes(), "process journal");
      // The daemon answers for the last kJournaledExits exited processes; older ones (but those
      // with checkpoints) are forgotten, so the journal does not grow without end.
      auto pruned = k->journal_->prune_exited(kJournaledExits);
      if (!pruned.ok())
        log::warn("kernel", "process journal: exited processes not pruned: ",
                  pruned.error().message());
      else if (*pruned > 0)
        log::info("kernel", "process journal: forgot ", *pruned, " old exited processes");
    }
    // Page tables too: the hashes by which each process's KV is found in the page store.
    k->loop_->set_page_hashing(memory::model_identity(*k->model_), options.kv_page_tokens);
    Kernel* raw = k.get();
    k->loop_->set_journal(k->journal_.get(), [raw](Pid pid) {
      return raw->dispatcher_ ? raw->dispatcher_->workspace(pid).string() : std::string();
    });
  }
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
  k->loop_->set_context_length(k->model_->config().context_length);
  return k;
}

Kernel::~Kernel() {
  // As the members would go (see the header), with the journal after the loop that writes to it
  // and its lock last.
  scheduler_.reset();
  page_store_.reset();
  tap_.reset();
  loop_.reset();
  journal_.reset();
  if (journal_lock_fd_ >= 0) ::close(journal_lock_fd_);
}

void Kernel::resume_journaled() {
  std::vector<memory::JournalProcess> queue = std::move(to_resume_);
  to_resume_.clear();
  // Parents before their children (a child's pid is above its parent's), and every process
  // revived before any of their unanswered calls runs again: a parent that was waiting in
  // proc.wait must find the child it waits for.
  std::sort(queue.begin(), queue.end(),
            [](const memory::JournalProcess& a, const memory::JournalProcess& b) {
              return a.pid < b.pid;
            });
  loop_->hold_unanswered_calls();
  for (const memory::JournalProcess& jp : queue) {
    Status st = resume_one(jp);
    if (st.ok()) {
      log::info("kernel", "process ", jp.pid, " resumed from the journal at token ",
                jp.transcript.size(), " (", jp.tool_results.size(), " tool results recorded)");
      resumed_.push_back(jp.pid);
      continue;
    }
    // It cannot go on here; it ends, saying why, rather than stay live in the journal forever.
    const std::string error = "not resumed after a restart: " + st.error().message();
    log::error("kernel", "process ", jp.pid, ": ", error);
    resume_errors_.push_back(str_cat("process ", jp.pid, ": ", error));
    const Process record = failed_record(jp, error);
    if (Status ex = journal_->exit(jp.pid, to_json(record).dump()); !ex.ok())
      log::warn("kernel", "process ", jp.pid, ": its exit was not journaled: ", ex.error().message());
    if (callbacks_.on_exit) callbacks_.on_exit(record);
  }
  restore_exited_children(queue);
  restore_mailboxes(queue);
  loop_->release_unanswered_calls();
}

// Messages stored when the kernel stopped: those a revived process's recorded msg.recv results
// show it was given are forgotten, the others go back into their receivers' mailboxes in the
// order sent (before any msg.recv in progress is served again), and those to processes that did
// not come back are forgotten.
void Kernel::restore_mailboxes(const std::vector<memory::JournalProcess>& revived) {
  if (!mailboxes_ || !dispatcher_) return;
  auto stored = mailboxes_->all();
  if (!stored.ok()) {
    log::warn("kernel", "stored messages not read: ", stored.error().message());
    return;
  }
  // Live process -> the ids of the messages its recorded msg.recv results gave it.
  const std::map<Pid, std::set<int64_t>> given = recorded_numbers<int64_t>(
      *loop_, revived, "msg.recv", [](const nlohmann::json&, const nlohmann::json& result) {
        return result.is_object() && result.contains("id") && result["id"].is_number_integer()
                   ? std::optional<int64_t>(result["id"].get<int64_t>())
                   : std::nullopt;
      });
  std::vector<int64_t> forget;
  size_t back = 0;
  for (memory::StoredMessage& m : *stored) {
    auto receiver = given.find(m.to);
    if (receiver == given.end() || receiver->second.count(m.id)) {
      forget.push_back(m.id);
      continue;
    }
    if (Status st = dispatcher_->restore_message(m.to, m.from, std::move(m.body), m.id); !st.ok()) {
      log::warn("kernel", "message ", m.id, " to process ", m.to, " not put back: ",
                st.error().message());
      continue;
    }
    ++back;
  }
  if (Status st = mailboxes_->remove(forget); !st.ok())
    log::warn("kernel", "delivered messages not forgotten: ", st.error().message());
  if (back > 0) log::info("kernel", back, " stored messages put back into their mailboxes");
}

// A revived parent is told again how its children that ended before the restart ended, so that
// its proc.wait for one answers as it would have; a child it had already waited for (its
// proc.wait result is recorded) is left out, as it would have been.
void Kernel::restore_exited_children(const std::vector<memory::JournalProcess>& revived) {
  if (!dispatcher_) return;
  // Revived parent -> the children its recorded proc.wait results say it was told about (a wait
  // that timed out or failed leaves the child to be waited for again).
  const std::map<Pid, std::set<Pid>> waited = recorded_numbers<Pid>(
      *loop_, revived, "proc.wait", [](const nlohmann::json& args, const nlohmann::json& result) {
        return args.is_object() && args.contains("pid") && args["pid"].is_number_unsigned() &&
                       result.is_object() && result.contains("reason")
                   ? std::optional<Pid>(args["pid"].get<Pid>())
                   : std::nullopt;
      });
  if (waited.empty()) return;
  for (const nlohmann::json& record : journaled_exits(kJournaledExits)) {
    const Pid parent = record.value("parent", Pid{0});
    const Pid child = record.value("pid", Pid{0});
    auto w = waited.find(parent);
    if (w == waited.end() || w->second.count(child) || !record.contains("exit") ||
        !record["exit"].is_object())
      continue;
    const nlohmann::json& e = record["exit"];
    const std::optional<ExitReason> reason = exit_reason_from_name(e.value("reason", ""));
    if (!reason) continue;
    const ExitStatus status{*reason, e.value("answer", ""), e.value("error", "")};
    if (Status st = dispatcher_->restore_exited_child(parent, child, status); !st.ok())
      log::warn("kernel", "process ", parent, ": how child ", child,
                " ended is not known to it again: ", st.error().message());
  }
}

Status Kernel::resume_one(const memory::JournalProcess& jp) {
  const auto json = nlohmann::json::parse(jp.job, nullptr, false);
  if (!json.is_object()) return make_error(Errc::corrupt, "its journaled job is not a JSON object");
  // A child is revived under its parent, revived before it, from which its capabilities are
  // derived again; a child whose parent did not come back cannot be (its capabilities hung off
  // the parent's).
  Pid parent = 0;
  nlohmann::json job_json = json;
  if (json.contains("parent")) {
    if (!json["parent"].is_number_unsigned())
      return make_error(Errc::corrupt, "its journaled parent is not a pid: ", json["parent"].dump());
    parent = json["parent"].get<Pid>();
    const Process* p = loop_->process(parent);
    if (p == nullptr || p->exit)
      return make_error(Errc::unavailable, "its parent, process ", parent,
                        ", did not come back, and a child's capabilities derive from its parent's");
    job_json.erase("parent");
  }
  JobSpec job = ICAM_TRY(job_from_json(job_json, "its journaled job"));
  if (!job.model.empty() && job.model != model_path_)
    return make_error(Errc::unsupported, "it ran on model '", job.model, "', not '", model_path_,
                      "'");
  AgentLoop::Revival r;
  r.pid = jp.pid;
  r.parent = parent;
  r.job = std::move(job);
  r.owner_uid = jp.owner_uid;
  r.transcript = jp.transcript;
  r.tool_results = jp.tool_results;
  r.context = jp.context;
  r.journaled = true;
  r.page_table = jp.page_table;
  ICAM_TRY(loop_->revive(std::move(r)));
  return ok_status();
}

Result<memory::JournalCheckpoint> Kernel::checkpoint(Pid pid, const std::string& label) {
  if (!journal_)
    return make_error(Errc::unsupported, "this kernel keeps no process journal: no checkpoints");
  if (loop_->process(pid)) ICAM_TRY(loop_->commit_process(pid));
  const int64_t id = ICAM_TRY(journal_->checkpoint(pid, label));
  const memory::JournalProcess jp = ICAM_TRY(journal_->load(pid));
  for (const memory::JournalCheckpoint& c : jp.checkpoints)
    if (c.id == id) return c;
  return make_error(Errc::internal, "checkpoint ", id, " of process ", pid, " vanished");
}

Result<int64_t> Kernel::find_checkpoint(Pid pid, const std::string& label) const {
  if (!journal_)
    return make_error(Errc::unsupported, "this kernel keeps no process journal: no checkpoints");
  return journal_->find_checkpoint(pid, label);
}

Result<Pid> Kernel::restore(int64_t checkpoint_id, std::optional<uint32_t> as_uid) {
  if (!journal_)
    return make_error(Errc::unsupported, "this kernel keeps no process journal: no checkpoints");
  const uint64_t pid = ICAM_TRY(journal_->checkpoint_pid(checkpoint_id));
  memory::JournalProcess jp = ICAM_TRY(journal_->load(pid));
  // Another user's checkpoint does not exist for the caller (as their processes do not).
  if (as_uid && *as_uid != 0 && *as_uid != jp.owner_uid)
    return make_error(Errc::not_found, "no checkpoint ", checkpoint_id);
  memory::JournalCheckpoint c = ICAM_TRY(journal_->restore(pid, checkpoint_id));
  const auto json = nlohmann::json::parse(jp.job, nullptr, false);
  if (!json.is_object())
    return make_error(Errc::corrupt, "process ", pid, ": its journaled job is not a JSON object");
  if (json.contains("parent"))
    return make_error(Errc::unsupported, "process ", pid,
                      " is a child process: its checkpoints cannot be restored on their own");
  JobSpec job = ICAM_TRY(job_from_json(json, str_cat("the journaled job of process ", pid)));
  if (!job.model.empty() && job.model != model_path_)
    return make_error(Errc::unsupported, "process ", pid, " ran on model '", job.model,
                      "', not the kernel's '", model_path_, "'");
  AgentLoop::Revival r;
  r.job = std::move(job);
  r.owner_uid = jp.owner_uid;
  // The checkpoint's own transcript and results, as they were when it was taken: the process
  // may have been compacted since (its transcript replaced, its kept results moved).
  r.transcript = std::move(c.transcript);
  r.tool_results = std::move(c.tool_results);
  r.context = c.context;
  r.journaled = false;
  return loop_->revive(std::move(r));
}

std::vector<nlohmann::json> Kernel::resuming_records() const {
  std::vector<nlohmann::json> out;
  for (const memory::JournalProcess& jp : to_resume_) {
    Process p = failed_record(jp, "");
    p.exit.reset();
    p.state = ProcessState::ready;
    p.state_since = p.started = AgentLoop::Clock::now();
    out.push_back(to_json(p));
  }
  return out;
}

std::vector<nlohmann::json> Kernel::journaled_exits(size_t limit) const {
  std::vector<nlohmann::json> out;
  if (!journal_) return out;
  auto records = journal_->exit_records(limit);
  if (!records.ok()) {
    log::warn("kernel", "exited processes not read from the journal: ", records.error().message());
    return out;
  }
  for (const auto& [pid, text] : *records) {
    auto record = nlohmann::json::parse(text, nullptr, false);
    if (record.is_object() && record.contains("pid") && record.contains("owner_uid") &&
        record.value("state", "") == "exited")
      out.push_back(std::move(record));
  }
  return out;
}

std::optional<Kernel::ProcessMemory> Kernel::process_memory(Pid pid) const {
  const std::optional<sched::SequenceId> id = loop_->sequence_of(pid);
  if (!id) return std::nullopt;
  auto info = scheduler_->info(*id);
  if (!info.ok()) return std::nullopt;
  const int64_t pt = backend_->kv_pool().page_tokens();
  ProcessMemory m;
  m.context_tokens = info->context_tokens;
  m.cached_tokens = info->cached_tokens;
  m.resident_pages = info->kv_pages;
  m.out_pages = std::max<int64_t>(0, (info->context_tokens + pt - 1) / pt - info->kv_pages);
  m.shared_tokens = info->stats.shared_tokens;
  return m;
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
  if (!to_resume_.empty()) resume_journaled();
  const auto now = AgentLoop::Clock::now();
  loop_->tick(now);  // pending calls past their deadline complete (timed out)
  loop_->deliver_completions();
  loop_->check_wall_budgets(now);
  if (!scheduler_->has_work()) return ok_status();
  Status st = scheduler_->step();
  if (!st.ok()) loop_->fail_all(st.error().message());
  Status committed = loop_->commit_journal();
  if (!committed.ok()) {
    log::error("kernel", "journal commit failed; the step's processes were ended: ",
               committed.error().message());
    if (st.ok()) return committed;
  }
  return st;
}

Status Kernel::run_until_idle(const AgentCallbacks& callbacks) {
  set_callbacks(callbacks);
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
  set_callbacks({});
  return result;
}

}  // namespace icam::kernel
