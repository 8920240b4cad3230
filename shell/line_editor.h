// A small line editor for icamsh: edits one line in the terminal's raw mode with the usual keys
// and keeps a history. When input is not a terminal (a pipe, a file) it reads plain lines.
//
// Keys: printable text (UTF-8) inserts at the cursor; Left/Right, Home/End (also Ctrl-A/Ctrl-E)
// move; Backspace/Delete erase; Ctrl-U erases to the start, Ctrl-K to the end, Ctrl-W the word
// before the cursor; Up/Down walk the history; Ctrl-L clears the screen; Enter accepts; Ctrl-C
// abandons the line; Ctrl-D on an empty line is end of input.
#pragma once

#include <string>
#include <vector>

namespace icam::shell {

class LineEditor {
 public:
  enum class Outcome { line, end_of_input };
  struct Result {
    Outcome outcome = Outcome::line;
    std::string text;
  };

  // `history_file` (may be empty) is read now and appended to as lines are accepted.
  explicit LineEditor(std::string history_file, size_t max_history = 1000);

  Result read(const std::string& prompt);
  void add_history(const std::string& line);
  const std::vector<std::string>& history() const { return history_; }

 private:
  Result read_raw(const std::string& prompt);
  Result read_plain(const std::string& prompt);

  std::string history_file_;
  size_t max_history_;
  std::vector<std::string> history_;
};

}  // namespace icam::shell
