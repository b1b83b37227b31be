// Runs one native kernel call read from stdin and writes its buffers back to stdout: the test
// (test/engine/native-kernels.test.ts) builds this with the kernels for a target it cannot load
// into Node here (arm64 NEON, run under qemu-aarch64) and compares the results with the wasm
// exports. It stands in for napi.cc: parallelFor on the calling thread, and the kernel table
// (native/src/registry.cc, linked in) read by name.
//
// Input (little-endian): u32 name length, name; u32 buffer count, each as u64 byte length and its
// bytes; u32 argument count, each as u8 kind (0 number, 1 buffer index) and f64 value; f64 start,
// f64 end. Output: every buffer's bytes in order, then the kernel's f64 result.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../native/src/kernel.h"

namespace lf {

void parallelFor(int64_t total, const std::function<void(int64_t, int64_t)>& body) {
  body(0, total);
}

int threadCount() { return 1; }

}  // namespace lf

namespace {

void read(void* to, size_t bytes) {
  if (std::fread(to, 1, bytes, stdin) != bytes) {
    std::fprintf(stderr, "kernel-runner: truncated input\n");
    std::exit(2);
  }
}

template <class T>
T read() {
  T value;
  read(&value, sizeof value);
  return value;
}

}  // namespace

int main() {
  std::string name(read<uint32_t>(), '\0');
  read(name.data(), name.size());
  std::vector<std::vector<unsigned char>> buffers(read<uint32_t>());
  for (auto& buffer : buffers) {
    buffer.resize(read<uint64_t>());
    read(buffer.data(), buffer.size());
  }
  std::vector<double> args(read<uint32_t>());
  for (double& arg : args) {
    const uint8_t kind = read<uint8_t>();
    const double value = read<double>();
    arg = kind == 1 ? static_cast<double>(reinterpret_cast<uintptr_t>(
                          buffers.at(static_cast<size_t>(value)).data()))
                    : value;
  }
  const auto start = static_cast<int64_t>(read<double>());
  const auto end = static_cast<int64_t>(read<double>());
  const lf::KernelEntry* entry = lf::findKernel(name);
  if (!entry) {
    std::fprintf(stderr, "kernel-runner: no kernel %s\n", name.c_str());
    return 2;
  }
  if (static_cast<size_t>(entry->argc) != args.size()) {
    std::fprintf(stderr, "kernel-runner: %s takes %d arguments\n", name.c_str(), entry->argc);
    return 2;
  }
  const double result = entry->fn(args.data(), start, end);
  for (const auto& buffer : buffers) std::fwrite(buffer.data(), 1, buffer.size(), stdout);
  std::fwrite(&result, sizeof result, 1, stdout);
  return 0;
}
