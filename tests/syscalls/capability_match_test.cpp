// capability_matches and check_covers, kind by kind, without the file system (paths here are
// already canonical).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "syscalls/capability.h"

namespace icam::syscalls {
namespace {

using ::testing::HasSubstr;

Capability cap(std::string_view text) {
  auto parsed = parse_capability(text);
  EXPECT_TRUE(parsed.ok()) << parsed.error().message();
  return parsed.ok() ? *parsed : Capability{};
}

bool allows(std::string_view text, const Request& request, int64_t now = 0) {
  return capability_matches(cap(text), request, now);
}

TEST(CapabilityMatchTest, FileSystem) {
  EXPECT_TRUE(allows("fs.read:/ws/**", Request::fs_read("/ws/a/b.txt")));
  EXPECT_FALSE(allows("fs.read:/ws/**", Request::fs_write("/ws/a/b.txt")));  // kinds differ
  EXPECT_FALSE(allows("fs.write:/ws/out/**", Request::fs_write("/ws/in/b.txt")));
  EXPECT_FALSE(allows("fs.read:/ws/**", Request::fs_read("/etc/passwd")));
}

TEST(CapabilityMatchTest, Exec) {
  EXPECT_TRUE(allows("exec:/usr/bin/python3", Request::exec("/usr/bin/python3")));
  EXPECT_FALSE(allows("exec:/usr/bin/python3", Request::exec("/usr/bin/python3x")));
}

TEST(CapabilityMatchTest, Network) {
  EXPECT_FALSE(allows("net:none", Request::net("db.internal", 5432)));
  EXPECT_TRUE(allows("net:db.internal:5432", Request::net("DB.internal", 5432)));
  EXPECT_FALSE(allows("net:db.internal:5432", Request::net("db.internal", 5433)));
  EXPECT_TRUE(allows("net:db.internal:*", Request::net("db.internal", 1)));
  EXPECT_TRUE(allows("net:*.corp.internal:443", Request::net("a.b.corp.internal", 443)));
  EXPECT_FALSE(allows("net:*.corp.internal:443", Request::net("corp.internal", 443)));
  EXPECT_FALSE(allows("net:*.corp.internal:443", Request::net("evilcorp.internal", 443)));
  EXPECT_TRUE(allows("net:*:443", Request::net("10.1.2.3", 443)));
  EXPECT_TRUE(allows("net:[::1]:80", Request::net("::1", 80)));
  EXPECT_FALSE(allows("net:*:*", Request::net("host.internal", 0)));  // not a port
}

TEST(CapabilityMatchTest, NamesSpawnAndExpiry) {
  EXPECT_TRUE(allows("tool:calc", Request::tool("calc")));
  EXPECT_FALSE(allows("tool:calc", Request::tool("calculator")));
  EXPECT_TRUE(allows("tool:*", Request::tool("anything")));
  // A driver allows each of its tools; DRIVER/TOOL only that one.
  EXPECT_TRUE(allows("tool:calc", Request::tool("calc/add")));
  EXPECT_TRUE(allows("tool:calc/add", Request::tool("calc/add")));
  EXPECT_FALSE(allows("tool:calc/add", Request::tool("calc/mul")));
  EXPECT_FALSE(allows("tool:calc/add", Request::tool("calc")));
  EXPECT_FALSE(allows("tool:calc", Request::tool("calculator/add")));
  EXPECT_FALSE(allows("tool:calc", Request::tool("calc/")));
  EXPECT_TRUE(allows("tool:*", Request::tool("calc/add")));
  EXPECT_TRUE(allows("kv:team/*", Request::kv("team/notes")));
  EXPECT_FALSE(allows("kv:team/*", Request::kv("other/notes")));
  EXPECT_FALSE(allows("kv:notes", Request::kv("notes2")));
  EXPECT_TRUE(allows("msg:results", Request::msg("results")));
  EXPECT_FALSE(allows("msg:results", Request::kv("results")));
  EXPECT_TRUE(allows("spawn:4", Request::spawn(4)));
  EXPECT_FALSE(allows("spawn:4", Request::spawn(5)));
  EXPECT_FALSE(allows("spawn:0", Request::spawn(1)));
  // Void from the expiry second on.
  EXPECT_TRUE(allows("tool:calc expires=1970-01-01T00:01:40Z", Request::tool("calc"), 99));
  EXPECT_FALSE(allows("tool:calc expires=1970-01-01T00:01:40Z", Request::tool("calc"), 100));
}

Status covers(std::string_view parent, std::string_view child,
              std::optional<int64_t> uses_left = std::nullopt) {
  return check_covers(cap(parent), cap(child), uses_left);
}

TEST(CapabilityMatchTest, Attenuation) {
  EXPECT_TRUE(covers("fs.read:/ws/**", "fs.read:/ws/src/**").ok());
  EXPECT_TRUE(covers("net:*.corp.internal:*", "net:api.corp.internal:443").ok());
  EXPECT_TRUE(covers("net:*.corp.internal:*", "net:*.eu.corp.internal:443").ok());
  EXPECT_TRUE(covers("net:db.internal:5432", "net:none").ok());
  EXPECT_TRUE(covers("spawn:4", "spawn:2").ok());
  EXPECT_TRUE(covers("kv:team*", "kv:team/notes*").ok());
  EXPECT_TRUE(covers("tool:*", "tool:calc").ok());
  EXPECT_TRUE(covers("tool:calc", "tool:calc/add").ok());
  EXPECT_TRUE(covers("tool:*", "tool:calc/add").ok());
  EXPECT_FALSE(covers("tool:calc/add", "tool:calc").ok());
  EXPECT_FALSE(covers("tool:calc/add", "tool:calc/mul").ok());
  EXPECT_TRUE(covers("tool:calc expires=2030-01-01T00:00:00Z",
                     "tool:calc expires=2029-01-01T00:00:00Z")
                  .ok());
  EXPECT_TRUE(covers("tool:calc uses=5", "tool:calc uses=3", 3).ok());

  auto refusal = [](Status s) {
    EXPECT_FALSE(s.ok());
    if (s.ok()) return std::string();
    EXPECT_EQ(s.error().code(), Errc::permission_denied);
    return s.error().message();
  };
  EXPECT_THAT(refusal(covers("fs.read:/ws/**", "fs.read:/etc/**")),
              HasSubstr("the target is not within the parent's"));
  EXPECT_THAT(refusal(covers("fs.read:/ws/**", "fs.write:/ws/**")), HasSubstr("different kind"));
  EXPECT_THAT(refusal(covers("fs.read:/ws/src/**", "fs.read:/ws/**")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("spawn:2", "spawn:3")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("net:none", "net:db.internal:5432")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("net:db.internal:5432", "net:db.internal:*")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("net:*.corp.internal:*", "net:*:443")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("kv:team", "kv:team*")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("tool:calc", "tool:*")), HasSubstr("not within"));
  EXPECT_THAT(refusal(covers("tool:calc expires=2030-01-01T00:00:00Z", "tool:calc")),
              HasSubstr("the child must expire too"));
  EXPECT_THAT(refusal(covers("tool:calc expires=2030-01-01T00:00:00Z",
                             "tool:calc expires=2031-01-01T00:00:00Z")),
              HasSubstr("expires later than the parent"));
  EXPECT_THAT(refusal(covers("tool:calc uses=5", "tool:calc uses=4", 3)),
              HasSubstr("asks for 4 uses; the parent has 3 left"));
  EXPECT_THAT(refusal(covers("tool:calc uses=5", "tool:calc", 3)), HasSubstr("needs one too"));
}

}  // namespace
}  // namespace icam::syscalls
