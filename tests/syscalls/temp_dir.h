// A fresh directory under the system's temporary directory, removed with everything in it at the
// end of the test. Its path is canonical (the temporary directory itself may be a link).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace icam::syscalls::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "icam-caps-XXXXXX").string();
    const char* made = ::mkdtemp(pattern.data());
    path_ = std::filesystem::canonical(made ? made : pattern).string();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& relative) const { return path_ + "/" + relative; }

  void mkdir(const std::string& relative) const {
    std::filesystem::create_directories(*this / relative);
  }
  void write(const std::string& relative, const std::string& text = "x") const {
    std::ofstream(*this / relative) << text;
  }
  // A symbolic link at `relative` whose target is `target`, written as given (absolute or not).
  void symlink(const std::string& target, const std::string& relative) const {
    std::filesystem::create_symlink(target, *this / relative);
  }

 private:
  std::string path_;
};

}  // namespace icam::syscalls::testing
