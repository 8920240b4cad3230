#include "kernel/audit/audit_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "syscalls/crypto.h"

namespace icam::kernel::audit {
namespace {

// Closes a file descriptor at the end of a scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::vector<uint8_t>> load_audit_key(const std::string& path) {
  Fd file{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  if (file.fd < 0) {
    const Errc code = errno == ENOENT ? Errc::not_found : Errc::io;
    return make_error(code, "audit key '", path, "': ", std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(file.fd, &st) != 0)
    return make_error(Errc::io, "audit key '", path, "': ", std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return make_error(Errc::invalid_argument, "audit key '", path, "': not a regular file");
  if ((st.st_mode & 077) != 0)
    return make_error(Errc::permission_denied, "audit key '", path,
                      "': group or others may access it (mode ", str_cat(std::oct, st.st_mode & 0777),
                      "); chmod 600 it");
  if (st.st_size < static_cast<off_t>(kAuditKeyBytes) || st.st_size > 1024)
    return make_error(Errc::invalid_argument, "audit key '", path, "': ", st.st_size,
                      " bytes; expected ", kAuditKeyBytes, " to 1024");
  std::vector<uint8_t> key(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < key.size()) {
    const ssize_t n = ::read(file.fd, key.data() + done, key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(Errc::io, "audit key '", path, "': short read");
    done += static_cast<size_t>(n);
  }
  return key;
}

Result<std::vector<uint8_t>> create_audit_key(const std::string& path) {
  const std::vector<uint8_t> key = ICAM_TRY(syscalls::random_bytes(kAuditKeyBytes));
  Fd file{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (file.fd < 0)
    return make_error(errno == EEXIST ? Errc::invalid_argument : Errc::io, "audit key '", path,
                      "': cannot create: ", std::strerror(errno));
  // The umask may have removed bits but never adds any; make the mode exact anyway.
  if (::fchmod(file.fd, 0600) != 0 ||
      ::write(file.fd, key.data(), key.size()) != static_cast<ssize_t>(key.size()) ||
      ::fsync(file.fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(path.c_str());
    return make_error(Errc::io, "audit key '", path, "': cannot write: ", why);
  }
  return key;
}

std::string audit_key_id(const std::vector<uint8_t>& key) {
  return syscalls::to_hex(syscalls::hmac_sha256(key, "icam-audit-key-id")).substr(0, 16);
}

}  // namespace icam::kernel::audit
