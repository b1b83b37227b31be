// The Node-API surface of one variant build (loraforge-<variant>.node): native memory, the kernel
// table, the thread pool and CPU feature detection. Kernels (kernels/*.cc, gemm/*.cc) register
// themselves through kernel.h; this file only moves arguments between JavaScript and them.
#define NAPI_VERSION 8
#include <node_api.h>

#include <cmath>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel.h"
#include "pool.h"

#ifndef LF_VARIANT
#error "LF_VARIANT (the ISA variant name) must be defined by the build"
#endif

namespace lf {
namespace {

std::unique_ptr<ThreadPool>& pool() {
  static std::unique_ptr<ThreadPool> instance;
  return instance;
}

// Alignment of every allocation: a cache line, and a whole AVX-512 vector.
constexpr size_t kAlign = 64;
// No transparent huge pages (madvise): tried for the weights' TLB misses while decoding, the
// faults' compaction stretched loading the 0.5B model from 0.6-1.0 s to 12-24 s, and decoding
// was no faster (paired runs, 2 threads).

}  // namespace

void parallelFor(int64_t total, const std::function<void(int64_t, int64_t)>& body,
                 int64_t maxGrain) {
  if (pool()) pool()->run(total, body, maxGrain);
  else body(0, total);
}

int threadCount() { return pool() ? pool()->size() : 1; }

namespace {

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, nullptr, "loraforge native: " #call " failed"); \
      return nullptr;                                                      \
    }                                                                      \
  } while (0)

napi_value number(napi_env env, double value) {
  napi_value out;
  napi_create_double(env, value, &out);
  return out;
}

double argNumber(napi_env env, napi_value v) {
  double d = NAN;
  napi_get_value_double(env, v, &d);
  return d;
}

/** CPU features this build may use, true when the CPU has them all. */
bool cpuSupportsVariant() {
#if defined(__x86_64__)
  __builtin_cpu_init();
#if defined(__AVX512BF16__)
  if (!__builtin_cpu_supports("avx512bf16")) return false;
#endif
#if defined(__AVX512F__)
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
    return false;
#endif
#if defined(__AVX2__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
      !__builtin_cpu_supports("f16c"))
    return false;
#endif
#endif
  return true;
}

/** The CPU's features by name (what the loader picks a variant from). */
napi_value CpuFeatures(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_object(env, &out));
  auto set = [&](const char* name, bool value) {
    napi_value v;
    napi_get_boolean(env, value, &v);
    napi_set_named_property(env, out, name, v);
  };
#if defined(__x86_64__)
  __builtin_cpu_init();
  set("avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("f16c"));
  set("avx512f", __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"));
  set("avx512bf16", __builtin_cpu_supports("avx512bf16"));
#elif defined(__aarch64__)
  set("neon", true);
#endif
  return out;
}

/** { variant, supported, threads, kernels: [names] } */
napi_value Info(napi_env env, napi_callback_info) {
  napi_value out, names, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, LF_VARIANT, NAPI_AUTO_LENGTH, &v));
  napi_set_named_property(env, out, "variant", v);
  napi_get_boolean(env, cpuSupportsVariant(), &v);
  napi_set_named_property(env, out, "supported", v);
  napi_set_named_property(env, out, "threads", number(env, threadCount()));
  CHECK(napi_create_array_with_length(env, kernelTable().size(), &names));
  for (size_t i = 0; i < kernelTable().size(); i++) {
    napi_create_string_utf8(env, kernelTable()[i].name.c_str(), NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, names, i, v);
  }
  napi_set_named_property(env, out, "kernels", names);
  return out;
}

/** setThreads(n): a pool of n threads (the calling one included). */
napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int threads = static_cast<int>(argNumber(env, argv[0]));
  if (threads < 1) threads = 1;
  pool().reset();
  if (threads > 1) pool() = std::make_unique<ThreadPool>(threads);
  return number(env, threadCount());
}

/**
 * alloc(bytes) → ArrayBuffer over 64-byte-aligned native memory (contents undefined). It stays
 * valid until free(address(buffer)); the garbage collector never frees it.
 */
napi_value Alloc(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  double bytes = argNumber(env, argv[0]);
  size_t size = static_cast<size_t>(bytes);
  size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
  void* data = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
  if (!data) {
    napi_throw_range_error(env, "ENOMEM",
                           ("loraforge native: out of memory allocating " +
                            std::to_string(size) + " bytes")
                               .c_str());
    return nullptr;
  }
  napi_value out;
  // Above the engine's ArrayBuffer limit (4 GiB in Node 20) this fails with a pending exception.
  if (napi_create_external_arraybuffer(env, data, size, nullptr, nullptr, &out) != napi_ok) {
    std::free(data);
    return nullptr;
  }
  return out;
}

/** address(arrayBuffer) → its first byte's address, as a number. */
napi_value Address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data = nullptr;
  size_t length = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &data, &length));
  return number(env, static_cast<double>(reinterpret_cast<uintptr_t>(data)));
}

/** free(address): returns an alloc() block; its ArrayBuffer must not be used again. */
napi_value Free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::free(ptr<void>(argNumber(env, argv[0])));
  return nullptr;
}

/** kernelId(name) → index for call / parallelFor, or -1 when this build has no such kernel. */
napi_value KernelId(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char name[128];
  size_t length = 0;
  CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length));
  for (size_t i = 0; i < kernelTable().size(); i++)
    if (kernelTable()[i].name == name) return number(env, static_cast<double>(i));
  return number(env, -1);
}

/** kernelArity(id) → the number of arguments the kernel takes before its work range. */
napi_value KernelArity(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  double id = argNumber(env, argv[0]);
  if (!(id >= 0 && id < kernelTable().size())) {
    napi_throw_range_error(env, nullptr, "loraforge native: unknown kernel id");
    return nullptr;
  }
  return number(env, kernelTable()[static_cast<size_t>(id)].argc);
}

/** Reads (id, args: Float64Array) and checks the argument count. */
const KernelEntry* entryOf(napi_env env, napi_value idValue, napi_value argsValue,
                           const double** args) {
  double id = argNumber(env, idValue);
  if (!(id >= 0 && id < kernelTable().size())) {
    napi_throw_range_error(env, nullptr, "loraforge native: unknown kernel id");
    return nullptr;
  }
  const KernelEntry& entry = kernelTable()[static_cast<size_t>(id)];
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, argsValue, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || length != static_cast<size_t>(entry.argc)) {
    napi_throw_type_error(env, nullptr,
                          ("loraforge native: " + entry.name + " takes a Float64Array of " +
                           std::to_string(entry.argc) + " arguments")
                              .c_str());
    return nullptr;
  }
  *args = static_cast<const double*>(data);
  return &entry;
}

/** call(id, args, start, end) → the kernel's result, on the calling thread. */
napi_value Call(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const double* args = nullptr;
  const KernelEntry* entry = entryOf(env, argv[0], argv[1], &args);
  if (!entry) return nullptr;
  auto start = static_cast<int64_t>(argNumber(env, argv[2]));
  auto end = static_cast<int64_t>(argNumber(env, argv[3]));
  return number(env, entry->fn(args, start, end));
}

/** parallelFor(id, total, args): the kernel over slices of [0, total) on the pool. */
napi_value ParallelFor(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const double* args = nullptr;
  const KernelEntry* entry = entryOf(env, argv[0], argv[2], &args);
  if (!entry) return nullptr;
  auto total = static_cast<int64_t>(argNumber(env, argv[1]));
  KernelFn fn = entry->fn;
  parallelFor(total, [fn, args](int64_t begin, int64_t end) { fn(args, begin, end); });
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
#if defined(__GLIBC__)
  // glibc raises its mmap threshold to the size of each large block freed, after which
  // tensor-sized blocks come from the heap, where freed ones stay resident and fragment it: RSS
  // grew step after step in training. Pinned at 1 MiB, every block of that size or more is mapped
  // and unmapped (NativeMemory keeps the ones a step reuses).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  napi_property_descriptor props[] = {
      {"cpuFeatures", nullptr, CpuFeatures, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"alloc", nullptr, Alloc, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"address", nullptr, Address, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"free", nullptr, Free, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernelId", nullptr, KernelId, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernelArity", nullptr, KernelArity, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"call", nullptr, Call, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"parallelFor", nullptr, ParallelFor, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

}  // namespace
}  // namespace lf

NAPI_MODULE(NODE_GYP_MODULE_NAME, lf::Init)
