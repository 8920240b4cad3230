// A fixed pool of worker threads for data-parallel loops in the engine.
//
// The engine issues one parallel loop per matrix product, about a hundred and fifty per decoded
// token, so waking workers must be cheap: after a loop, workers spin on an atomic for a short
// while before sleeping on a condition variable. The calling thread takes part in every loop.
//
// A loop's range is split into one contiguous share per thread; each thread takes chunks from
// the front of its own share, in order, and when that is done takes chunks from the back of the
// others' (so a thread slowed down by the machine is helped without being overtaken). A thread
// thus reads one region of memory front to back, which is what the memory-bound products want:
// their prefetching runs on from one chunk into the next, where chunks handed out in turn would
// start each thread cold every chunk.
//
// Thread-safety: one loop at a time. parallel_for may be called from one thread only (the engine
// thread); concurrent callers serialize on an internal mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
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
  void run_chunks(int index);
  // Takes a chunk from the front of thread `index`'s share (its own work) or from its back
  // (stolen); false when the share is empty.
  bool take(int index, bool from_back, size_t& begin, size_t& end);

  std::vector<std::thread> workers_;
  std::mutex loop_mutex_;  // one loop at a time

  // The current loop, published by bumping generation_.
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  const std::function<void(int, int)>* all_fn_ = nullptr;
  size_t chunk_ = 1;
  // Thread t's share [front, back) of the current loop, packed as back << 32 | front.
  struct alignas(64) Share {
    std::atomic<uint64_t> bounds{0};
  };
  std::unique_ptr<Share[]> shares_;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace icam
