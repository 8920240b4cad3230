// A fixed pool of worker threads for data-parallel loops in the engine.
//
// The engine issues one parallel loop per matrix product, about a hundred and fifty per decoded
// token, so waking workers must be cheap: after a loop, workers spin on an atomic for a short
// while before sleeping on a condition variable. The calling thread takes part in every loop.
//
// Thread-safety: one loop at a time. parallel_for may be called from one thread only (the engine
// thread); concurrent callers serialize on an internal mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace icam {

class ThreadPool {
 public:
  // `threads` counts the caller too; 0 means one per online core. 1 runs everything inline.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), at most `grain` items wide and at
  // least one chunk per thread when n allows. Returns when every chunk has run.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  // Calls fn(thread_index, thread_count) once on every thread of the pool.
  void run_on_all(const std::function<void(int, int)>& fn);

  static int online_cores();

 private:
  void worker_main(int index);
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex loop_mutex_;  // one loop at a time

  // The current loop, published by bumping generation_.
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  const std::function<void(int, int)>* all_fn_ = nullptr;
  size_t n_ = 0;
  size_t chunk_ = 1;
  std::atomic<size_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace icam
