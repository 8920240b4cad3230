// icamsh through a pseudo-terminal: the real binary, its line editor, slash commands, streamed
// turns, and Ctrl-C interrupting a turn but not the shell. With no daemon on its socket the shell
// runs its own kernel on a tiny generated model.
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam {
namespace {

namespace fs = std::filesystem;

class Terminal {
 public:
  Terminal(const std::vector<std::string>& args, const std::string& home) {
    pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      ::setenv("ICAM_HOME", home.c_str(), 1);
      ::setenv("TERM", "xterm", 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Terminal() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  // SIGINT, as the terminal sends for Ctrl-C while a turn runs (the line editor is not reading).
  void interrupt() { ::kill(pid_, SIGINT); }
  void type(const std::string& keys) { ASSERT_EQ(::write(fd_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size())); }
  // Reads until `text` appears (consuming up to it); false after `seconds`.
  bool expect(const std::string& text, double seconds = 60) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (true) {
      const size_t at = buffer_.find(text);
      if (at != std::string::npos) {
        seen_ = buffer_.substr(0, at + text.size());
        buffer_.erase(0, at + text.size());
        return true;
      }
      if (std::chrono::steady_clock::now() > until) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        char chunk[4096];
        const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
        if (n <= 0) return buffer_.find(text) != std::string::npos;
        buffer_.append(chunk, static_cast<size_t>(n));
      }
    }
  }
  // A prompt at the start of a line: output ended and the shell waits for input.
  bool prompt(double seconds = 60) { return expect("\n\ricam> ", seconds); }
  const std::string& seen() const { return seen_; }
  const std::string& pending() const { return buffer_; }
  // The exit status, or -1 if the shell has not exited within `seconds` (it is then killed).
  int wait_exit(double seconds = 30) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) return -1;  // the destructor kills it
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
  std::string seen_;
};

TEST(Icamsh, TalksEditsInterruptsAndManagesProcesses) {
  llm::testing::TinySpec spec = llm::testing::tiny_spec("llama");
  spec.d_model = 256;
  spec.d_ffn = 1024;
  spec.n_layers = 4;
  spec.head_dim = 64;
  spec.context_length = 8192;
  const std::string model = llm::testing::temp_model_path("icamsh");
  ASSERT_TRUE(llm::testing::write_tiny_model(llm::testing::make_tiny_model(spec), model).ok());
  const fs::path home = fs::temp_directory_path() / ("icamsh-test-" + std::to_string(getpid()));
  fs::create_directories(home);

  Terminal t({ICAMSH_PATH, "--socket", (home / "none.sock").string(), "--model", model,
              "--threads", "1", "-n", "8"},
             home.string());
  ASSERT_TRUE(t.expect("running a kernel inside the shell")) << t.pending();
  ASSERT_TRUE(t.expect("icam> ")) << t.pending();

  t.type("/help\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("/spawn TASK"), std::string::npos);

  // A short turn (8 tokens) completes and joins the conversation.
  t.type("hello\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  t.type("/history\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("user: hello"), std::string::npos) << t.seen();

  // Line editing: a typo erased with Backspace; a "/" inserted at the start with Ctrl-A.
  t.type("/syst\x7f\x7f\x7fystem be brief\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("system: be brief"), std::string::npos) << t.seen();
  t.type("ps\x01/\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("PID"), std::string::npos) << t.seen();

  // Ctrl-C during a long turn kills that turn's process, not the shell.
  t.type("/tokens 100000\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  t.type("tell me a very long story\r");
  ASSERT_TRUE(t.expect("tell me a very long story\x1b[K\r\r\n")) << t.pending();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  t.type("\x03");
  ASSERT_TRUE(t.expect("[interrupted: process 2 killed]", 30)) << t.pending();
  ASSERT_TRUE(t.prompt()) << t.pending();
  t.type("/info 2\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("\"cancelled\""), std::string::npos) << t.seen();

  // Background processes: spawn, list, kill; history recalls the last command.
  t.type("/spawn count to a million\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("started process 3"), std::string::npos) << t.seen();
  t.type("/kill 3\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("killed 3"), std::string::npos) << t.seen();
  t.type("\x1b[A\r");  // Up: "/kill 3" again
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("already exited"), std::string::npos) << t.seen();
  // Answering a question (human.ask) goes to the daemon, which knows nobody asked.
  t.type("/approve 3 fine\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("already exited"), std::string::npos) << t.seen();
  t.type("/deny\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("usage: /deny PID [TEXT]"), std::string::npos) << t.seen();
  t.type("/nonsense\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("unknown command"), std::string::npos) << t.seen();

  // Ctrl-C right after Enter, before the turn's process has started or while it starts (the
  // shell waits for the daemon's reply to proc.run): the process is stopped all the same, not
  // left running unseen. (Before, a Ctrl-C in those windows was dropped or lost the new
  // process's pid.)
  t.type("another very long story\r");
  ASSERT_TRUE(t.expect("another very long story\x1b[K\r\r\n")) << t.pending();
  t.interrupt();
  ASSERT_TRUE(t.expect("[interrupted: process 4 killed]", 30)) << t.pending();
  ASSERT_TRUE(t.prompt()) << t.pending();
  t.type("/info 4\r");
  ASSERT_TRUE(t.prompt()) << t.pending();
  EXPECT_NE(t.seen().find("\"cancelled\""), std::string::npos) << t.seen();

  // Ctrl-C at the prompt abandons the line; Ctrl-D leaves.
  t.type("half a line\x03");
  ASSERT_TRUE(t.expect("^C")) << t.pending();
  t.type("\x04");
  EXPECT_EQ(t.wait_exit(), 0);
  // The history file holds what was typed.
  std::ifstream history(home / "icamsh_history");
  const std::string saved((std::istreambuf_iterator<char>(history)), {});
  EXPECT_NE(saved.find("/kill 3"), std::string::npos);
  fs::remove_all(home);
  fs::remove(model);
}

}  // namespace
}  // namespace icam
