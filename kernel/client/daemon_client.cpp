#include "kernel/client/daemon_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernel/daemon/protocol.h"

namespace icam::client {

using nlohmann::json;

Result<DaemonClient> DaemonClient::connect(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return make_error(Errc::invalid_argument, "socket path '", path, "' is empty or too long");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Errc::io, "socket(): ", std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return make_error(Errc::unavailable, "no daemon is running at '", path,
                        "' (start one with icamd)");
    if (err == EACCES)
      return make_error(Errc::permission_denied, "cannot connect to '", path,
                        "': permission denied (the daemon belongs to another user)");
    return make_error(Errc::io, "cannot connect to '", path, "': ", std::strerror(err));
  }
  return DaemonClient(fd, path);
}

DaemonClient::DaemonClient(DaemonClient&& other) noexcept
    : fd_(other.fd_),
      path_(std::move(other.path_)),
      buffer_(std::move(other.buffer_)),
      next_id_(other.next_id_),
      interrupt_(other.interrupt_) {
  other.fd_ = -1;
}

DaemonClient& DaemonClient::operator=(DaemonClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    buffer_ = std::move(other.buffer_);
    next_id_ = other.next_id_;
    interrupt_ = other.interrupt_;
    other.fd_ = -1;
  }
  return *this;
}

DaemonClient::~DaemonClient() {
  close();
}

void DaemonClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status DaemonClient::send_all(std::string_view data) {
  if (fd_ < 0) return make_error(Errc::unavailable, "not connected to the daemon");
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close();
      return make_error(Errc::unavailable, "lost the connection to the daemon: ",
                        std::strerror(err));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok_status();
}

Result<std::string> DaemonClient::read_line() {
  while (true) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > daemon::kMaxMessageBytes) {
      close();
      return make_error(Errc::corrupt, "the daemon sent a message longer than ",
                        daemon::kMaxMessageBytes, " bytes");
    }
    if (fd_ < 0) return make_error(Errc::unavailable, "not connected to the daemon");
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (interrupt_ && interrupt_->load()) {
      close();
      return make_error(Errc::cancelled, "interrupted");
    }
    if (ready < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::io, "poll(): ", std::strerror(errno));
    }
    if (ready == 0) continue;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close();
      return make_error(Errc::unavailable, "the daemon closed the connection");
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<json> DaemonClient::call(std::string_view method, const json& params) {
  return call_streaming(method, params, nullptr);
}

Result<json> DaemonClient::call_streaming(std::string_view method, const json& params,
                                          const NotificationFn& on_note) {
  const uint64_t id = next_id_++;
  ICAM_TRY(send_all(daemon::request_line(id, method, params.is_null() ? json::object() : params)));
  while (true) {
    const std::string line = ICAM_TRY(read_line());
    json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!message.is_object()) {
      close();
      return make_error(Errc::corrupt, "the daemon sent a malformed message");
    }
    if (message.contains("method")) {  // a notification
      if (on_note && message["method"].is_string())
        on_note(message["method"].get<std::string>(), message.value("params", json::object()));
      continue;
    }
    if (message.contains("error")) {
      const json& error = message["error"];
      const int code = error.value("code", daemon::rpc_code::internal_error);
      const std::string text = error.value("message", std::string("unknown error"));
      const json data = error.value("data", json(nullptr));
      // An error without our id (e.g. "message too long", "too many connections") is for us too.
      if (message.value("id", json(nullptr)) != json(id) && !message["id"].is_null()) continue;
      return make_error(daemon::errc_for_rpc(code, data), text);
    }
    if (message.value("id", json(nullptr)) != json(id)) continue;  // not ours: ignore
    return message.value("result", json(nullptr));
  }
}

}  // namespace icam::client
