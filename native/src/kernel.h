// The native kernels' contract with the addon (napi.cc). A kernel export has the same name and
// arguments as the wasm export of src/engine/cpu/assembly/ it mirrors: buffer addresses (absolute,
// as doubles: exact below 2^53; 0 for an absent buffer), then params, all in the spec's order,
// then the work range [start, end) the launcher splits over threads. It returns a number (NaN
// when the wasm export returns nothing).
//
// Every .cc under native/src is compiled once per ISA variant into its own .node file (see
// scripts/build-native.mjs), so code may test __AVX512F__ / __AVX2__ / __ARM_NEON at compile
// time; the loader picks the variant at run time. One variant never links with another's code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lf {

using KernelFn = double (*)(const double* args, int64_t start, int64_t end);

/** Adds a kernel under `name` taking `argc` arguments before the range (see LF_KERNEL). */
void registerKernel(const char* name, int argc, KernelFn fn);

struct KernelEntry {
  std::string name;
  int argc;
  KernelFn fn;
};

/** Every registered kernel, in registration order (registry.cc). */
const std::vector<KernelEntry>& kernelTable();

/** The kernel registered under `name`, or nullptr. */
const KernelEntry* findKernel(const std::string& name);

struct KernelRegistrar {
  KernelRegistrar(const char* name, int argc, KernelFn fn) { registerKernel(name, argc, fn); }
};

/**
 * Runs body(begin, end) over slices of [0, total) on the addon's pool (caller included), slices
 * of at most maxGrain items (the pool makes about four per thread).
 */
void parallelFor(int64_t total, const std::function<void(int64_t, int64_t)>& body,
                 int64_t maxGrain = INT64_MAX);

/** Threads the pool spreads work over, the calling one included. */
int threadCount();

/** A buffer argument as a typed pointer (nullptr for 0). */
template <class T>
inline T* ptr(double address) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

}  // namespace lf

/**
 * Defines kernel NAME with ARGC arguments before the work range; inside the body `a` is the
 * argument array and `start` / `end` the range:
 *   LF_KERNEL(rmsnormForward, 6) { const float* x = lf::ptr<const float>(a[0]); ... return NAN; }
 */
#define LF_KERNEL(NAME, ARGC)                                                       \
  static double NAME##_kernel(const double* a, int64_t start, int64_t end);         \
  static const lf::KernelRegistrar NAME##_registrar(#NAME, ARGC, NAME##_kernel);    \
  static double NAME##_kernel(const double* a, int64_t start, int64_t end)
