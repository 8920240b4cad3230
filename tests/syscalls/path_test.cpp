// Canonical paths on a real temporary tree with real symbolic links, and glob matching and
// coverage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "syscalls/canonical_path.h"
#include "syscalls/path_glob.h"
#include "tests/syscalls/temp_dir.h"

namespace icam::syscalls {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

std::string canon(const std::string& path) {
  auto resolved = canonicalize_path(path);
  EXPECT_TRUE(resolved.ok()) << path << ": " << resolved.error().message();
  return resolved.ok() ? *resolved : "";
}

class CanonicalPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp.mkdir("ws/sub");
    tmp.mkdir("outside");
    tmp.write("ws/sub/a.txt");
    tmp.write("outside/secret");
  }
  TempDir tmp;
};

TEST_F(CanonicalPathTest, DotsAreResolved) {
  EXPECT_EQ(canon(tmp / "ws/./sub/../sub/a.txt"), tmp / "ws/sub/a.txt");
  EXPECT_EQ(canon(tmp / "ws/../outside/secret"), tmp / "outside/secret");
  EXPECT_EQ(canon(tmp / "ws//sub///a.txt"), tmp / "ws/sub/a.txt");
  EXPECT_EQ(canon("/.."), "/");
  EXPECT_EQ(canon("/../../"), "/");
  EXPECT_EQ(canon("/"), "/");
}

TEST_F(CanonicalPathTest, SymbolicLinksAreFollowed) {
  tmp.symlink("/etc", "ws/etc");                // absolute, out of the tree
  tmp.symlink("../outside", "ws/up");           // relative, out of the workspace
  tmp.symlink("sub/a.txt", "ws/alias");         // relative, inside
  tmp.symlink(tmp / "ws/up/secret", "ws/hop");  // a link through a link
  EXPECT_EQ(canon(tmp / "ws/etc/passwd"), "/etc/passwd");
  EXPECT_EQ(canon(tmp / "ws/up/secret"), tmp / "outside/secret");
  EXPECT_EQ(canon(tmp / "ws/alias"), tmp / "ws/sub/a.txt");
  EXPECT_EQ(canon(tmp / "ws/hop"), tmp / "outside/secret");
  // ".." after a link applies to where the link leads, as in the kernel.
  EXPECT_EQ(canon(tmp / "ws/up/../ws/sub"), tmp / "ws/sub");
}

TEST_F(CanonicalPathTest, MissingComponentsAreKeptAsWritten) {
  EXPECT_EQ(canon(tmp / "ws/new/deeper/file.txt"), tmp / "ws/new/deeper/file.txt");
  tmp.symlink(tmp / "outside/newdir/x", "ws/dangling");
  EXPECT_EQ(canon(tmp / "ws/dangling"), tmp / "outside/newdir/x");
  // Below a regular file nothing exists either.
  EXPECT_EQ(canon(tmp / "ws/sub/a.txt/more"), tmp / "ws/sub/a.txt/more");
}

TEST_F(CanonicalPathTest, BadPathsAreRefused) {
  auto relative = canonicalize_path("ws/a");
  ASSERT_FALSE(relative.ok());
  EXPECT_THAT(relative.error().message(), HasSubstr("not absolute"));
  EXPECT_FALSE(canonicalize_path("").ok());
  EXPECT_FALSE(canonicalize_path(std::string("/ws\0x", 5)).ok());
  EXPECT_FALSE(canonicalize_path("/" + std::string(5000, 'a')).ok());

  auto up_from_missing = canonicalize_path(tmp / "ws/missing/../sub");
  ASSERT_FALSE(up_from_missing.ok());
  EXPECT_THAT(up_from_missing.error().message(), HasSubstr("'..' after a component"));

  tmp.symlink("loop-b", "ws/loop-a");
  tmp.symlink("loop-a", "ws/loop-b");
  auto loop = canonicalize_path(tmp / "ws/loop-a/x");
  ASSERT_FALSE(loop.ok());
  EXPECT_THAT(loop.error().message(), HasSubstr("symbolic links (a loop?)"));
}

TEST(GlobTest, Validation) {
  EXPECT_TRUE(validate_glob("/ws/**").ok());
  EXPECT_TRUE(validate_glob("/").ok());
  EXPECT_TRUE(validate_glob("/ws/**/*.py").ok());
  EXPECT_FALSE(validate_glob("ws").ok());
  EXPECT_FALSE(validate_glob("/ws/").ok());
  EXPECT_FALSE(validate_glob("/ws/./a").ok());
  EXPECT_FALSE(validate_glob("/ws/a**").ok());
  EXPECT_FALSE(validate_glob("/ws/a\nb").ok());
  EXPECT_FALSE(validate_glob("/" + std::string(2000, 'a')).ok());
}

TEST(GlobTest, Matching) {
  struct Case {
    const char* glob;
    const char* path;
    bool match;
  };
  for (const Case& c : {
           Case{"/ws/**", "/ws", true},
           Case{"/ws/**", "/ws/a", true},
           Case{"/ws/**", "/ws/a/b/c.txt", true},
           Case{"/ws/**", "/wsx/a", false},
           Case{"/ws/**", "/etc/passwd", false},
           Case{"/ws/*", "/ws/a", true},
           Case{"/ws/*", "/ws/a/b", false},  // '*' stays within one segment
           Case{"/ws/*", "/ws", false},
           Case{"/ws/*.txt", "/ws/notes.txt", true},
           Case{"/ws/*.txt", "/ws/.txt", true},
           Case{"/ws/*.txt", "/ws/notes.txt.bak", false},
           Case{"/ws/?.c", "/ws/a.c", true},
           Case{"/ws/?.c", "/ws/ab.c", false},
           Case{"/ws/**/x", "/ws/x", true},
           Case{"/ws/**/x", "/ws/a/b/x", true},
           Case{"/ws/**/x", "/ws/a/b/y", false},
           Case{"/ws/**/out/**", "/ws/a/out/b/c", true},
           Case{"/ws/**/out/**", "/ws/a/in/b/c", false},
           Case{"/ws/a*b*c", "/ws/aXbYbZc", true},
           Case{"/ws/a*b*c", "/ws/aXbYbZ", false},
           Case{"/**", "/", true},
           Case{"/**", "/etc/shadow", true},
           Case{"/", "/", true},
           Case{"/", "/a", false},
       }) {
    EXPECT_EQ(glob_matches(c.glob, c.path), c.match) << c.glob << " vs " << c.path;
  }
}

TEST(GlobTest, Coverage) {
  struct Case {
    const char* outer;
    const char* inner;
    bool covered;
  };
  for (const Case& c : {
           Case{"/ws/**", "/ws/**", true},
           Case{"/ws/**", "/ws/out/**", true},
           Case{"/ws/**", "/ws/a.txt", true},
           Case{"/ws/**", "/ws/*/x", true},
           Case{"/ws/**", "/ws", true},
           Case{"/ws/**", "/**", false},
           Case{"/ws/**", "/etc/**", false},
           Case{"/ws/**", "/w*/**", false},
           Case{"/ws/out/**", "/ws/**", false},
           Case{"/ws/*", "/ws/a", true},
           Case{"/ws/*", "/ws/*.txt", true},
           Case{"/ws/*", "/ws/**", false},  // '**' may be deeper than one segment
           Case{"/ws/*", "/ws/a/b", false},
           Case{"/ws/*.txt", "/ws/*", false},
           Case{"/ws/*.txt", "/ws/a?.txt", true},
           Case{"/ws/?", "/ws/*", false},
           Case{"/ws/a?c", "/ws/abc", true},
           Case{"/ws/abc", "/ws/a?c", false},
           Case{"/**", "/anything/**/x", true},
           Case{"/ws/**/x", "/ws/a/**/x", true},
           Case{"/ws/**/x", "/ws/a/**", false},
       }) {
    EXPECT_EQ(glob_covers(c.outer, c.inner), c.covered) << c.outer << " covers " << c.inner;
  }
}

TEST(GlobTest, LiteralPrefix) {
  EXPECT_EQ(glob_literal_prefix("/ws/out/**/*.txt"), "/ws/out");
  EXPECT_EQ(glob_literal_prefix("/ws/a.txt"), "/ws/a.txt");
  EXPECT_EQ(glob_literal_prefix("/**"), "/");
  EXPECT_EQ(glob_literal_prefix("/ws/*"), "/ws");
}

}  // namespace
}  // namespace icam::syscalls
