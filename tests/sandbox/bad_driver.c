/* A misbehaving driver for the DriverClient tests. It answers initialize (or refuses it, in
 * "stateless" mode) and then misbehaves on the first request, as its mode says. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads one line from stdin; returns 0 at end of input. */
static int read_line(char* buffer, size_t size) {
  size_t n = 0;
  for (;;) {
    char c;
    ssize_t r = read(0, &c, 1);
    if (r <= 0) return 0;
    if (c == '\n') break;
    if (n + 1 < size) buffer[n++] = c;
  }
  buffer[n] = '\0';
  return 1;
}

/* The request's id (icam uses integers), or -1 for a notification. */
static long request_id(const char* line) {
  const char* id = strstr(line, "\"id\":");
  return id ? strtol(id + 5, NULL, 10) : -1;
}

static void say(const char* text) {
  size_t length = strlen(text);
  while (length > 0) {
    ssize_t n = write(1, text, length);
    if (n <= 0) exit(1);
    text += n;
    length -= (size_t)n;
  }
}

static void reply(long id, const char* result) {
  char buffer[4096];
  snprintf(buffer, sizeof buffer, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":%s}\n", id, result);
  say(buffer);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "garbage";
  char line[1 << 16];
  while (read_line(line, sizeof line)) {
    long id = request_id(line);
    if (id < 0) continue;  /* notifications/initialized */
    if (strstr(line, "\"initialize\"")) {
      if (!strcmp(mode, "stateless")) {
        char buffer[256];
        snprintf(buffer, sizeof buffer,
                 "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"error\":{\"code\":-32601,\"message\":\"no\"}}\n", id);
        say(buffer);
      } else {
        reply(id, "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"serverInfo\":{\"name\":\"bad\"}}");
      }
      continue;
    }
    if (!strcmp(mode, "stateless") || !strcmp(mode, "stderr")) {
      if (!strcmp(mode, "stderr")) {
        static char noise[256 * 1024];
        memset(noise, 'e', sizeof noise);
        if (write(2, noise, sizeof noise) < 0) return 1;  /* more than a pipe holds */
      }
      if (strstr(line, "tools/list")) {
        reply(id, "{\"tools\":[{\"name\":\"noop\",\"inputSchema\":{\"type\":\"object\"}}]}");
      } else {
        reply(id, "{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]}");
      }
      continue;
    }
    if (!strcmp(mode, "garbage")) {
      say("this is not json at all\n");
    } else if (!strcmp(mode, "huge_line")) {
      static char chunk[65536];
      memset(chunk, 'x', sizeof chunk);
      for (;;) {
        if (write(1, chunk, sizeof chunk) < 0) return 1;
      }
    } else if (!strcmp(mode, "flood")) {
      char notification[1100];
      memset(notification, 0, sizeof notification);
      strcpy(notification, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"");
      size_t at = strlen(notification);
      memset(notification + at, 'y', 900);
      strcpy(notification + at + 900, "\"}}\n");
      for (;;) say(notification);
    } else if (!strcmp(mode, "silent")) {
      for (;;) pause();
    } else if (!strcmp(mode, "die")) {
      exit(3);
    } else if (!strcmp(mode, "crash")) {
      abort();
    }
  }
  return 0;
}
