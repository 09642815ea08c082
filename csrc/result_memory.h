// Result tensors of the ops: allocated here so that large ones in host
// memory get transparent huge pages.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rowconv {

// A result tensor, uninitialized. A large one in host memory is marked for
// transparent huge pages (madvise, Linux): glibc maps a block of 32 MiB or
// more afresh from the kernel (unless its heap has that much free), whose
// first write faults in each 4 KiB page (1.2 us a fault in the VMs measured: 23 ms of a 78 MB result's 40 ms
// forward); 2 MiB pages take 512 times fewer faults. Only the hint changes:
// the memory and its contents are the allocator's as before. Memory of the
// heap (below the program break: glibc with a raised mmap threshold, as the
// benchmarks run) is left alone even where it is fresh: while the heap grows
// to what the calls need, its new pages faulted in faster as 4 KiB pages
// than as huge ones (a madvised fault may compact memory first; narrow
// grad-input's first 150 calls, Zen 5: 2.0-2.1 ms a call on average against
// 2.8-7.0 with the hint; settled, 1.6-1.8 ms either way).
inline at::Tensor empty_result(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  constexpr int64_t kMinBytes = int64_t{32} << 20;  // glibc's largest mmap threshold
  if (t.device().is_cpu() && static_cast<int64_t>(t.nbytes()) >= kMinBytes) {
    const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t first = (begin + kHugePage - 1) / kHugePage * kHugePage;
    const uintptr_t last = (begin + t.nbytes()) / kHugePage * kHugePage;
    // Only memory not yet backed by pages (a fresh mapping): memory that
    // the heap hands back was faulted in before, and the hint on it only
    // sets khugepaged to collapse it, kernel time taken from our threads.
    unsigned char resident = 1;
    const bool heap = begin < reinterpret_cast<uintptr_t>(sbrk(0));
    if (!heap && first < last && mincore(reinterpret_cast<void*>(first), 4096, &resident) == 0 && !(resident & 1))
      madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // a hint: errors ignored
  }
#endif
  return t;
}

}  // namespace rowconv
