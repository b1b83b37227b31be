#include "pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace lf {
namespace {

// Decoding calls a few hundred kernels per token, back to back, a few to a few tens of
// microseconds apart (the JavaScript between them). A thread that sleeps on the condition variable
// between them pays a futex wake-up per call, each way: tens of microseconds, more in a virtual
// machine whose idle vCPU must be woken by an interrupt, which is as long as a small projection's
// whole product. So a waiting thread first spins this long, then sleeps.
// Spinning yields the core to nobody, so it is kept short: measured here with two other busy
// processes on the two cores, decoding was no slower with it than without.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/** Spins until done() holds or kSpin has passed (the clock read every 64 pauses). */
template <class Done>
void spinUntil(const Done& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    for (int i = 0; i < 64 && !done(); i++) relax();
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Takes slices until none is left. Slices are claimed under the lock: a call has at most a few
// slices per thread, so the lock is cheap next to the work.
void ThreadPool::drain() {
  for (;;) {
    int64_t begin, end;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= total_) return;
      begin = next_;
      end = std::min(total_, begin + grain_);
      next_ = end;
    }
    (*body_)(begin, end);
  }
}

void ThreadPool::work() {
  uint64_t seen = 0;
  for (;;) {
    spinUntil([&] { return stop_ || generation_ != seen; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      busy_++;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::run(int64_t total, const std::function<void(int64_t, int64_t)>& body,
                     int64_t maxGrain) {
  if (total <= 0) return;
  if (workers_.empty() || total == 1) {
    body(0, total);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    total_ = total;
    next_ = 0;
    // About four slices per thread: even finishing times without a lock round per item.
    grain_ = std::clamp<int64_t>(total / (4 * size()), 1, std::max<int64_t>(1, maxGrain));
    generation_++;
  }
  wake_.notify_all();
  drain();
  // drain() returns once no slice is left, so only busy workers remain to wait for.
  spinUntil([&] { return busy_ == 0; });
  std::unique_lock<std::mutex> lock(mutex_);
  // A worker that wakes late finds no slice left and leaves at once, so waiting for busy_ to
  // reach zero after the last slice is taken cannot miss one.
  done_.wait(lock, [&] { return busy_ == 0 && next_ >= total_; });
  body_ = nullptr;
}

}  // namespace lf
