// A blocking client of the daemon's JSON-RPC API (docs/daemon-api.md), for icamctl and icamsh.
// One connection, one call at a time; a call that streams (proc.logs with follow) hands each
// notification to a callback until its response arrives.
//
// Interruption: set_interrupt() names a flag (set from a signal handler, say) that a blocked call
// checks every 100 ms; when set, the call returns Errc::cancelled and the connection is closed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::client {

class DaemonClient {
 public:
  // Connects to the socket. Errc::unavailable when no daemon listens there (no file, or a stale
  // one: nobody accepts), with a message that says so; Errc::permission_denied when the socket
  // belongs to another user.
  static Result<DaemonClient> connect(const std::string& socket_path);

  DaemonClient(DaemonClient&& other) noexcept;
  DaemonClient& operator=(DaemonClient&& other) noexcept;
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;
  ~DaemonClient();

  void set_interrupt(const std::atomic<bool>* flag) { interrupt_ = flag; }

  // Calls `method` and returns its result. A JSON-RPC error becomes an Error with the daemon's
  // message and its error class (Errc::not_found for "no process 7", and so on).
  Result<nlohmann::json> call(std::string_view method, const nlohmann::json& params = {});

  // Like call(), handing every notification that arrives before the response to `on_note`
  // (method, params).
  using NotificationFn = std::function<void(const std::string&, const nlohmann::json&)>;
  Result<nlohmann::json> call_streaming(std::string_view method, const nlohmann::json& params,
                                        const NotificationFn& on_note);

  const std::string& socket_path() const { return path_; }

 private:
  DaemonClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status send_all(std::string_view data);
  Result<std::string> read_line();
  void close();

  int fd_ = -1;
  std::string path_;
  std::string buffer_;  // bytes read past the last line
  uint64_t next_id_ = 1;
  const std::atomic<bool>* interrupt_ = nullptr;
};

}  // namespace icam::client
