#include "sandbox/driver_client.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace icam::sandbox {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60'000));
}

// write() to a pipe whose reader died raises SIGPIPE, which would kill icam. Block it on this
// thread for the write and swallow the one it raised, leaving the process's disposition alone.
ssize_t write_no_sigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  ssize_t n = ::write(fd, data, size);
  const int error = errno;
  if (n < 0 && error == EPIPE) {
    const timespec zero{0, 0};
    sigtimedwait(&pipe_only, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = error;
  return n;
}

Errc rpc_errc(int code) {
  switch (code) {
    case driver::kMethodNotFound: return Errc::unsupported;
    case driver::kInvalidParams:
    case driver::kInvalidRequest: return Errc::invalid_argument;
    default: return Errc::unavailable;
  }
}

}  // namespace

Result<DriverClient> DriverClient::start(const SandboxPolicy& policy,
                                         const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env,
                                         DriverClientOptions options) {
  DriverClient client(ICAM_TRY(launch_sandboxed(policy, argv, env)), options);
  ICAM_TRY(client.initialize());
  return client;
}

DriverClient::DriverClient(DriverProcess process, DriverClientOptions options)
    : process_(std::move(process)), options_(options), lines_(options.max_line_bytes) {}

DriverClient::~DriverClient() {
  if (process_.valid() && !process_.exited()) shutdown(std::chrono::milliseconds(100));
}

Status DriverClient::initialize() {
  const json params = {{"protocolVersion", driver::kProtocolVersion},
                       {"capabilities", json::object()},
                       {"clientInfo", {{"name", "icam"}, {"version", "0.1.0"}}}};
  driver::Message answer = ICAM_TRY(exchange("initialize", params, options_.handshake_timeout));
  if (answer.kind == driver::Message::Kind::error) {
    if (answer.error_code == driver::kMethodNotFound) {  // a stateless driver
      stateless_ = true;
      return ok_status();
    }
    return make_error(rpc_errc(answer.error_code), "driver refused initialize: ", answer.error_message);
  }
  if (!answer.result.is_object()) return fail(Errc::corrupt, "initialize result is not an object");
  if (auto version = answer.result.find("protocolVersion"); version != answer.result.end() && version->is_string()) {
    protocol_version_ = version->get<std::string>();
  }
  if (auto info = answer.result.find("serverInfo"); info != answer.result.end()) server_info_ = *info;
  return send_line(driver::encode_notification("notifications/initialized", nullptr),
                   Clock::now() + options_.call_timeout);
}

Result<std::vector<driver::ToolInfo>> DriverClient::list_tools() {
  std::vector<driver::ToolInfo> tools;
  json params = nullptr;
  for (int page = 0; page < 100; ++page) {  // bounded: a driver cannot page forever
    json result = ICAM_TRY(request("tools/list", params));
    auto list = result.find("tools");
    if (!result.is_object() || list == result.end() || !list->is_array()) {
      return fail(Errc::corrupt, "tools/list result has no tools array");
    }
    for (const json& entry : *list) {
      auto tool = driver::tool_info_from_json(entry);
      if (!tool.ok()) return fail(Errc::corrupt, "tools/list: " + tool.error().message());
      tools.push_back(std::move(tool).value());
    }
    auto cursor = result.find("nextCursor");
    if (cursor == result.end() || !cursor->is_string()) return tools;
    params = {{"cursor", *cursor}};
  }
  return fail(Errc::corrupt, "tools/list: more than 100 pages");
}

Result<driver::ToolOutput> DriverClient::call_tool(const std::string& name, const json& arguments,
                                                   std::optional<std::chrono::milliseconds> timeout) {
  json result = ICAM_TRY(request("tools/call", {{"name", name}, {"arguments", arguments}}, timeout));
  auto output = driver::tool_output_from_json(result);
  if (!output.ok()) return fail(Errc::corrupt, "tools/call " + name + ": " + output.error().message());
  return output;
}

Status DriverClient::ping() {
  ICAM_TRY(request("ping", nullptr));
  return ok_status();
}

Result<json> DriverClient::request(const std::string& method, const json& params,
                                   std::optional<std::chrono::milliseconds> timeout) {
  driver::Message answer = ICAM_TRY(exchange(method, params, timeout.value_or(options_.call_timeout)));
  if (answer.kind == driver::Message::Kind::error) {
    return make_error(rpc_errc(answer.error_code), method, ": driver error ", answer.error_code, ": ",
                      answer.error_message);
  }
  return std::move(answer.result);
}

ExitStatus DriverClient::shutdown(std::chrono::milliseconds grace) {
  if (!closed_reason_) closed_reason_ = "shut down";
  process_.close_stdin();
  ExitStatus status = process_.wait(grace);
  process_.drain_stderr();
  return status;
}

Error DriverClient::fail(Errc code, const std::string& why) {
  process_.drain_stderr();
  const ExitStatus status = process_.kill();
  std::string message = "driver " + why;
  if (!process_.stderr_tail().empty()) {
    std::string tail = process_.stderr_tail();
    if (tail.size() > 400) tail = "..." + tail.substr(tail.size() - 400);
    message += "; stderr: " + driver::excerpt(tail, 420);
  }
  closed_reason_ = message;
  (void)status;
  return Error(code, message);
}

Status DriverClient::send_line(const std::string& line, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = write_no_sigpipe(process_.stdin_fd(), line.data() + sent, line.size() - sent);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {  // the driver is not reading: wait, within the deadline
      pollfd out{process_.stdin_fd(), POLLOUT, 0};
      if (poll(&out, 1, millis_until(deadline)) == 0 && Clock::now() >= deadline) {
        return fail(Errc::unavailable, "stopped reading its input; killed");
      }
      continue;
    }
    auto exit = process_.poll_exit();
    return fail(Errc::unavailable,
                "closed its input (" + (exit ? exit->describe() : std::string(std::strerror(errno))) + ")");
  }
  return ok_status();
}

Result<driver::Message> DriverClient::exchange(const std::string& method, const json& params,
                                               std::chrono::milliseconds timeout) {
  if (closed_reason_) return make_error(Errc::unavailable, "driver is closed: ", *closed_reason_);
  Clock::time_point deadline = Clock::now() + timeout;
  const auto& limits = process_.limits();
  bool wall_bound = false;
  if (limits.wall_timeout.count() > 0 && process_.started() + limits.wall_timeout < deadline) {
    deadline = process_.started() + limits.wall_timeout;
    wall_bound = true;
  }
  const json id = next_id_++;
  ICAM_TRY(send_line(driver::encode_request(id, method, params), deadline));

  char chunk[64 * 1024];
  for (;;) {
    // Answer whatever complete lines are buffered first.
    for (;;) {
      auto line = lines_.next_line();
      if (!line.ok()) return fail(Errc::corrupt, "wrote a " + line.error().message() + "; killed");
      if (!line->has_value()) break;
      if ((*line)->empty()) continue;
      auto message = driver::parse_message(**line);
      if (!message.ok()) {
        return fail(Errc::corrupt, "wrote a line that is not JSON-RPC (" + message.error().message() + "); killed");
      }
      switch (message->kind) {
        case driver::Message::Kind::response:
        case driver::Message::Kind::error:
          if (message->id == id || (message->kind == driver::Message::Kind::error && message->id.is_null())) {
            return std::move(message).value();
          }
          break;  // a stale answer: ignore it
        case driver::Message::Kind::request:  // icam offers no client features (roots, sampling)
          ICAM_TRY(send_line(driver::encode_error(message->id, driver::kMethodNotFound,
                                                  "icam does not serve " + message->method),
                             deadline));
          break;
        case driver::Message::Kind::notification:  // progress, logging: not used yet
          break;
      }
    }

    pollfd watch[2] = {{process_.stdout_fd(), POLLIN, 0}, {process_.stderr_fd(), POLLIN, 0}};
    const int ready = poll(watch, process_.stderr_fd() >= 0 ? 2 : 1, millis_until(deadline));
    if (ready < 0 && errno != EINTR) return fail(Errc::internal, std::string("poll: ") + std::strerror(errno));
    if (ready == 0 && Clock::now() >= deadline) {
      return fail(Errc::unavailable,
                  wall_bound ? str_cat("ran past its wall-clock limit of ", limits.wall_timeout.count(), " ms; killed")
                             : str_cat("did not answer ", method, " within ", timeout.count(), " ms; killed"));
    }
    if (watch[1].revents != 0) process_.drain_stderr();
    if (watch[0].revents == 0) continue;
    const ssize_t n = ::read(process_.stdout_fd(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      const ExitStatus status = process_.wait(std::chrono::milliseconds(200));
      return fail(Errc::unavailable, "exited during " + method + " (" + status.describe() + ")");
    }
    output_bytes_ += static_cast<uint64_t>(n);
    if (limits.output_bytes > 0 && output_bytes_ > limits.output_bytes) {
      return fail(Errc::resource_exhausted,
                  str_cat("wrote more than ", limits.output_bytes, " bytes to stdout; killed"));
    }
    lines_.append(std::string_view(chunk, static_cast<size_t>(n)));
  }
}

}  // namespace icam::sandbox
