#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace icam {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (size_t n : {0ul, 1ul, 7ul, 1000ul, 4097ul}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, 16, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, ManyShortLoopsInARow) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  for (int round = 0; round < 2000; ++round)
    pool.parallel_for(64, 4, [&](size_t b, size_t e) { sum.fetch_add(static_cast<long>(e - b)); });
  EXPECT_EQ(sum.load(), 2000 * 64);
}

TEST(ThreadPool, RunOnAllVisitsEachThread) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> seen(4);
  pool.run_on_all([&](int index, int count) {
    EXPECT_EQ(count, 4);
    seen[index].fetch_add(1);
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace icam
