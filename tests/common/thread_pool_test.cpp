#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>
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

// Each thread reads its own share front to back (each chunk starting where its previous one
// ended), then helps with the other's from the back (each chunk ending where its previous stolen
// one began); no chunk is wider than the grain.
TEST(ThreadPool, AThreadTakesItsShareInOrderAndStealsFromTheBack) {
  ThreadPool pool(2);
  for (int round = 0; round < 50; ++round) {
    std::mutex mutex;
    std::vector<std::pair<std::thread::id, std::pair<size_t, size_t>>> chunks;
    pool.parallel_for(1003, 10, [&](size_t b, size_t e) {
      ASSERT_LE(e - b, 10u);
      std::lock_guard lock(mutex);
      chunks.push_back({std::this_thread::get_id(), {b, e}});
    });
    std::vector<std::thread::id> threads;
    for (const auto& c : chunks)
      if (std::find(threads.begin(), threads.end(), c.first) == threads.end())
        threads.push_back(c.first);
    for (const std::thread::id& id : threads) {
      std::vector<std::pair<size_t, size_t>> mine;
      for (const auto& c : chunks)
        if (c.first == id) mine.push_back(c.second);
      size_t i = 1;
      while (i < mine.size() && mine[i].first == mine[i - 1].second) ++i;  // own share
      if (i < mine.size()) {
        // Stolen: from the other share's back, backwards.
        for (size_t j = i + 1; j < mine.size(); ++j)
          ASSERT_EQ(mine[j].second, mine[j - 1].first) << "round " << round << " chunk " << j;
      }
    }
  }
}

// A thread held up in its first chunk (as by a busy machine) has the rest of its share taken by
// the others. The held chunk waits until the other thread has done everything else, which only
// stealing makes possible (30 s: a failure, not a measurement).
TEST(ThreadPool, OthersFinishTheShareOfAThreadThatIsHeldUp) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<size_t> done_by_worker{0};
  size_t held_chunk = 0;
  bool waited_out = true;
  pool.parallel_for(100, 5, [&](size_t b, size_t e) {
    if (std::this_thread::get_id() != caller) {
      done_by_worker += e - b;
      return;
    }
    if (held_chunk != 0) return;  // only the caller's first chunk is held
    held_chunk = e - b;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (done_by_worker.load() < 100 - held_chunk) {
      if (std::chrono::steady_clock::now() > until) {
        waited_out = false;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  EXPECT_TRUE(waited_out) << "the worker did " << done_by_worker.load() << " of "
                          << 100 - held_chunk;
  // (If the caller was descheduled before it took any chunk, the worker did all 100.)
  EXPECT_EQ(done_by_worker.load() + held_chunk, 100u);
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
