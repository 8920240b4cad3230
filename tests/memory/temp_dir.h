// A fresh directory under the temporary directory, removed with everything in it when the object
// goes away: each page store test gets its own real RocksDB directory.
#pragma once

#include <string>

namespace icam::memory::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace icam::memory::testing
