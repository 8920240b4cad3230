#include "kernel/daemon/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include "common/log.h"
#include "kernel/daemon/api.h"
#include "kernel/daemon/engine_thread.h"
#include "kernel/daemon/process_directory.h"
#include "kernel/daemon/protocol.h"
#include "kernel/job.h"
#include "syscalls/capability_store.h"

namespace icam::daemon {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kVersion = "0.1.0";

// Generated tokens per second over the last few seconds, from the engine's counters.
class RateMeter {
 public:
  void add(Clock::time_point t, uint64_t total) {
    samples_.push_back({t, total});
    while (samples_.size() > 2 && t - samples_.front().first > std::chrono::seconds(3))
      samples_.pop_front();
  }
  double per_second(Clock::time_point now) const {
    if (samples_.empty()) return 0;
    // With no fresh sample the engine has been idle: nothing is being generated.
    if (now - samples_.back().first > std::chrono::seconds(1)) return 0;
    const auto& [t0, n0] = samples_.front();
    const auto& [t1, n1] = samples_.back();
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    return seconds > 0 ? static_cast<double>(n1 - n0) / seconds : 0;
  }

 private:
  std::deque<std::pair<Clock::time_point, uint64_t>> samples_;
};

Result<kernel::Pid> pid_param(const json& params) {
  if (!params.contains("pid"))
    return make_error(Errc::invalid_argument, "params.pid: missing (a process id)");
  const json& v = params["pid"];
  if (!v.is_number_unsigned() || v.get<uint64_t>() == 0)
    return make_error(Errc::invalid_argument, "params.pid: expected a positive integer");
  return v.get<kernel::Pid>();
}

Result<bool> bool_param(const json& params, const char* name) {
  if (!params.contains(name)) return false;
  if (!params[name].is_boolean())
    return make_error(Errc::invalid_argument, "params.", name, ": expected true or false");
  return params[name].get<bool>();
}

Status check_params(const json& params, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : params.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) return make_error(Errc::invalid_argument, "params.", key, ": unknown parameter");
  }
  return ok_status();
}

Error no_process(kernel::Pid pid) {
  return make_error(Errc::not_found, "no process ", pid);
}

// Creates the socket's directory (mode 0700 when it creates it) and clears a stale socket file.
Status prepare_socket_path(const std::string& path) {
  if (path.empty()) return make_error(Errc::invalid_argument, "socket path is empty");
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return make_error(Errc::invalid_argument, "socket path '", path, "' is longer than ",
                      sizeof(sockaddr_un::sun_path) - 1, " bytes");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (ec)
        return make_error(Errc::io, "cannot create the socket directory '", dir.string(),
                          "': ", ec.message());
      ::chmod(dir.c_str(), 0700);
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return ok_status();  // nothing there
  if (!S_ISSOCK(st.st_mode))
    return make_error(Errc::invalid_argument, "'", path, "' exists and is not a socket");
  // A socket file: in use if a daemon answers on it, stale otherwise.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Errc::io, "socket(): ", std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  const bool answered = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  if (answered)
    return make_error(Errc::unavailable, "another daemon is already listening on '", path, "'");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return make_error(Errc::io, "cannot remove the stale socket '", path,
                      "': ", std::strerror(errno));
  return ok_status();
}

}  // namespace

// ----------------------------------------------------------------------------------------------

class Session;

struct Server::Impl {
  ServerOptions options;
  asio::io_context io;
  local::acceptor acceptor{io};
  asio::signal_set signals{io};
  asio::steady_timer drain_timer{io};
  std::unique_ptr<EngineThread> engine;
  ProcessDirectory directory;
  std::map<SessionId, std::shared_ptr<Session>> sessions;
  SessionId next_session = 1;
  RateMeter rate;
  json last_stats = nullptr;
  json model_info;
  Clock::time_point started = Clock::now();
  uint32_t daemon_uid = static_cast<uint32_t>(::getuid());

  bool draining = false;
  bool finishing = false;
  bool drain_cancelled = false;
  size_t spawns_in_flight = 0;

  void accept_next();
  void on_report(EngineReport report);
  void handle(const std::shared_ptr<Session>& session, Request request);
  Result<json> dispatch(const std::shared_ptr<Session>& session, const Request& request,
                        bool& answered_later);
  void begin_drain(const char* why);
  void cancel_all();
  void maybe_finish();
  void close_session(SessionId id);
  json info() const;
};

// One client connection.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& server, local::socket socket, SessionId id)
      : server_(server), socket_(std::move(socket)), id_(id), in_(kMaxMessageBytes + 1) {}

  SessionId id() const { return id_; }
  uint32_t uid() const { return uid_; }
  bool closed() const { return closed_; }
  size_t pending = 0;  // unanswered waits and follows

  void start() {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      log::warn("icamd", "cannot read peer credentials: ", std::strerror(errno));
      close();
      return;
    }
    uid_ = cred.uid;
    peer_pid_ = cred.pid;
    log::debug("icamd", "session ", id_, ": uid ", uid_, ", pid ", peer_pid_);
    read_next();
  }

  // Queues a message. A client that lets more than the backlog bound pile up is disconnected.
  void send(std::string message) {
    if (closed_) return;
    backlog_ += message.size();
    out_.push_back(std::move(message));
    if (backlog_ > server_.options.max_session_backlog) {
      log::warn("icamd", "session ", id_, " (uid ", uid_, ") stopped reading; disconnected");
      close();
      return;
    }
    if (!writing_) write_next();
  }

  // Sends what is queued, then closes.
  void close_after_flush() {
    close_when_flushed_ = true;
    if (!writing_) close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
    server_.close_session(id_);
  }

 private:
  void read_next() {
    auto self = shared_from_this();
    asio::async_read_until(socket_, in_, '\n',
                           [self](const boost::system::error_code& ec, size_t n) {
                             self->on_read(ec, n);
                           });
  }

  void on_read(const boost::system::error_code& ec, size_t n) {
    if (closed_) return;
    if (ec == asio::error::not_found) {
      send(error_line(nullptr, rpc_code::invalid_request,
                      str_cat("message longer than ", kMaxMessageBytes, " bytes"),
                      Errc::resource_exhausted));
      close_after_flush();
      return;
    }
    if (ec) {  // end of file or a reset: the client is gone
      close();
      return;
    }
    std::string line(asio::buffers_begin(in_.data()), asio::buffers_begin(in_.data()) + n - 1);
    in_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) {
      auto parsed = parse_request(line);
      if (auto* bad = std::get_if<RequestError>(&parsed)) {
        send(error_line(bad->id, bad->code, bad->message));
      } else {
        server_.handle(shared_from_this(), std::move(std::get<Request>(parsed)));
      }
    }
    if (!closed_ && !close_when_flushed_) read_next();
  }

  void write_next() {
    if (out_.empty()) {
      writing_ = false;
      if (close_when_flushed_) close();
      return;
    }
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_.front()),
                      [self](const boost::system::error_code& ec, size_t) {
                        if (self->closed_) return;
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->backlog_ -= self->out_.front().size();
                        self->out_.pop_front();
                        self->write_next();
                      });
  }

  Server::Impl& server_;
  local::socket socket_;
  SessionId id_;
  asio::streambuf in_;
  std::deque<std::string> out_;
  size_t backlog_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool close_when_flushed_ = false;
  uint32_t uid_ = 0;
  pid_t peer_pid_ = 0;
};

// ----------------------------------------------------------------------------------------------

void Server::Impl::accept_next() {
  acceptor.async_accept([this](const boost::system::error_code& ec, local::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        log::warn("icamd", "accept failed: ", ec.message());
        accept_next();
      }
      return;
    }
    const SessionId id = next_session++;
    auto session = std::make_shared<Session>(*this, std::move(socket), id);
    if (sessions.size() >= options.max_sessions) {
      sessions.emplace(id, session);
      session->send(error_line(nullptr, rpc_code::resource_exhausted,
                               str_cat("too many connections (", options.max_sessions, ")"),
                               Errc::resource_exhausted));
      session->close_after_flush();
    } else {
      sessions.emplace(id, session);
      session->start();
    }
    accept_next();
  });
}

void Server::Impl::close_session(SessionId id) {
  directory.drop_session(id);
  // Erase later: the session may be deep inside its own callback.
  asio::post(io, [this, id] {
    sessions.erase(id);
    if (finishing && sessions.empty()) io.stop();
  });
}

json Server::Impl::info() const {
  json j = options.info;
  j["api_version"] = kApiVersion;
  j["version"] = kVersion;
  j["pid"] = ::getpid();
  j["uid"] = daemon_uid;
  j["model"] = model_info;
  j["uptime_s"] = std::chrono::duration<double>(Clock::now() - started).count();
  j["draining"] = draining;
  return j;
}

void Server::Impl::on_report(EngineReport report) {
  for (auto& [pid, text] : report.text) directory.append_output(pid, text);
  for (const json& record : report.records) directory.update(record);
  if (!report.stats.is_null()) {
    rate.add(Clock::now(), report.stats["scheduler"]["sampled_tokens"].get<uint64_t>());
    last_stats = std::move(report.stats);
  }
  maybe_finish();
}

void Server::Impl::handle(const std::shared_ptr<Session>& session, Request request) {
  if (!is_method(request.method)) {
    if (request.id)
      session->send(error_line(*request.id, rpc_code::method_not_found,
                               "unknown method '" + request.method + "'", Errc::unsupported));
    return;
  }
  bool answered_later = false;
  Result<json> result = dispatch(session, request, answered_later);
  if (answered_later || !request.id) return;  // notifications get no response
  if (result.ok()) {
    session->send(response_line(*request.id, *result));
  } else {
    session->send(error_line(*request.id, result.error()));
  }
}

Result<json> Server::Impl::dispatch(const std::shared_ptr<Session>& session, const Request& request,
                                    bool& answered_later) {
  const std::string& method = request.method;
  const json& params = request.params;
  const uint32_t uid = session->uid();
  const json id = request.id.value_or(json(nullptr));
  // Replies that come later go to the session if it is still there.
  std::weak_ptr<Session> weak = session;
  auto reply_later = [weak, id, has_id = request.id.has_value()](Result<json> result) {
    auto s = weak.lock();
    if (!s || !has_id) return;
    s->send(result.ok() ? response_line(id, *result) : error_line(id, result.error()));
  };

  if (method == "daemon.info") {
    ICAM_TRY(check_params(params, {}));
    return info();
  }
  if (method == "daemon.shutdown") {
    ICAM_TRY(check_params(params, {}));
    if (uid != 0 && uid != daemon_uid)
      return make_error(Errc::permission_denied,
                        "only the daemon's user or root may shut the daemon down");
    begin_drain("daemon.shutdown");
    return json{{"draining", true}};
  }
  if (method == "proc.run") {
    ICAM_TRY(check_params(params, {"job"}));
    if (!params.contains("job"))
      return make_error(Errc::invalid_argument, "params.job: missing (the job to run)");
    kernel::JobSpec job = ICAM_TRY(kernel::job_from_json(params["job"], "params.job"));
    if (draining)
      return make_error(Errc::unavailable, "the daemon is shutting down; not starting new jobs");
    if (directory.live_total() + spawns_in_flight >= options.max_processes)
      return make_error(Errc::resource_exhausted, "the daemon already runs ",
                        options.max_processes, " processes (its limit)");
    if (directory.live(uid) + spawns_in_flight >= options.max_per_user)
      return make_error(Errc::resource_exhausted, "user ", uid, " already runs ",
                        options.max_per_user, " processes (the per-user limit)");
    ++spawns_in_flight;
    answered_later = true;
    engine->post([this, job = std::move(job), uid, reply_later](kernel::Kernel& k) {
      auto pid = k.spawn(job, 0, uid);
      json record = pid.ok() ? kernel::to_json(*k.process(*pid)) : json(nullptr);
      Status status = pid.ok() ? ok_status() : Status(pid.error());
      asio::post(io, [this, record = std::move(record), status, reply_later] {
        --spawns_in_flight;
        if (!status.ok()) {
          reply_later(status.error());
        } else {
          directory.update(record);
          reply_later(json{{"pid", record["pid"]}, {"process", record}});
        }
        maybe_finish();
      });
    });
    return json(nullptr);
  }
  if (method == "proc.list") {
    ICAM_TRY(check_params(params, {"all"}));
    const bool all = ICAM_TRY(bool_param(params, "all"));
    if (all && uid != 0)
      return make_error(Errc::permission_denied, "params.all: only root may list every user's "
                                                 "processes");
    json list = json::array();
    for (const ProcessEntry* e : directory.list(uid, all)) list.push_back(e->record);
    return json{{"processes", std::move(list)}};
  }
  if (method == "proc.get") {
    ICAM_TRY(check_params(params, {"pid"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    ProcessEntry* e = directory.find(pid, uid);
    if (!e) return no_process(pid);
    return json{{"process", e->record}};
  }
  if (method == "proc.kill") {
    ICAM_TRY(check_params(params, {"pid"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    ProcessEntry* e = directory.find(pid, uid);
    if (!e) return no_process(pid);
    if (e->exited)
      return make_error(Errc::invalid_argument, "process ", pid, " has already exited");
    answered_later = true;
    engine->post([this, pid, reply_later](kernel::Kernel& k) {
      Status st = k.cancel(pid);
      const kernel::Process* p = k.process(pid);
      json record = p ? kernel::to_json(*p) : json(nullptr);
      engine->after_publish([this, st, record = std::move(record), reply_later] {
        asio::post(io, [st, record, reply_later] {
          if (!st.ok()) {
            reply_later(st.error());
          } else {
            reply_later(json{{"process", record}});
          }
        });
      });
    });
    return json(nullptr);
  }
  if (method == "proc.approve" || method == "proc.deny") {
    const bool approve = method == "proc.approve";
    const char* text_key = approve ? "answer" : "reason";
    ICAM_TRY(check_params(params, {"pid", text_key}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    std::string text = approve ? "yes" : "no";
    if (params.contains(text_key)) {
      if (!params[text_key].is_string() || params[text_key].get<std::string>().size() > 64 * 1024)
        return make_error(Errc::invalid_argument, "params.", text_key,
                          ": expected a string of at most 64 KiB");
      text = params[text_key].get<std::string>();
    }
    // The directory shows a process only to its owner and root: nobody else can answer for it.
    ProcessEntry* e = directory.find(pid, uid);
    if (!e) return no_process(pid);
    if (e->exited)
      return make_error(Errc::invalid_argument, "process ", pid, " has already exited");
    answered_later = true;
    engine->post([this, pid, approve, text = std::move(text), reply_later](kernel::Kernel& k) {
      Status st = k.answer_human(pid, approve, text);
      engine->after_publish([this, st, pid, approve, reply_later] {
        asio::post(io, [st, pid, approve, reply_later] {
          if (!st.ok()) {
            reply_later(st.error());
          } else {
            reply_later(json{{"pid", pid}, {"approved", approve}});
          }
        });
      });
    });
    return json(nullptr);
  }
  if (method == "proc.caps") {
    ICAM_TRY(check_params(params, {"pid"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    if (!directory.find(pid, uid)) return no_process(pid);
    answered_later = true;
    // The capability store lives with the kernel, on the engine thread.
    engine->post([this, pid, reply_later](kernel::Kernel& k) {
      json entries = json::array();
      for (const auto& e : k.capabilities(pid)) entries.push_back(syscalls::provenance_to_json(e));
      asio::post(io, [pid, entries = std::move(entries), reply_later] {
        reply_later(json{{"pid", pid}, {"capabilities", entries}});
      });
    });
    return json(nullptr);
  }
  if (method == "proc.wait") {
    ICAM_TRY(check_params(params, {"pid", "timeout_s"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    double timeout = -1;
    if (params.contains("timeout_s")) {
      if (!params["timeout_s"].is_number() || params["timeout_s"].get<double>() < 0 ||
          params["timeout_s"].get<double>() > 1e7)
        return make_error(Errc::invalid_argument,
                          "params.timeout_s: expected a number of seconds from 0 to 1e7");
      timeout = params["timeout_s"].get<double>();
    }
    ProcessEntry* e = directory.find(pid, uid);
    if (!e) return no_process(pid);
    if (e->exited) return json{{"process", e->record}};
    if (session->pending >= options.max_pending_per_session)
      return make_error(Errc::resource_exhausted, "too many waits and follows on this connection");
    answered_later = true;
    ++session->pending;
    auto timer = std::make_shared<asio::steady_timer>(io);
    const uint64_t waiter = directory.add_waiter(
        *e, session->id(), [weak, reply_later, timer](const json& record) {
          timer->cancel();
          if (auto s = weak.lock()) --s->pending;
          reply_later(json{{"process", record}});
        });
    if (timeout >= 0) {
      timer->expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(timeout)));
      timer->async_wait([this, pid, waiter, weak, id, timeout](
                            const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: the process exited first
        if (!directory.remove_waiter(pid, waiter)) return;
        auto s = weak.lock();
        if (!s) return;
        --s->pending;
        s->send(error_line(id, make_error(Errc::timed_out, "process ", pid,
                                          " has not exited after ", timeout, " s")));
      });
    }
    return json(nullptr);
  }
  if (method == "proc.logs") {
    ICAM_TRY(check_params(params, {"pid", "offset", "follow"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    const bool follow = ICAM_TRY(bool_param(params, "follow"));
    uint64_t offset = 0;
    if (params.contains("offset")) {
      if (!params["offset"].is_number_unsigned())
        return make_error(Errc::invalid_argument, "params.offset: expected a byte offset >= 0");
      offset = params["offset"].get<uint64_t>();
    }
    ProcessEntry* e = directory.find(pid, uid);
    if (!e) return no_process(pid);
    offset = std::clamp(offset, e->dropped, e->end());
    const std::string text = e->output.substr(offset - e->dropped);
    if (!follow)
      return json{{"text", text}, {"offset", offset}, {"end", e->end()}, {"exited", e->exited}};
    if (!text.empty())
      session->send(notification_line("proc.output",
                                      {{"pid", pid}, {"offset", offset}, {"text", text}}));
    if (e->exited) return json{{"process", e->record}};
    if (session->pending >= options.max_pending_per_session)
      return make_error(Errc::resource_exhausted, "too many waits and follows on this connection");
    answered_later = true;
    ++session->pending;
    directory.add_follower(
        *e, session->id(),
        [weak, pid](uint64_t at, std::string_view more) {
          if (auto s = weak.lock())
            s->send(notification_line("proc.output",
                                      {{"pid", pid}, {"offset", at}, {"text", more}}));
        },
        [weak, reply_later](const json& record) {
          if (auto s = weak.lock()) --s->pending;
          reply_later(json{{"process", record}});
        });
    return json(nullptr);
  }
  if (method == "proc.checkpoint") {
    ICAM_TRY(check_params(params, {"pid", "label"}));
    const kernel::Pid pid = ICAM_TRY(pid_param(params));
    std::string label = "checkpoint";
    if (params.contains("label")) {
      if (!params["label"].is_string())
        return make_error(Errc::invalid_argument, "params.label: expected a string");
      label = params["label"].get<std::string>();
    }
    if (!directory.find(pid, uid)) return no_process(pid);
    answered_later = true;
    engine->post([this, pid, label, reply_later](kernel::Kernel& k) {
      auto c = k.checkpoint(pid, label);
      Result<json> result = c.ok() ? Result<json>(json{{"pid", pid},
                                                       {"checkpoint",
                                                        {{"id", c->id},
                                                         {"label", c->label},
                                                         {"tokens", c->tokens},
                                                         {"tool_calls", c->tool_calls}}}})
                                   : Result<json>(c.error());
      asio::post(io, [result = std::move(result), reply_later] { reply_later(result); });
    });
    return json(nullptr);
  }
  if (method == "proc.restore") {
    ICAM_TRY(check_params(params, {"checkpoint", "pid", "label"}));
    int64_t checkpoint = 0;
    kernel::Pid from = 0;
    std::string label;
    if (params.contains("checkpoint")) {
      if (params.contains("pid") || params.contains("label"))
        return make_error(Errc::invalid_argument,
                          "params: either checkpoint, or pid and label, not both");
      if (!params["checkpoint"].is_number_unsigned() || params["checkpoint"].get<int64_t>() <= 0)
        return make_error(Errc::invalid_argument,
                          "params.checkpoint: expected a positive integer (a checkpoint id)");
      checkpoint = params["checkpoint"].get<int64_t>();
    } else {
      from = ICAM_TRY(pid_param(params));
      if (!params.contains("label") || !params["label"].is_string())
        return make_error(Errc::invalid_argument,
                          "params.label: expected a string (or give params.checkpoint)");
      label = params["label"].get<std::string>();
    }
    if (draining)
      return make_error(Errc::unavailable, "the daemon is shutting down; not starting new jobs");
    if (directory.live_total() + spawns_in_flight >= options.max_processes)
      return make_error(Errc::resource_exhausted, "the daemon already runs ",
                        options.max_processes, " processes (its limit)");
    if (directory.live(uid) + spawns_in_flight >= options.max_per_user)
      return make_error(Errc::resource_exhausted, "user ", uid, " already runs ",
                        options.max_per_user, " processes (the per-user limit)");
    ++spawns_in_flight;
    answered_later = true;
    engine->post([this, checkpoint, from, label, uid, reply_later](kernel::Kernel& k) mutable {
      Result<kernel::Pid> pid = make_error(Errc::internal, "not restored");
      if (checkpoint == 0) {
        auto found = k.find_checkpoint(from, label);
        // Another user's process has no checkpoints as far as the caller can tell.
        if (found.ok() && k.journal()) {
          auto owner = k.journal()->load(from);
          if (owner.ok() && uid != 0 && owner->owner_uid != uid)
            found = make_error(Errc::not_found, "process ", from, " has no checkpoint labelled '",
                               label, "'");
        }
        if (found.ok()) checkpoint = *found;
        else pid = found.error();
      }
      if (checkpoint != 0) pid = k.restore(checkpoint, uid);
      json record = pid.ok() ? kernel::to_json(*k.process(*pid)) : json(nullptr);
      Status status = pid.ok() ? ok_status() : Status(pid.error());
      asio::post(io, [this, record = std::move(record), status, checkpoint, reply_later] {
        --spawns_in_flight;
        if (!status.ok()) {
          reply_later(status.error());
        } else {
          directory.update(record);
          reply_later(json{{"pid", record["pid"]}, {"process", record}, {"checkpoint", checkpoint}});
        }
        maybe_finish();
      });
    });
    return json(nullptr);
  }
  if (method == "kernel.stats") {
    ICAM_TRY(check_params(params, {}));
    json stats = last_stats.is_null() ? json::object() : last_stats;
    stats["tokens_per_s"] = rate.per_second(Clock::now());
    stats["uptime_s"] = std::chrono::duration<double>(Clock::now() - started).count();
    stats["draining"] = draining;
    stats["processes"]["exited"] = directory.exited_total();
    if (uid != 0) stats["processes"]["yours_live"] = directory.live(uid);
    return stats;
  }
  return make_error(Errc::unsupported, "unknown method '", method, "'");
}

void Server::Impl::begin_drain(const char* why) {
  if (draining) {
    // Asked again (a second signal): do not wait for the grace period.
    cancel_all();
    return;
  }
  draining = true;
  log::info("icamd", "draining (", why, "): ", directory.live_total(), " processes running, ",
            options.drain_seconds, " s to finish");
  drain_timer.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.drain_seconds)));
  drain_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) cancel_all();
  });
  maybe_finish();
}

void Server::Impl::cancel_all() {
  if (drain_cancelled) return;
  drain_cancelled = true;
  log::info("icamd", "cancelling ", directory.live_total(), " processes still running");
  engine->post([](kernel::Kernel& k) {
    for (kernel::Pid pid : k.pids()) {
      const kernel::Process* p = k.process(pid);
      if (p && !p->exit) (void)k.cancel(pid);
    }
  });
}

void Server::Impl::maybe_finish() {
  if (!draining || finishing || spawns_in_flight > 0 || directory.live_total() > 0) return;
  finishing = true;
  drain_timer.cancel();
  log::info("icamd", "no process left; stopping");
  boost::system::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  ::unlink(options.socket_path.c_str());
  // Let each session send what it has queued (exit records for waiters, and the answer of the
  // request being handled now, hence the post), then stop; a client that does not read gets 2 s.
  asio::post(io, [this] {
    if (sessions.empty()) {
      io.stop();
      return;
    }
    for (auto& [sid, s] : std::map(sessions)) s->close_after_flush();
    auto stop_timer = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(2));
    stop_timer->async_wait([this, stop_timer](const boost::system::error_code&) { io.stop(); });
  });
}

// ----------------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (impl_ && impl_->engine) impl_->engine->stop();
}

Result<std::unique_ptr<Server>> Server::create(const ServerOptions& options,
                                               std::unique_ptr<kernel::Kernel> kernel) {
  if (!kernel) return make_error(Errc::invalid_argument, "icamd: no kernel");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ICAM_TRY(prepare_socket_path(options.socket_path));

  boost::system::error_code ec;
  impl->acceptor.open(local(), ec);
  if (!ec) {
    // Only the owner may connect: the socket is created 0600 (umask) and chmod-ed to be sure.
    const mode_t old_mask = ::umask(0177);
    impl->acceptor.bind(local::endpoint(options.socket_path), ec);
    ::umask(old_mask);
  }
  if (!ec) ::chmod(options.socket_path.c_str(), 0600);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(Errc::io, "cannot listen on '", options.socket_path, "': ", ec.message());

  const llm::ModelConfig& mc = kernel->model().config();
  impl->model_info = {{"path", kernel->model_path()},
                      {"architecture", llm::architecture_name(mc.arch)},
                      {"context_length", mc.context_length},
                      {"chat_family", llm::chat_family_name(kernel->model().chat_family())}};

  // Processes that exited before a restart still answer ps and wait (the journal keeps their
  // records); those it left running are revived by the kernel's first step.
  for (const json& record : kernel->journaled_exits(kernel::kJournaledExits)) impl->directory.update(record);
  for (const json& record : kernel->resuming_records()) impl->directory.update(record);

  Impl* raw = impl.get();
  impl->engine = std::make_unique<EngineThread>(std::move(kernel), [raw](EngineReport report) {
    asio::post(raw->io, [raw, report = std::move(report)]() mutable {
      raw->on_report(std::move(report));
    });
  });
  // A no-op command makes the engine publish its counters once, so stats answer from the start.
  impl->engine->post([](kernel::Kernel&) {});

  impl->signals.add(SIGTERM);
  impl->signals.add(SIGINT);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::run() {
  Impl& s = *impl_;
  std::function<void()> wait_signal = [&] {
    s.signals.async_wait([&](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      s.begin_drain(signal == SIGTERM ? "SIGTERM" : "SIGINT");
      wait_signal();
    });
  };
  wait_signal();
  s.accept_next();
  log::info("icamd", "listening on ", s.options.socket_path, " (API v", kApiVersion, ")");
  try {
    s.io.run();
  } catch (const std::exception& e) {
    // Handlers do not throw by design; this is the last line of defence, not control flow.
    s.engine->stop();
    return make_error(Errc::internal, "icamd event loop: ", e.what());
  }
  s.engine->stop();
  ::unlink(s.options.socket_path.c_str());
  return ok_status();
}

void Server::request_shutdown() {
  Impl* s = impl_.get();
  asio::post(s->io, [s] { s->begin_drain("request"); });
}

}  // namespace icam::daemon
