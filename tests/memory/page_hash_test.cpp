// Page hashes chain through their parents and depend on the tokens and the model identity; the
// model identity depends on the hyper-parameters, the tensor layout and the weights.
#include "memory/page_hash.h"

#include <gtest/gtest.h>

#include <vector>

#include "memory/model_identity.h"
#include "tests/drivers/llm/engine/tiny_model.h"

namespace icam::memory {
namespace {

ModelIdentity identity(uint8_t b) {
  ModelIdentity m;
  m.digest.fill(b);
  return m;
}

TEST(PageHash, DependsOnParentTokensAndModel) {
  const std::vector<int32_t> t = {1, 5, 9, 200};
  const PageHash h = page_hash(kRootPageHash, t, identity(1));
  EXPECT_EQ(h, page_hash(kRootPageHash, t, identity(1))) << "deterministic";
  EXPECT_NE(h, page_hash(kRootPageHash, t, identity(2))) << "another model";
  EXPECT_NE(h, page_hash(h, t, identity(1))) << "another parent";
  EXPECT_NE(h, page_hash(kRootPageHash, std::vector<int32_t>{1, 5, 9, 201}, identity(1)));
  EXPECT_NE(h, page_hash(kRootPageHash, std::vector<int32_t>{1, 5, 9}, identity(1)));
  EXPECT_NE(h, kRootPageHash);
}

TEST(PageHash, FullPagesChainFromTheRoot) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 10; ++i) tokens.push_back(i * 3 + 1);
  const std::vector<PageHash> hashes = full_page_hashes(tokens, 4, identity(7));
  ASSERT_EQ(hashes.size(), 2u) << "the partial third page has no hash";
  const std::span<const int32_t> all(tokens);
  EXPECT_EQ(hashes[0], page_hash(kRootPageHash, all.subspan(0, 4), identity(7)));
  EXPECT_EQ(hashes[1], page_hash(hashes[0], all.subspan(4, 4), identity(7)));
  EXPECT_EQ(full_page_hashes(tokens, 4, identity(7), 1).size(), 1u);

  // A context that differs in its first page differs in every later page's hash too, even where
  // the later pages' own tokens are equal.
  std::vector<int32_t> other = tokens;
  other[0] = 99;
  const std::vector<PageHash> other_hashes = full_page_hashes(other, 4, identity(7));
  EXPECT_NE(other_hashes[0], hashes[0]);
  EXPECT_NE(other_hashes[1], hashes[1]);
  // One that differs only in its second page shares the first.
  other = tokens;
  other[5] = 99;
  EXPECT_EQ(full_page_hashes(other, 4, identity(7))[0], hashes[0]);
  EXPECT_NE(full_page_hashes(other, 4, identity(7))[1], hashes[1]);
}

TEST(ModelIdentity, SameFileSameIdentityOtherWeightsOrShapeOtherIdentity) {
  using llm::testing::TinySpec;
  const TinySpec base = llm::testing::tiny_spec("llama");
  auto a = llm::Model::load(llm::testing::tiny_model_file(base));
  auto a2 = llm::Model::load(llm::testing::tiny_model_file(base));
  ASSERT_TRUE(a.ok() && a2.ok());
  EXPECT_EQ(model_identity(**a), model_identity(**a2));

  TinySpec reseeded = base;
  reseeded.seed = base.seed + 1;  // same shapes, other weights
  auto b = llm::Model::load(llm::testing::tiny_model_file(reseeded));
  ASSERT_TRUE(b.ok());
  EXPECT_NE(model_identity(**a), model_identity(**b));
  EXPECT_EQ(config_identity((*a)->config()), config_identity((*b)->config()))
      << "the hyper-parameters alone do not see the weights";

  TinySpec other_eps = base;
  other_eps.rms_eps = 1e-5f;
  auto c = llm::Model::load(llm::testing::tiny_model_file(other_eps));
  ASSERT_TRUE(c.ok());
  EXPECT_NE(model_identity(**a), model_identity(**c));
  EXPECT_NE(config_identity((*a)->config()), config_identity((*c)->config()));

  auto q = llm::Model::load(llm::testing::tiny_model_file(
      llm::testing::tiny_spec("llama", llm::GgmlType::Q8_0)));  // another tensor layout
  ASSERT_TRUE(q.ok());
  EXPECT_NE(model_identity(**a), model_identity(**q));

  // The same page tokens on two models hash apart.
  const std::vector<int32_t> t = {1, 2, 3, 4};
  EXPECT_NE(page_hash(kRootPageHash, t, model_identity(**a)),
            page_hash(kRootPageHash, t, model_identity(**b)));
}

}  // namespace
}  // namespace icam::memory
