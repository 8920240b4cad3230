#include "memory/mailbox_store.h"

#include "memory/sqlite_file.h"

namespace icam::memory {

using sqlite::Statement;

Result<std::unique_ptr<MailboxStore>> MailboxStore::open(const std::string& path) {
  sqlite::Database db =
      ICAM_TRY(open_sqlite_file(path, /*read_only=*/false, /*busy_timeout_ms=*/2000, "mailboxes"));
  // Its own table in a file whose schema version belongs to the journal: created if missing,
  // never altered (a later change would be a new table).
  ICAM_TRY_CTX(db.exec("CREATE TABLE IF NOT EXISTS messages("
                       "id INTEGER PRIMARY KEY AUTOINCREMENT, to_pid INTEGER NOT NULL, "
                       "from_pid INTEGER NOT NULL, body TEXT NOT NULL, sent_us INTEGER NOT NULL);"
                       "CREATE INDEX IF NOT EXISTS messages_by_receiver ON messages(to_pid, id);"),
               path + ": mailboxes");
  return std::unique_ptr<MailboxStore>(new MailboxStore(std::move(db), path));
}

Result<int64_t> MailboxStore::put(uint64_t to, uint64_t from, std::string_view body) {
  std::lock_guard lock(mu_);
  int64_t id = 0;
  Status stored = in_transaction(db_, [&]() -> Status {
    Statement s = ICAM_TRY(db_.prepare(
        "INSERT INTO messages(to_pid, from_pid, body, sent_us) VALUES (?, ?, ?, ?)"));
    s.bind(1, static_cast<int64_t>(to));
    s.bind(2, static_cast<int64_t>(from));
    s.bind(3, body);
    s.bind(4, unix_micros());
    ICAM_TRY(s.run());
    id = sqlite3_last_insert_rowid(db_.handle());
    return ok_status();
  });
  if (!stored.ok()) return std::move(stored).error().with_context(path_ + ": storing a message");
  return id;
}

Status MailboxStore::remove(std::span<const int64_t> ids) {
  if (ids.empty()) return ok_status();
  std::lock_guard lock(mu_);
  Status st = in_transaction(db_, [&]() -> Status {
    Statement s = ICAM_TRY(db_.prepare("DELETE FROM messages WHERE id = ?"));
    for (int64_t id : ids) {
      s.bind(1, id);
      ICAM_TRY(s.run());
      s.reset();
    }
    return ok_status();
  });
  if (!st.ok()) return std::move(st).error().with_context(path_ + ": forgetting messages");
  return ok_status();
}

Status MailboxStore::remove_to(uint64_t pid) {
  std::lock_guard lock(mu_);
  Status st = in_transaction(db_, [&]() -> Status {
    Statement s = ICAM_TRY(db_.prepare("DELETE FROM messages WHERE to_pid = ?"));
    s.bind(1, static_cast<int64_t>(pid));
    return s.run();
  });
  if (!st.ok())
    return std::move(st).error().with_context(
        str_cat(path_, ": forgetting the messages of process ", pid));
  return ok_status();
}

Result<std::vector<StoredMessage>> MailboxStore::all() const {
  std::lock_guard lock(mu_);
  Statement s = ICAM_TRY_CTX(
      db_.prepare("SELECT id, to_pid, from_pid, body FROM messages ORDER BY id"),
      path_ + ": mailboxes");
  std::vector<StoredMessage> out;
  while (ICAM_TRY_CTX(s.step(), path_ + ": mailboxes")) {
    StoredMessage m;
    m.id = s.column_int(0);
    m.to = static_cast<uint64_t>(s.column_int(1));
    m.from = static_cast<uint64_t>(s.column_int(2));
    m.body = s.column_text(3);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace icam::memory
