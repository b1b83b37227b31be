// The table every LF_KERNEL adds itself to (kernel.h). Shared by the addon (napi.cc, which exports
// it to JavaScript) and the stand-alone runner that tests the arm64 build under qemu
// (test/native/kernel-runner.cc).
#include "kernel.h"

namespace lf {
namespace {

// A function-local static: kernels register from static initialisers of other units, whose order
// across units is unspecified.
std::vector<KernelEntry>& entries() {
  static std::vector<KernelEntry> table;
  return table;
}

}  // namespace

void registerKernel(const char* name, int argc, KernelFn fn) {
  entries().push_back({name, argc, fn});
}

const std::vector<KernelEntry>& kernelTable() { return entries(); }

const KernelEntry* findKernel(const std::string& name) {
  for (const KernelEntry& entry : entries())
    if (entry.name == name) return &entry;
  return nullptr;
}

}  // namespace lf
