/* A hostile program for the sandbox tests: each mode tries one escape and reports on stdout.
 * "OK ..." means the attempt worked (an escape, unless the test expects it); "BLOCKED <errno>"
 * means the kernel refused it. A mode the seccomp filter kills prints nothing after "TRY". Built
 * without sanitizers so it needs nothing beyond the C library and fits any rlimit. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int blocked(const char* what) {
  printf("BLOCKED %s: %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  return 0;
}

static void try_(const char* what) {
  printf("TRY %s\n", what);
  fflush(stdout);
}

static int do_read(const char* path) {
  try_("read");
  int fd = open(path, O_RDONLY);
  if (fd < 0) return blocked("open");
  char buffer[256];
  ssize_t n = read(fd, buffer, sizeof buffer - 1);
  if (n < 0) return blocked("read");
  buffer[n] = '\0';
  printf("OK %s\n", buffer);
  return 0;
}

static int do_write(const char* path) {
  try_("write");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return blocked("open");
  if (write(fd, "pwned\n", 6) != 6) return blocked("write");
  printf("OK wrote %s\n", path);
  return 0;
}

static int do_socket(int port) {
  try_("socket");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return blocked("socket");
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) return blocked("connect");
  printf("OK connected\n");
  return 0;
}

static int do_forkbomb(void) {
  try_("forkbomb");
  int forks = 0;
  for (; forks < 5000; ++forks) {
    pid_t pid = fork();
    if (pid < 0) {
      printf("BLOCKED fork after %d: %s\n", forks, strerrorname_np(errno));
      fflush(stdout);
      return 0;
    }
    if (pid == 0) {
      pause();
      _exit(0);
    }
  }
  printf("OK %d forks\n", forks);
  return 0;
}

static int do_memhog(void) {
  try_("memhog");
  size_t total = 0;
  const size_t chunk = 32u << 20;
  while (total < (size_t)8 << 30) {
    char* p = malloc(chunk);
    if (p == NULL) {
      printf("BLOCKED malloc after %zu MiB\n", total >> 20);
      return 0;
    }
    memset(p, 1, chunk);
    total += chunk;
  }
  printf("OK %zu MiB\n", total >> 20);
  return 0;
}

static int do_x32(void) {
  try_("x32");
  long r = syscall(0x40000000 | SYS_getpid);
  if (r < 0) return blocked("x32 getpid");
  printf("OK x32 getpid %ld\n", r);
  return 0;
}

static int do_i386(void) {
  try_("i386");
  long r;
  /* getpid is 20 on i386; int 0x80 enters the 32-bit syscall table. */
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
  if (r < 0) {
    errno = (int)-r;
    return blocked("int 0x80");
  }
  printf("OK i386 getpid %ld\n", r);
  return 0;
}

static int do_tiocsti(void) {
  try_("tiocsti");
  char c = 'x';
  int tty = open("/dev/tty", O_RDWR);
  if (tty >= 0 && ioctl(tty, TIOCSTI, &c) == 0) {
    printf("OK injected into controlling tty\n");
    return 0;
  }
  if (tty < 0) blocked("open /dev/tty");
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master >= 0) {
    if (ioctl(master, TIOCSTI, &c) == 0) {
      printf("OK injected into a pty\n");
      return 0;
    }
    blocked("TIOCSTI on a pty");
  } else {
    blocked("posix_openpt");
  }
  /* Also with the upper 32 bits set, which the kernel ignores. */
  if (ioctl(0, (unsigned long)TIOCSTI | 0x100000000ul, &c) == 0) {
    printf("OK TIOCSTI with high bits\n");
    return 0;
  }
  return blocked("TIOCSTI on stdin");
}

static int do_fds(void) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == NULL) return blocked("opendir");
  printf("FDS");
  struct dirent* entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.' || atoi(entry->d_name) == dirfd(dir)) continue;
    printf(" %s", entry->d_name);
  }
  printf("\n");
  closedir(dir);
  return 0;
}

static int do_exec_euid(const char* path) {
  printf("EUID_BEFORE %d\n", (int)geteuid());
  fflush(stdout);
  char* argv[] = {(char*)path, (char*)"euid", NULL};
  execv(path, argv);
  return blocked("execv");
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  const char* mode = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (!strcmp(mode, "ok")) return printf("OK alive\n") < 0;
  if (!strcmp(mode, "read")) return do_read(arg);
  if (!strcmp(mode, "write")) return do_write(arg);
  if (!strcmp(mode, "socket")) return do_socket(atoi(arg));
  if (!strcmp(mode, "forkbomb")) return do_forkbomb();
  if (!strcmp(mode, "memhog")) return do_memhog();
  if (!strcmp(mode, "x32")) return do_x32();
  if (!strcmp(mode, "i386")) return do_i386();
  if (!strcmp(mode, "tiocsti")) return do_tiocsti();
  if (!strcmp(mode, "fds")) return do_fds();
  if (!strcmp(mode, "euid")) return printf("EUID %d\n", (int)geteuid()) < 0;
  if (!strcmp(mode, "exec_euid")) return do_exec_euid(arg);
  if (!strcmp(mode, "ptrace")) {
    try_("ptrace");
    if (ptrace(PTRACE_ATTACH, (pid_t)atoi(arg), 0, 0) != 0) return blocked("ptrace");
    return printf("OK attached\n") < 0;
  }
  if (!strcmp(mode, "mount")) {
    try_("mount");
    if (mount("none", "/tmp", "tmpfs", 0, NULL) != 0) return blocked("mount");
    return printf("OK mounted\n") < 0;
  }
  if (!strcmp(mode, "unshare")) {
    try_("unshare");
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return blocked("unshare");
    return printf("OK unshared\n") < 0;
  }
  if (!strcmp(mode, "clone_ns")) {
    try_("clone_ns");
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return blocked("clone(CLONE_NEWUSER)");
    return printf("OK cloned into a new user namespace\n") < 0;
  }
  if (!strcmp(mode, "clone3")) {
    long r = syscall(SYS_clone3, NULL, 0);
    if (r < 0) return blocked("clone3");
    return printf("OK clone3\n") < 0;
  }
  if (!strcmp(mode, "io_uring")) {
    try_("io_uring");
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    if (syscall(SYS_io_uring_setup, 8, &params) < 0) return blocked("io_uring_setup");
    return printf("OK io_uring\n") < 0;
  }
  if (!strcmp(mode, "signal")) {
    try_("signal");
    if (kill((pid_t)atoi(arg), 0) != 0) return blocked("kill");
    return printf("OK signalled\n") < 0;
  }
  if (!strcmp(mode, "fork")) {
    pid_t pid = fork();
    if (pid < 0) return blocked("fork");
    if (pid == 0) _exit(7);
    int status = 0;
    waitpid(pid, &status, 0);
    return printf("OK child exit %d\n", WEXITSTATUS(status)) < 0;
  }
  if (!strcmp(mode, "session")) {
    printf("SID %s\n", getsid(0) == getpid() ? "leader" : "member");
    int tty = open("/dev/tty", O_RDWR);
    if (tty >= 0) return printf("OK controlling tty\n") < 0;
    return blocked("open /dev/tty");
  }
  if (!strcmp(mode, "sleep")) {
    for (;;) pause();
  }
  if (!strcmp(mode, "escape")) {
    /* A child in a session (and process group) of its own: out of reach of a kill aimed at the
     * driver's process group. */
    pid_t pid = fork();
    if (pid < 0) return blocked("fork");
    if (pid == 0) {
      setsid();
      for (;;) pause();
    }
    printf("ESCAPED %d\n", (int)pid);
    fflush(stdout);
    for (;;) pause();
  }
  fprintf(stderr, "hostile: unknown mode %s\n", mode);
  return 2;
}
