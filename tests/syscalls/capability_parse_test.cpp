// The capability grammar: every kind round-trips through its canonical text, and malformed
// strings are refused with the column and the reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "syscalls/capability.h"

namespace icam::syscalls {
namespace {

using ::testing::HasSubstr;

Capability parse_ok(std::string_view text) {
  auto cap = parse_capability(text);
  EXPECT_TRUE(cap.ok()) << text << ": " << cap.error().message();
  return cap.ok() ? *cap : Capability{};
}

std::string parse_error(std::string_view text) {
  auto cap = parse_capability(text);
  EXPECT_FALSE(cap.ok()) << text << " parsed as " << (cap.ok() ? cap->to_string() : "");
  if (cap.ok()) return "";
  EXPECT_EQ(cap.error().code(), Errc::invalid_argument);
  return cap.error().message();
}

TEST(CapabilityParseTest, EveryKindRoundTrips) {
  for (const char* text : {"fs.read:/ws/**", "fs.write:/ws/out/**", "fs.read:/", "fs.read:/**",
                           "fs.read:/ws/*.txt", "fs.read:/ws/a?c/**/x", "exec:/usr/bin/python3",
                           "net:none", "net:db.internal:5432", "net:*.corp.internal:*", "net:*:443",
                           "net:10.0.0.1:80", "net:[::1]:8080", "tool:calc", "tool:*", "spawn:0",
                           "spawn:4", "kv:notes", "kv:team/notes*", "kv:*", "msg:results",
                           "tool:calc uses=3", "fs.read:/ws/** expires=2030-01-02T03:04:05Z",
                           "spawn:2 uses=1 expires=2030-01-01T00:00:00Z"}) {
    const Capability cap = parse_ok(text);
    EXPECT_EQ(cap.to_string(), text);
    EXPECT_EQ(parse_ok(cap.to_string()), cap) << text;
  }
}

TEST(CapabilityParseTest, FieldsAreFilledIn) {
  const Capability net = parse_ok("net:DB.Internal:0443");
  EXPECT_EQ(net.kind, CapKind::net);
  EXPECT_EQ(net.host, "db.internal");
  EXPECT_EQ(net.port, 443);
  EXPECT_EQ(net.to_string(), "net:db.internal:443");
  EXPECT_TRUE(parse_ok("net:none").is_net_none());
  EXPECT_EQ(parse_ok("net:[0:0::1]:22").host, "[::1]");
  EXPECT_EQ(parse_ok("spawn:4").count, 4);
  const Capability budget = parse_ok("tool:calc  expires=1970-01-01T00:01:00Z   uses=7");
  EXPECT_EQ(budget.uses, 7);
  EXPECT_EQ(budget.expires, 60);
  EXPECT_EQ(budget.to_string(), "tool:calc uses=7 expires=1970-01-01T00:01:00Z");
}

TEST(CapabilityParseTest, ErrorsSayWhereAndWhat) {
  EXPECT_THAT(parse_error(""), HasSubstr("empty"));
  EXPECT_THAT(parse_error("fs.read"), HasSubstr("column 8: expected ':' after the kind"));
  EXPECT_THAT(parse_error("fs.red:/ws"), HasSubstr("column 1: unknown kind 'fs.red'"));
  EXPECT_THAT(parse_error("fs.read:ws/**"), HasSubstr("column 9: a path must be absolute"));
  EXPECT_THAT(parse_error("fs.read:"), HasSubstr("column 9: expected a target"));
  EXPECT_THAT(parse_error("fs.read:/ws/a**"), HasSubstr("column 14: '**' must be a whole segment"));
  EXPECT_THAT(parse_error("fs.read:/ws/../etc"), HasSubstr("column 13: '.' and '..' segments"));
  EXPECT_THAT(parse_error("fs.read:/ws//x"), HasSubstr("column 13: empty segment"));
  EXPECT_THAT(parse_error("fs.write:/ws/"), HasSubstr("column 14: trailing '/'"));
  EXPECT_THAT(parse_error("exec:/usr/bin/*"), HasSubstr("column 15: exec takes one program path"));
  EXPECT_THAT(parse_error("exec:python3"), HasSubstr("column 6: a path must be absolute"));
  EXPECT_THAT(parse_error("net:db.internal"), HasSubstr("expected net:none or net:HOST:PORT"));
  EXPECT_THAT(parse_error("net:db.internal:70000"), HasSubstr("column 17: port: expected a number"));
  EXPECT_THAT(parse_error("net:db..internal:80"), HasSubstr("column 8: empty label"));
  EXPECT_THAT(parse_error("net:a*b:80"), HasSubstr("column 6: '*' is allowed only"));
  EXPECT_THAT(parse_error("net:::1:80"), HasSubstr("IPv6 address goes in brackets"));
  EXPECT_THAT(parse_error("net:[zz]:80"), HasSubstr("not an IPv6 address"));
  EXPECT_THAT(parse_error("tool:ca$c"), HasSubstr("column 8: unexpected character '$'"));
  EXPECT_THAT(parse_error("tool:calc*"), HasSubstr("'*' is allowed only alone"));
  // External drivers' tools: DRIVER/TOOL, one level, no wildcard part.
  EXPECT_EQ(parse_ok("tool:calc/add").target, "calc/add");
  EXPECT_EQ(parse_ok("tool:calc/add uses=2").to_string(), "tool:calc/add uses=2");
  EXPECT_THAT(parse_error("tool:calc/"), HasSubstr("column 11: expected a tool name"));
  EXPECT_THAT(parse_error("tool:/add"), HasSubstr("column 6: expected a driver name"));
  EXPECT_THAT(parse_error("tool:calc/*"), HasSubstr("column 11: write tool:calc for every tool"));
  EXPECT_THAT(parse_error("tool:*/add"), HasSubstr("column 6: '*' is allowed only alone"));
  EXPECT_THAT(parse_error("tool:calc/a/b"), HasSubstr("column 12: unexpected character '/'"));
  EXPECT_THAT(parse_error("kv:a*b"), HasSubstr("column 5: '*' is allowed only at the end"));
  EXPECT_THAT(parse_error("spawn:-1"), HasSubstr("column 7: expected a digit"));
  EXPECT_THAT(parse_error("spawn:2000000"), HasSubstr("from 0 to 1000000"));
  EXPECT_THAT(parse_error("tool:calc fast"), HasSubstr("column 11: unknown option"));
  EXPECT_THAT(parse_error("tool:calc uses=0"), HasSubstr("column 16: expected a number from 1"));
  EXPECT_THAT(parse_error("tool:calc uses=1 uses=2"), HasSubstr("column 18: 'uses' given twice"));
  EXPECT_THAT(parse_error("tool:calc expires=2030-02-30T00:00:00Z"),
              HasSubstr("not a valid date and time"));
  EXPECT_THAT(parse_error("tool:calc expires=tomorrow"), HasSubstr("expected a UTC time"));
  EXPECT_THAT(parse_error("tool:calc\tuses=1"), HasSubstr("column 10: control character"));
}

TEST(CapabilityParseTest, AListNamesTheBadElement) {
  auto caps = parse_capabilities({"tool:calc", "spawn:x"});
  ASSERT_FALSE(caps.ok());
  EXPECT_THAT(caps.error().message(), HasSubstr("capabilities[1]: capability \"spawn:x\""));
  auto good = parse_capabilities({"tool:calc", "net:none"});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->size(), 2u);
}

TEST(CapabilityParseTest, UtcTimesRoundTrip) {
  for (int64_t t : {int64_t{0}, int64_t{951782400} /* 2000-02-29 */, int64_t{1893456000}}) {
    auto back = parse_utc(format_utc(t));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, t);
  }
  EXPECT_EQ(format_utc(951782400), "2000-02-29T00:00:00Z");
  EXPECT_FALSE(parse_utc("2001-02-29T00:00:00Z").ok());
  EXPECT_FALSE(parse_utc("2001-01-01 00:00:00Z").ok());
}

}  // namespace
}  // namespace icam::syscalls
