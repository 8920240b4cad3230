// The durable side of the processes' mailboxes (msg.send / msg.recv): every message sent is
// stored before the sender is told it was sent, and stays until the receiver has certainly been
// given it, so a daemon killed with SIGKILL loses no message a sender was told went out. It lives
// in the process journal's SQLite file (its own table, `messages`; its own connection), since
// the two are read together when a restarted kernel revives its processes (docs/memory.md):
//
//   - a message is stored by msg.send (synchronous=FULL: durable when put() returns);
//   - msg.recv gives it to the receiver with its id; the receiver's recorded msg.recv results
//     (the journal's tool results) say which ids it was given, and once it makes another call
//     those results are certainly recorded, so the dispatcher removes them then;
//   - a restarted kernel removes the stored messages its revived processes' recorded results
//     show they were given, puts the others back into their mailboxes in the order sent, and
//     removes those of processes that did not come back; an exited receiver's go at its exit.
//
// Errors: a file locked by another process Errc::unavailable; a full disk
// Errc::resource_exhausted; a damaged file Errc::corrupt.
//
// Thread-safety: one mutex serialises every call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/sqlite_db.h"

namespace icam::memory {

struct StoredMessage {
  int64_t id = 0;  // increasing in the order sent
  uint64_t to = 0;
  uint64_t from = 0;
  std::string body;
};

class MailboxStore {
 public:
  static Result<std::unique_ptr<MailboxStore>> open(const std::string& path);

  // Stores a message; its id.
  Result<int64_t> put(uint64_t to, uint64_t from, std::string_view body);
  // Forgets messages (given to their receiver for certain); unknown ids are ignored.
  Status remove(std::span<const int64_t> ids);
  // Forgets every message to `pid` (it exited).
  Status remove_to(uint64_t pid);
  // Every stored message, in the order sent.
  Result<std::vector<StoredMessage>> all() const;

  const std::string& path() const { return path_; }

 private:
  MailboxStore(sqlite::Database db, std::string path) : db_(std::move(db)), path_(std::move(path)) {}

  mutable std::mutex mu_;
  sqlite::Database db_;
  std::string path_;
};

}  // namespace icam::memory
