// mem.store and mem.recall's JSON in and out, on a real archive file.
#include "memory/archive_syscalls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(ArchiveSyscalls, StoreThenRecall) {
  testing::TempDir dir;
  auto archive = ArchiveStore::open(dir.path() + "/archive.db");
  ASSERT_TRUE(archive.ok()) << archive.error().message();
  auto stored = serve_mem_store(**archive, "7/agent",
                                {{"text", "The deploy key is in vault A."}, {"tags", {"deploy"}}});
  ASSERT_TRUE(stored.ok()) << stored.error().message();
  const int64_t id = json::parse(*stored)["id"].get<int64_t>();
  ASSERT_TRUE(serve_mem_store(**archive, "7/agent", {{"text", "unrelated"}}).ok());

  auto recalled = serve_mem_recall(**archive, "7/agent", {{"query", "where is the deploy key"}});
  ASSERT_TRUE(recalled.ok()) << recalled.error().message();
  const json hits = json::parse(*recalled)["hits"];
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["id"], id);
  EXPECT_EQ(hits[0]["text"], "The deploy key is in vault A.");
  EXPECT_EQ(hits[0]["tags"], json::array({"deploy"}));
  EXPECT_GT(hits[0]["score"].get<double>(), 0);

  // Nothing found is an empty list; a limit out of range and a wordless query are clear errors.
  EXPECT_EQ(*serve_mem_recall(**archive, "7/agent", {{"query", "zebra"}}), R"({"hits":[]})");
  auto bad_limit = serve_mem_recall(**archive, "7/agent", {{"query", "key"}, {"limit", 500}});
  ASSERT_FALSE(bad_limit.ok());
  EXPECT_THAT(bad_limit.error().message(), HasSubstr("limit 500"));
  EXPECT_FALSE(serve_mem_recall(**archive, "7/agent", {{"query", "()"}}).ok());
  EXPECT_FALSE(serve_mem_store(**archive, "7/agent", {{"tags", {"x"}}}).ok());
}

}  // namespace
}  // namespace icam::memory
