// A fixed pool of worker threads that parallelFor spreads slices over (the caller takes part).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lf {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  /**
   * body(begin, end) over [0, total) in slices of at most maxGrain items; returns when all slices
   * are done.
   */
  void run(int64_t total, const std::function<void(int64_t, int64_t)>& body,
           int64_t maxGrain = INT64_MAX);

 private:
  void work();
  void drain();
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t total_ = 0, grain_ = 1;
  int64_t next_ = 0;  // next slice start (guarded by mutex_)
  // Written under mutex_; atomic so that a spinning thread may watch them without it.
  std::atomic<int> busy_{0};  // workers inside the current job
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace lf
