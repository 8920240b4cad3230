#include "kernel/daemon/api.h"

#include "kernel/daemon/protocol.h"

namespace icam::daemon {

const std::vector<MethodDoc>& methods() {
  static const std::vector<MethodDoc> table = {
      {"daemon.info", "", "`{api_version, version, pid, uid, model, backend, threads, uptime_s, "
                          "draining}`",
       "Who the daemon is and what it serves. Clients call it first and check `api_version`."},
      {"daemon.shutdown", "", "`{draining: true}`",
       "Starts a drain, as SIGTERM does: new runs are refused, running processes get the drain "
       "period to finish, then are cancelled, and the daemon exits. Only the daemon's own user "
       "or root may call it."},
      {"proc.run", "job (object, the job format of docs/jobs.md)", "`{pid, process}`",
       "Spawns an agent process for the caller (its owner is the caller's uid, from the socket's "
       "peer credentials). Errors: an invalid job (-32602, naming the JSON path), a model other "
       "than the daemon's, too many processes (-32003), a draining daemon (-32005)."},
      {"proc.list", "all? (bool: every user's processes; root only)", "`{processes: [process]}`",
       "The caller's processes, live and recently exited, in pid order. Root sees everyone's. A "
       "process blocked on a syscall has `state` \"blocked\" and says on what in `blocked_on` "
       "(e.g. `human.ask: QUESTION`, `proc.wait 4`, `exec.run`)."},
      {"proc.get", "pid", "`{process}`",
       "One process record (the format of `icamctl run --json`)."},
      {"proc.kill", "pid", "`{process}`",
       "Cancels a live process: it exits with reason `cancelled`, its KV pages are freed."},
      {"proc.approve", "pid, answer? (string, default \"yes\")", "`{pid, approved: true}`",
       "Answers the question a process asked with `human.ask` (it is blocked until then; "
       "`blocked_on` in its record holds the question): the syscall returns `{answer, approved: "
       "true}` and its turn resumes. Only the process's owner or root may answer. Error -32001 "
       "(not found) when the process waits on no question."},
      {"proc.deny", "pid, reason? (string, default \"no\")", "`{pid, approved: false}`",
       "Refuses what a process asked with `human.ask`: the syscall returns `{answer: reason, "
       "approved: false}`. As `proc.approve` otherwise."},
      {"proc.caps", "pid", "`{pid, capabilities: [{token, capability, origin, state, uses_left}]}`",
       "The capabilities the process holds and where each came from (its job, or the parent it "
       "was derived from); `state` is active, revoked, expired or exhausted. After the process "
       "exits its tokens show as revoked."},
      {"proc.wait", "pid, timeout_s? (number)", "`{process}`",
       "Answers when the process has exited (at once if it has). With `timeout_s`, an error "
       "-32004 when it has not exited by then."},
      {"proc.logs", "pid, offset? (int, byte offset, default 0), follow? (bool)",
       "`{text, offset, end, exited}` or, with follow, `{process}` at exit",
       "The process's output from `offset`. With `follow`, the output arrives as `proc.output` "
       "notifications (first what exists, then as it is generated) and the response comes when "
       "the process exits. Output older than the last 4 MiB is dropped; `offset` then starts at "
       "the oldest byte kept. A client that disconnects mid-stream does not affect the process."},
      {"proc.checkpoint", "pid, label? (string, 1 to 128 bytes, default \"checkpoint\")",
       "`{pid, checkpoint: {id, label, tokens, tool_calls}}`",
       "Records the process (live or exited) as it is now in the process journal: its context up "
       "to its last committed token and the tool results it was given. Only the owner or root. "
       "An error (unsupported) when the daemon keeps no journal."},
      {"proc.restore", "checkpoint (int, a checkpoint id), or pid and label (string)",
       "`{pid, process, checkpoint}`",
       "Starts a NEW process (a new pid, the caller's limits apply) from a checkpoint: the "
       "checkpointed process's job, owner and capabilities, its context the checkpoint's "
       "transcript prefix, its recorded tool results given again, never made again. With `pid` "
       "and `label`, the newest checkpoint of that process with that label. Only the owner of "
       "the checkpointed process or root; to anyone else it does not exist (-32001)."},
      {"kernel.stats", "", "`{processes, scheduler, kv, tokens_per_s, ...}`",
       "Counters for `icamctl stats` and `top`: live and exited processes, scheduler totals "
       "(steps, tokens, batch sizes, preemptions, time in forward, sampling and the scheduler itself), KV pool pages, "
       "and generated tokens per second over the last few seconds."},
  };
  return table;
}

const std::vector<MethodDoc>& notifications() {
  static const std::vector<MethodDoc> table = {
      {"proc.output", "pid, offset, text", "",
       "Sent to a client following a process's output (`proc.logs` with `follow`): `text` "
       "starts at byte `offset` of the output."},
  };
  return table;
}

bool is_method(std::string_view name) {
  for (const auto& m : methods())
    if (m.name == name) return true;
  return false;
}

std::string api_markdown() {
  std::string out;
  out += "API version: " + std::to_string(kApiVersion) + "\n\n";
  out += "| method | params | result | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& m : methods()) {
    out += "| `" + std::string(m.name) + "` | " + (m.params.empty() ? "none" : std::string(m.params)) +
           " | " + std::string(m.result) + " | " + std::string(m.description) + " |\n";
  }
  out += "\n| notification | params | meaning |\n| --- | --- | --- |\n";
  for (const auto& n : notifications()) {
    out += "| `" + std::string(n.name) + "` | " + std::string(n.params) + " | " +
           std::string(n.description) + " |\n";
  }
  return out;
}

}  // namespace icam::daemon
