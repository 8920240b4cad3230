// GgufFile::open on real files: mapping, and the errors for paths that are not GGUF files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "drivers/llm/gguf/gguf.h"
#include "drivers/llm/gguf/gguf_writer.h"
#include "tests/drivers/llm/gguf/gguf_test_util.h"

namespace icam::llm {
namespace {

namespace fs = std::filesystem;

class GgufOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("icam_gguf_open_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(GgufOpen, MapsAWrittenFile) {
  GgufWriter writer;
  writer.set_string("general.architecture", "x");
  ASSERT_TRUE(writer.add_tensor("t", GgmlType::F32, {8}, testing::pattern_bytes(32, 9)).ok());
  const std::string file_path = path("model.gguf");
  ASSERT_TRUE(writer.write_file(file_path).ok());
  // Only the final file is left behind, no temporary.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  auto file = GgufFile::open(file_path);
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_EQ((*file)->path(), file_path);
  EXPECT_EQ((*file)->file_size(), writer.serialize().size());
  const GgufTensor* t = (*file)->find_tensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(t->data, testing::pattern_bytes(32, 9).data(), 32), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 32, 0u);
}

TEST_F(GgufOpen, CorruptFileNamesThePath) {
  const std::string file_path = path("bad.gguf");
  const char bytes[] = {'G', 'G', 'U', 'F', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::ofstream(file_path, std::ios::binary).write(bytes, sizeof(bytes));
  auto file = GgufFile::open(file_path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), Errc::unsupported);
  EXPECT_EQ(file.error().message().rfind(file_path + ": header version (offset 4)", 0), 0u)
      << file.error().message();
}

TEST_F(GgufOpen, MissingFile) {
  auto file = GgufFile::open(path("absent.gguf"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), Errc::not_found);
  EXPECT_EQ(file.error().message(), path("absent.gguf") + ": no such file");
}

TEST_F(GgufOpen, Directory) {
  auto file = GgufFile::open(dir_.string());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), Errc::io);
  EXPECT_NE(file.error().message().find("is a directory"), std::string::npos);
}

TEST_F(GgufOpen, EmptyFile) {
  const std::string file_path = path("empty.gguf");
  std::ofstream{file_path};
  auto file = GgufFile::open(file_path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), Errc::io);
  EXPECT_EQ(file.error().message(), file_path + ": the file is empty (0 bytes), not a GGUF model");
}

TEST_F(GgufOpen, NotARegularFile) {
  auto file = GgufFile::open("/dev/null");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code(), Errc::io);
  EXPECT_NE(file.error().message().find("/dev/null: is not a regular file"), std::string::npos);
}

TEST_F(GgufOpen, WriteFileIntoMissingDirectoryFails) {
  GgufWriter writer;
  auto status = writer.write_file(path("no/such/dir/model.gguf"));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), Errc::io);
  EXPECT_NE(status.error().message().find("no/such/dir/model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace icam::llm
