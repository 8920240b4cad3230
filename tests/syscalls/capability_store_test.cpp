// The capability store on real temporary directories: checks through canonical paths (symbolic
// link and ".." escapes refused), attenuation, HMAC chains that notice alteration, cascading
// revocation, budgets and provenance.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "syscalls/capability_store.h"
#include "tests/syscalls/temp_dir.h"

namespace icam::syscalls {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15, a fixed "now" for expiry tests

Capability cap(const std::string& text) {
  auto parsed = parse_capability(text);
  EXPECT_TRUE(parsed.ok()) << parsed.error().message();
  return parsed.ok() ? *parsed : Capability{};
}

std::vector<uint8_t> key(uint8_t fill) {
  return std::vector<uint8_t>(32, fill);
}

class CapabilityStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto made = CapabilityStore::create(key(7));
    ASSERT_TRUE(made.ok());
    store = std::move(*made);
    tmp.mkdir("ws/src");
    tmp.mkdir("ws/out");
    tmp.mkdir("secrets");
    tmp.write("ws/src/main.py");
    tmp.write("secrets/key");
  }

  TokenId grant(Pid pid, const std::string& text) {
    auto id = store->grant(pid, cap(text), "job 'test'");
    EXPECT_TRUE(id.ok()) << id.error().message();
    return id.ok() ? *id : 0;
  }
  bool allowed(Pid pid, const Request& request) {
    return store->check(pid, request, kNow).ok();
  }

  TempDir tmp;
  std::unique_ptr<CapabilityStore> store;
};

TEST_F(CapabilityStoreTest, KeyMustBeLongEnough) {
  auto short_key = CapabilityStore::create(std::vector<uint8_t>(16, 1));
  ASSERT_FALSE(short_key.ok());
  EXPECT_THAT(short_key.error().message(), HasSubstr("at least 32"));
  EXPECT_TRUE(CapabilityStore::create_with_random_key().ok());
}

TEST_F(CapabilityStoreTest, SymlinkInsideTheWorkspaceCannotEscape) {
  grant(1, "fs.read:" + tmp / "ws/**");
  tmp.symlink("/etc", "ws/etc");
  tmp.symlink(tmp / "secrets/key", "ws/src/innocent.txt");
  tmp.symlink("main.py", "ws/src/alias.py");

  EXPECT_TRUE(allowed(1, Request::fs_read(tmp / "ws/src/main.py")));
  EXPECT_TRUE(allowed(1, Request::fs_read(tmp / "ws/src/alias.py")));  // link that stays inside
  auto escape = store->check(1, Request::fs_read(tmp / "ws/etc/passwd"), kNow);
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.error().code(), Errc::permission_denied);
  EXPECT_THAT(escape.error().message(), HasSubstr("fs.read /etc/passwd (resolved from"));
  EXPECT_FALSE(allowed(1, Request::fs_read(tmp / "ws/src/innocent.txt")));
  // The raw strings all start with the workspace; only canonical paths are compared.
  EXPECT_FALSE(allowed(1, Request::fs_read(tmp / "ws/../secrets/key")));
  EXPECT_FALSE(allowed(1, Request::fs_read(tmp / "ws/src/../../secrets/key")));
  EXPECT_FALSE(allowed(1, Request::fs_read("ws/src/main.py")));  // relative
  EXPECT_FALSE(allowed(2, Request::fs_read(tmp / "ws/src/main.py")));  // another process
}

TEST_F(CapabilityStoreTest, WritesToNewFilesResolveTheDeepestExistingParent) {
  grant(1, "fs.write:" + tmp / "ws/out/**");
  tmp.symlink(tmp / "secrets", "ws/out/link");
  tmp.symlink(tmp / "secrets/planted", "ws/out/dangling");
  auto ok = store->check(1, Request::fs_write(tmp / "ws/out/new/dir/file.txt"), kNow);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->target, tmp / "ws/out/new/dir/file.txt");
  EXPECT_FALSE(allowed(1, Request::fs_write(tmp / "ws/out/link/new.txt")));
  EXPECT_FALSE(allowed(1, Request::fs_write(tmp / "ws/out/dangling")));
  EXPECT_FALSE(allowed(1, Request::fs_read(tmp / "ws/out/new.txt")));  // write is not read
}

TEST_F(CapabilityStoreTest, GrantPinsTheWorkspaceThroughItsLinks) {
  tmp.symlink(tmp / "ws", "current");  // the job names the workspace through a link
  const TokenId id = grant(1, "fs.read:" + tmp / "current/**");
  EXPECT_EQ(store->token(id)->capability.target, tmp / "ws/**");
  EXPECT_TRUE(allowed(1, Request::fs_read(tmp / "current/src/main.py")));
  EXPECT_TRUE(allowed(1, Request::fs_read(tmp / "ws/src/main.py")));

  tmp.write("python3.11");
  tmp.symlink("python3.11", "python3");
  grant(1, "exec:" + tmp / "python3");
  EXPECT_TRUE(allowed(1, Request::exec(tmp / "python3")));
  EXPECT_TRUE(allowed(1, Request::exec(tmp / "python3.11")));
  EXPECT_FALSE(allowed(1, Request::exec(tmp / "python3.12")));
}

TEST_F(CapabilityStoreTest, DerivationOnlyNarrows) {
  const TokenId ws = grant(1, "fs.read:" + tmp / "ws/**");
  const TokenId spawn = grant(1, "spawn:4");
  const TokenId calc = grant(1, "tool:calc uses=5 expires=2030-01-01T00:00:00Z");

  EXPECT_TRUE(store->derive(ws, 2, cap("fs.read:" + tmp / "ws/src/**"), kNow).ok());
  EXPECT_TRUE(store->derive(spawn, 2, cap("spawn:2"), kNow).ok());
  auto child_calc = store->derive(calc, 2, cap("tool:calc uses=2"), kNow);
  ASSERT_TRUE(child_calc.ok()) << child_calc.error().message();
  // Unset limits are inherited.
  EXPECT_EQ(store->token(*child_calc)->capability.expires, store->token(calc)->capability.expires);
  auto inherited = store->derive(calc, 2, cap("tool:calc"), kNow);
  ASSERT_TRUE(inherited.ok());
  EXPECT_EQ(store->token(*inherited)->capability.uses, 5);

  auto refused = [&](TokenId parent, const std::string& text) {
    auto r = store->derive(parent, 2, cap(text), kNow);
    EXPECT_FALSE(r.ok()) << text;
    if (r.ok()) return std::string();
    EXPECT_EQ(r.error().code(), Errc::permission_denied);
    return r.error().message();
  };
  EXPECT_THAT(refused(ws, "fs.read:" + tmp / "**"), HasSubstr("not within"));
  EXPECT_THAT(refused(ws, "fs.read:" + tmp / "secrets/**"), HasSubstr("not within"));
  EXPECT_THAT(refused(ws, "fs.write:" + tmp / "ws/**"), HasSubstr("different kind"));
  EXPECT_THAT(refused(spawn, "spawn:5"), HasSubstr("not within"));
  EXPECT_THAT(refused(calc, "tool:calc expires=2031-01-01T00:00:00Z"), HasSubstr("later"));
  EXPECT_THAT(refused(calc, "tool:calc uses=6"), HasSubstr("asks for 6 uses"));
  // A link inside the parent's workspace does not widen a derived glob.
  tmp.symlink(tmp / "secrets", "ws/src/s");
  EXPECT_THAT(refused(ws, "fs.read:" + tmp / "ws/src/s/**"), HasSubstr("not within"));
}

TEST_F(CapabilityStoreTest, DeriveForChildIsAllOrNothing) {
  grant(1, "fs.read:" + tmp / "ws/**");
  grant(1, "tool:calc");
  auto all = store->derive_for_child(1, 2, {cap("tool:calc"), cap("fs.read:" + tmp / "ws/src/**")},
                                     kNow);
  ASSERT_TRUE(all.ok()) << all.error().message();
  EXPECT_EQ(all->size(), 2u);
  EXPECT_TRUE(allowed(2, Request::tool("calc")));

  auto partial = store->derive_for_child(1, 3, {cap("tool:calc"), cap("net:*:443")}, kNow);
  ASSERT_FALSE(partial.ok());
  EXPECT_THAT(partial.error().message(), HasSubstr("capability \"net:*:443\" for pid 3"));
  EXPECT_TRUE(store->tokens_of(3).empty());  // tool:calc was not left behind
  EXPECT_FALSE(allowed(3, Request::tool("calc")));
}

TEST_F(CapabilityStoreTest, VerifyNoticesAlteredTokens) {
  const TokenId root = grant(1, "fs.read:" + tmp / "ws/**");
  auto child = store->derive(root, 2, cap("fs.read:" + tmp / "ws/src/**"), kNow);
  ASSERT_TRUE(child.ok());
  auto grandchild = store->derive(*child, 3, cap("fs.read:" + tmp / "ws/src/*.py"), kNow);
  ASSERT_TRUE(grandchild.ok());
  EXPECT_TRUE(store->verify(*grandchild).ok());

  // A token presented from outside with a widened capability does not verify.
  Token presented = *store->token(*grandchild);
  EXPECT_TRUE(store->verify(presented).ok());
  presented.capability = cap("fs.read:/**");
  auto widened = store->verify(presented);
  ASSERT_FALSE(widened.ok());
  EXPECT_EQ(widened.error().code(), Errc::corrupt);
  presented = *store->token(*grandchild);
  presented.owner = 9;
  EXPECT_FALSE(store->verify(presented).ok());
  presented = *store->token(*grandchild);
  presented.parent = root;  // re-parented
  EXPECT_FALSE(store->verify(presented).ok());

  // Tampering in the store's own memory: the chain of every descendant fails, naming the token.
  store->mutable_token_for_testing(*child)->capability = cap("fs.read:/**");
  auto broken = store->verify(*grandchild);
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.error().message(), HasSubstr(str_cat("token ", *child, ": MAC mismatch")));
  EXPECT_TRUE(store->verify(root).ok());
  auto denied = store->check(3, Request::fs_read(tmp / "ws/src/main.py"), kNow);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code(), Errc::corrupt);
}

TEST_F(CapabilityStoreTest, TokensFromAnotherKeyDoNotVerify) {
  const TokenId id = grant(1, "tool:calc");
  auto other = CapabilityStore::create(key(8));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->grant(1, cap("tool:calc"), "job 'test'").ok());
  const Token foreign = *(*other)->token(id);
  EXPECT_EQ(foreign.id, id);
  EXPECT_FALSE(store->verify(foreign).ok());
  EXPECT_TRUE(store->verify(*store->token(id)).ok());
}

TEST_F(CapabilityStoreTest, RevokeCascadesToDescendants) {
  const TokenId root = grant(1, "tool:*");
  const TokenId a = *store->derive(root, 2, cap("tool:calc"), kNow);
  const TokenId b = *store->derive(a, 3, cap("tool:calc"), kNow);
  const TokenId sibling = *store->derive(root, 4, cap("tool:search"), kNow);
  EXPECT_TRUE(allowed(3, Request::tool("calc")));

  auto revoked = store->revoke(a);
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(*revoked, 2u);  // a and b
  EXPECT_TRUE(store->token(b)->revoked);
  EXPECT_FALSE(store->token(sibling)->revoked);
  auto denied = store->check(3, Request::tool("calc"), kNow);
  ASSERT_FALSE(denied.ok());
  EXPECT_THAT(denied.error().message(), HasSubstr("is revoked"));
  EXPECT_FALSE(allowed(2, Request::tool("calc")));
  EXPECT_TRUE(allowed(4, Request::tool("search")));
  EXPECT_TRUE(allowed(1, Request::tool("anything")));
  EXPECT_FALSE(store->derive(a, 5, cap("tool:calc"), kNow).ok());
  EXPECT_EQ(store->revoke(a).value_or(99), 0u);  // already revoked
  EXPECT_FALSE(store->revoke(12345).ok());

  EXPECT_EQ(store->revoke_owner(1), 2u);  // root and sibling
  EXPECT_FALSE(allowed(4, Request::tool("search")));
}

TEST_F(CapabilityStoreTest, BudgetsAreSharedDownTheTree) {
  const TokenId root = grant(1, "tool:calc uses=3");
  const TokenId child = *store->derive(root, 2, cap("tool:calc uses=3"), kNow);
  EXPECT_TRUE(store->authorize(2, Request::tool("calc"), kNow).ok());
  EXPECT_TRUE(store->authorize(1, Request::tool("calc"), kNow).ok());
  EXPECT_EQ(store->token(root)->uses_left, 1);
  EXPECT_EQ(store->token(child)->uses_left, 2);
  EXPECT_TRUE(store->authorize(2, Request::tool("calc"), kNow).ok());
  // The root's budget is spent, so the child's is void too.
  auto spent = store->authorize(2, Request::tool("calc"), kNow);
  ASSERT_FALSE(spent.ok());
  EXPECT_THAT(spent.error().message(), HasSubstr(str_cat("token ", root, " has no uses left")));
  // check() spends nothing.
  const TokenId other = grant(5, "tool:calc uses=1");
  EXPECT_TRUE(store->check(5, Request::tool("calc"), kNow).ok());
  EXPECT_TRUE(store->check(5, Request::tool("calc"), kNow).ok());
  EXPECT_EQ(store->token(other)->uses_left, 1);
}

TEST_F(CapabilityStoreTest, ExpiredTokensAllowNothing) {
  grant(1, "tool:calc expires=2027-01-15T08:00:00Z");  // kNow + 0
  EXPECT_TRUE(store->check(1, Request::tool("calc"), kNow - 1).ok());
  EXPECT_FALSE(store->check(1, Request::tool("calc"), kNow).ok());
}

TEST_F(CapabilityStoreTest, ConcurrentUsesNeverExceedTheBudget) {
  grant(1, "tool:calc uses=100");
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (store->authorize(1, Request::tool("calc"), kNow).ok()) ++granted;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 100);
}

TEST_F(CapabilityStoreTest, ProvenanceSaysWhereEachCameFrom) {
  const TokenId root = grant(1, "tool:calc uses=4");
  const TokenId child = *store->derive(root, 2, cap("tool:calc uses=2"), kNow);
  grant(2, "net:none");
  const TokenId revoked = *store->derive(root, 2, cap("tool:calc uses=1"), kNow);
  ASSERT_TRUE(store->revoke(revoked).ok());

  const auto entries = store->provenance(2, kNow);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].token, child);
  EXPECT_EQ(entries[0].capability, "tool:calc uses=2");
  EXPECT_EQ(entries[0].origin, str_cat("derived from pid 1 token ", root));
  EXPECT_EQ(entries[0].state, "active");
  EXPECT_EQ(entries[1].origin, "granted by job 'test'");
  EXPECT_EQ(entries[2].state, "revoked");

  const std::string table = format_provenance_table(entries);
  EXPECT_THAT(table, HasSubstr("CAPABILITY"));
  EXPECT_THAT(table, HasSubstr("tool:calc uses=2"));
  EXPECT_THAT(table, HasSubstr("derived from pid 1 token"));
  const std::string jsonl = format_provenance_jsonl(entries);
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 3);
  EXPECT_THAT(jsonl, HasSubstr("\"state\":\"revoked\""));
}

}  // namespace
}  // namespace icam::syscalls
