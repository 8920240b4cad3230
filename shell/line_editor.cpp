#include "shell/line_editor.h"

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>

namespace icam::shell {
namespace {

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Code points in text[0, end): the columns the text takes (one per character is good enough for
// the prompt line; wide characters are rare in commands).
size_t columns(const std::string& text, size_t end) {
  size_t n = 0;
  for (size_t i = 0; i < end; ++i) n += is_continuation(text[i]) ? 0 : 1;
  return n;
}

void write_out(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Raw mode for the duration of one read; restored on every exit path.
class RawMode {
 public:
  RawMode() {
    ok_ = ::tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (!ok_) return;
    termios raw = saved_;
    raw.c_iflag &= ~static_cast<tcflag_t>(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    raw.c_cflag |= CS8;
    raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ICANON | IEXTEN | ISIG);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    // TCSADRAIN, not TCSAFLUSH: keys typed ahead (while an answer streamed, or right after a
    // Ctrl-C at the prompt) must reach the next line, not be discarded.
    ok_ = ::tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0;
  }
  ~RawMode() {
    if (ok_) ::tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_);
  }
  bool ok() const { return ok_; }

 private:
  termios saved_{};
  bool ok_ = false;
};

// One byte from stdin; -1 at end of input or on error.
int read_byte() {
  unsigned char c;
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n == 1) return c;
    if (n < 0 && errno == EINTR) continue;
    return -1;
  }
}

}  // namespace

LineEditor::LineEditor(std::string history_file, size_t max_history)
    : history_file_(std::move(history_file)), max_history_(max_history) {
  if (history_file_.empty()) return;
  std::ifstream in(history_file_);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) history_.push_back(line);
  if (history_.size() > max_history_)
    history_.erase(history_.begin(), history_.end() - static_cast<long>(max_history_));
}

void LineEditor::add_history(const std::string& line) {
  if (line.empty() || line.find('\n') != std::string::npos) return;
  if (!history_.empty() && history_.back() == line) return;
  history_.push_back(line);
  if (history_.size() > max_history_) history_.erase(history_.begin());
  if (!history_file_.empty()) {
    std::ofstream out(history_file_, std::ios::app);
    out << line << "\n";
  }
}

LineEditor::Result LineEditor::read(const std::string& prompt) {
  if (::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO)) {
    RawMode raw;
    if (raw.ok()) return read_raw(prompt);
  }
  return read_plain(prompt);
}

LineEditor::Result LineEditor::read_plain(const std::string& prompt) {
  std::cout << prompt << std::flush;
  std::string line;
  if (!std::getline(std::cin, line)) return {Outcome::end_of_input, {}};
  return {Outcome::line, line};
}

LineEditor::Result LineEditor::read_raw(const std::string& prompt) {
  std::string buf;
  size_t cursor = 0;                  // byte offset, always at a character boundary
  size_t history_index = history_.size();  // == size(): the line being typed
  std::string typed;                  // the line being typed, kept while browsing history

  auto redraw = [&] {
    std::string s = "\r" + prompt + buf + "\x1b[K";
    const size_t back = columns(buf, buf.size()) - columns(buf, cursor);
    if (back > 0) s += "\x1b[" + std::to_string(back) + "D";
    write_out(s);
  };
  auto prev_boundary = [&](size_t at) {
    while (at > 0 && is_continuation(buf[--at])) {
    }
    return at;
  };
  auto next_boundary = [&](size_t at) {
    if (at < buf.size()) ++at;
    while (at < buf.size() && is_continuation(buf[at])) ++at;
    return at;
  };
  auto show_history = [&](size_t index) {
    if (history_index == history_.size()) typed = buf;
    history_index = index;
    buf = index == history_.size() ? typed : history_[index];
    cursor = buf.size();
  };

  redraw();
  while (true) {
    const int c = read_byte();
    if (c < 0) {
      write_out("\r\n");
      return {Outcome::end_of_input, {}};
    }
    switch (c) {
      case '\r':
      case '\n':
        write_out("\r\n");
        return {Outcome::line, buf};
      case 3:  // Ctrl-C abandons the line and starts a fresh one, without leaving raw mode (a
               // round trip through cooked mode would let the line discipline eat keys typed
               // meanwhile, such as a Ctrl-D).
        write_out("^C\r\n");
        buf.clear();
        typed.clear();
        cursor = 0;
        history_index = history_.size();
        redraw();
        break;
      case 4:  // Ctrl-D
        if (buf.empty()) {
          write_out("\r\n");
          return {Outcome::end_of_input, {}};
        }
        if (cursor < buf.size()) buf.erase(cursor, next_boundary(cursor) - cursor);
        break;
      case 1:  // Ctrl-A
        cursor = 0;
        break;
      case 5:  // Ctrl-E
        cursor = buf.size();
        break;
      case 2:  // Ctrl-B
        cursor = prev_boundary(cursor);
        break;
      case 6:  // Ctrl-F
        cursor = next_boundary(cursor);
        break;
      case 11:  // Ctrl-K
        buf.erase(cursor);
        break;
      case 21:  // Ctrl-U
        buf.erase(0, cursor);
        cursor = 0;
        break;
      case 23: {  // Ctrl-W: the word before the cursor and the spaces after it
        size_t start = cursor;
        while (start > 0 && buf[start - 1] == ' ') --start;
        while (start > 0 && buf[start - 1] != ' ') --start;
        buf.erase(start, cursor - start);
        cursor = start;
        break;
      }
      case 12:  // Ctrl-L
        write_out("\x1b[H\x1b[2J");
        break;
      case 127:
      case 8:  // Backspace
        if (cursor > 0) {
          const size_t start = prev_boundary(cursor);
          buf.erase(start, cursor - start);
          cursor = start;
        }
        break;
      case 27: {  // escape sequences: arrows, Home/End, Delete
        const int a = read_byte();
        if (a != '[' && a != 'O') break;
        const int b = read_byte();
        if (b >= '0' && b <= '9') {
          const int tilde = read_byte();
          if (tilde != '~') break;
          if (b == '3' && cursor < buf.size()) buf.erase(cursor, next_boundary(cursor) - cursor);
          if (b == '1' || b == '7') cursor = 0;
          if (b == '4' || b == '8') cursor = buf.size();
          break;
        }
        if (b == 'A' && history_index > 0) show_history(history_index - 1);
        if (b == 'B' && history_index < history_.size()) show_history(history_index + 1);
        if (b == 'C') cursor = next_boundary(cursor);
        if (b == 'D') cursor = prev_boundary(cursor);
        if (b == 'H') cursor = 0;
        if (b == 'F') cursor = buf.size();
        break;
      }
      default:
        if (c >= 32 || c == '\t') {
          buf.insert(cursor, 1, static_cast<char>(c));
          ++cursor;
        }
        break;
    }
    redraw();
  }
}

}  // namespace icam::shell
