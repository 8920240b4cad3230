// icamd's server: a Boost.Asio event loop on one I/O thread serving JSON-RPC 2.0 (protocol.h,
// api.h) on a Unix socket, in front of the engine thread (engine_thread.h) that runs the kernel.
//
// Threads. The I/O thread owns the sessions and the ProcessDirectory; the engine thread owns the
// kernel. They meet only through EngineThread::post (I/O -> engine) and asio::post of the
// engine's reports and replies (engine -> I/O), so neither ever blocks on the other.
//
// Security. The socket is created with mode 0600 inside a directory the daemon creates with mode
// 0700; every connection's peer credentials (SO_PEERCRED) give the uid it acts for. A user sees
// and controls only their own processes; root, all.
//
// Limits. Messages are bounded (kMaxMessageBytes; a longer line gets an error and the connection
// is closed); each session's unsent output is bounded (a client that stops reading is
// disconnected, its processes carry on); live processes are bounded per user and in total; open
// sessions are bounded.
//
// Draining (SIGTERM, SIGINT, daemon.shutdown): new runs are refused, running processes get
// `drain_seconds` to finish and are then cancelled (at once on a second signal); when none is
// left, pending replies are flushed, the socket is removed and run() returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "kernel/kernel.h"

namespace icam::daemon {

struct ServerOptions {
  std::string socket_path;       // required
  double drain_seconds = 30;     // grace period for running processes on shutdown
  size_t max_processes = 256;    // live processes, all users
  size_t max_per_user = 64;      // live processes per user
  size_t max_sessions = 256;     // open connections
  size_t max_pending_per_session = 1024;  // unanswered waits and follows per connection
  size_t max_session_backlog = 16u << 20;  // unsent bytes per connection before it is dropped
  nlohmann::json info;           // extra fields for daemon.info (backend, threads, ...)
};

class Server {
 public:
  // Binds the socket (refusing when another daemon answers on it, replacing a stale socket file)
  // and starts the engine thread on `kernel`. Errors name the socket path.
  static Result<std::unique_ptr<Server>> create(const ServerOptions& options,
                                                std::unique_ptr<kernel::Kernel> kernel);
  ~Server();

  // Serves until drained; returns ok, or the error that stopped the event loop.
  Status run();

  // Asks a running server to drain, as SIGTERM does. Thread-safe.
  void request_shutdown();

  struct Impl;  // the event loop and its state (server.cpp); public so sessions can name it

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace icam::daemon
