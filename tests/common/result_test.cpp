#include "common/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace icam {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(Errc::invalid_argument, "value ", v, " is not positive");
  return v;
}

Result<int> doubled(int v) {
  int x = ICAM_TRY(parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  ICAM_TRY_CTX(parse_positive(v), "check");
  return ok_status();
}

TEST(Result, ValuePropagates) {
  auto r = doubled(21);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
}

TEST(Result, ErrorPropagatesThroughTry) {
  auto r = doubled(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  EXPECT_EQ(r.error().message(), "value -1 is not positive");
}

TEST(Result, ContextIsPrefixed) {
  auto s = check(0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "check: value 0 is not positive");
  EXPECT_TRUE(check(3).ok());
}

TEST(Result, HoldsMoveOnlyValues) {
  auto make = []() -> Result<std::unique_ptr<int>> { return std::make_unique<int>(7); };
  auto use = [&]() -> Result<int> {
    auto p = ICAM_TRY(make());
    return *p;
  };
  EXPECT_EQ(*use(), 7);
}

}  // namespace
}  // namespace icam
