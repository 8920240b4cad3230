#include "sandbox/child_ops.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace icam::sandbox::child {

int write_file(const char* path, const char* text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const size_t length = strlen(text);
  const ssize_t n = write(fd, text, length);
  const int error = n == static_cast<ssize_t>(length) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return error;
}

int write_id_maps(const char* uid_map, const char* gid_map) {
  int error = write_file("/proc/self/setgroups", "deny");
  if (error != 0 && error != ENOENT) return error;  // ENOENT: a kernel before 3.19
  if ((error = write_file("/proc/self/gid_map", gid_map)) != 0) return error;
  return write_file("/proc/self/uid_map", uid_map);
}

int make_dirs(const char* path, unsigned mode) {
  char buffer[PATH_MAX];
  const size_t length = strlen(path);
  if (length == 0 || length >= sizeof buffer) return ENAMETOOLONG;
  memcpy(buffer, path, length + 1);
  for (size_t i = 1; i <= length; ++i) {
    if (buffer[i] != '/' && buffer[i] != '\0') continue;
    const char saved = buffer[i];
    buffer[i] = '\0';
    if (mkdir(buffer, mode) != 0 && errno != EEXIST) return errno;
    buffer[i] = saved;
  }
  return 0;
}

int make_file(const char* path) {
  const int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno == EEXIST ? 0 : errno;
  close(fd);
  return 0;
}

void format_id_map(unsigned id, char* out) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + id % 10);
    id /= 10;
  } while (id != 0);
  char* p = out;
  for (int copy = 0; copy < 2; ++copy) {
    for (int i = n - 1; i >= 0; --i) *p++ = digits[i];
    *p++ = ' ';
  }
  *p++ = '1';
  *p = '\0';
}

}  // namespace icam::sandbox::child
