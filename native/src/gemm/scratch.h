// Growable 64-byte-aligned buffers for packed panels: allocated once, reused by later calls, so a
// call does not pay page faults for megabytes of fresh memory.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace lf::gemm {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  /** At least `bytes` bytes (contents undefined); a bad_alloc when memory is short. */
  template <class T>
  T* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      if (!data_) {
        size_ = 0;
        throw std::bad_alloc();
      }
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lf::gemm
