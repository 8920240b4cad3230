#include "common/thread_pool.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ICAM_CPU_RELAX() _mm_pause()
#else
#define ICAM_CPU_RELAX() ((void)0)
#endif

namespace icam {
namespace {
// How long an idle worker spins before sleeping: long enough to span the gap between two matrix
// products of one token (a norm, a RoPE: microseconds), short enough not to burn a core between
// tokens or to steal it from the thread doing the serial work on a busy machine. About 50 us.
constexpr int kSpinIterations = 1 << 11;
// Waits for the workers of a loop. Spins first (the common case is a wait of microseconds), then
// yields the core so that a descheduled worker on a busy machine can finish its chunk.
void wait_until_zero(const std::atomic<int>& pending) {
  for (int spin = 0; pending.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinIterations) {
      ICAM_CPU_RELAX();
    } else {
      sched_yield();
    }
  }
}
}  // namespace

int ThreadPool::online_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = online_cores();
  shares_ = std::make_unique<Share[]>(static_cast<size_t>(threads));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(sleep_mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {
uint64_t pack_share(size_t front, size_t back) {
  return static_cast<uint64_t>(back) << 32 | static_cast<uint64_t>(front);
}
}  // namespace

bool ThreadPool::take(int index, bool from_back, size_t& begin, size_t& end) {
  std::atomic<uint64_t>& bounds = shares_[index].bounds;
  uint64_t seen = bounds.load(std::memory_order_relaxed);
  for (;;) {
    size_t front = seen & 0xffffffffu;
    size_t back = seen >> 32;
    if (front >= back) return false;
    // From the back: down to a multiple of the chunk where it can, so that stolen chunks start
    // where the owner's would have (the products want even starts).
    size_t take = from_back && back % chunk_ != 0 ? back % chunk_ : chunk_;
    take = std::min(take, back - front);
    begin = from_back ? back - take : front;
    end = begin + take;
    (from_back ? back : front) = from_back ? begin : end;
    if (bounds.compare_exchange_weak(seen, pack_share(front, back), std::memory_order_relaxed))
      return true;
  }
}

void ThreadPool::run_chunks(int index) {
  if (all_fn_) return;
  size_t begin = 0, end = 0;
  while (take(index, false, begin, end)) (*fn_)(begin, end);
  const int threads = size();
  for (int k = 1; k < threads; ++k) {
    const int victim = (index + k) % threads;
    while (take(victim, true, begin, end)) (*fn_)(begin, end);
  }
}

void ThreadPool::worker_main(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      ICAM_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock lock(sleep_mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    if (all_fn_) {
      (*all_fn_)(index, size());
    } else {
      run_chunks(index);
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(size_t n, size_t grain,
                              const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  const size_t threads = static_cast<size_t>(size());
  if (workers_.empty() || n <= grain / 2 + 1) {
    fn(0, n);
    return;
  }
  // Shares hold 32-bit bounds: longer loops go in slices.
  constexpr size_t kMaxLoop = size_t{1} << 31;
  if (n > kMaxLoop) {
    for (size_t start = 0; start < n; start += kMaxLoop) {
      const size_t count = std::min(kMaxLoop, n - start);
      parallel_for(count, grain, [&](size_t b, size_t e) { fn(start + b, start + e); });
    }
    return;
  }
  std::lock_guard loop(loop_mutex_);
  fn_ = &fn;
  all_fn_ = nullptr;
  chunk_ = std::max<size_t>(1, std::min(grain, (n + threads - 1) / threads));
  // Shares of whole chunks, as equal as that allows.
  const size_t chunks = (n + chunk_ - 1) / chunk_;
  for (size_t t = 0; t < threads; ++t) {
    const size_t front = std::min(n, chunks * t / threads * chunk_);
    const size_t back = std::min(n, chunks * (t + 1) / threads * chunk_);
    shares_[t].bounds.store(pack_share(front, back), std::memory_order_relaxed);
  }
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(sleep_mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  run_chunks(0);
  wait_until_zero(pending_);
  fn_ = nullptr;
}

void ThreadPool::run_on_all(const std::function<void(int, int)>& fn) {
  if (workers_.empty()) {
    fn(0, 1);
    return;
  }
  std::lock_guard loop(loop_mutex_);
  all_fn_ = &fn;
  fn_ = nullptr;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(sleep_mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  fn(0, size());
  wait_until_zero(pending_);
  all_fn_ = nullptr;
}

}  // namespace icam
