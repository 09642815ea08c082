// The device-side vocabulary of the CUDA kernels, so that the same kernel
// source compiles with nvcc (real CUDA) and with a host C++ compiler, where
// emulator.h runs it on the CPU: one thread per CUDA thread, a barrier for
// __syncthreads, per-block shared memory, warp shuffles.
// Kernels use only: threadIdx.x, blockIdx.x, blockDim.x, gridDim.x,
// sync_threads(), shfl_down(), dynamic_shared<T>(), load16().
//
// Launches go through a Kernel (below): the function with the limits a GPU
// enforces on its launches, which the emulator checks at every launch.
// A kernel's launch bound has one source, a companion declaration before it:
//   ROWCONV_DECLARE_LAUNCH_BOUNDS(row_conv1d_x, n)   // the most threads per block
//   template <...> ROWCONV_GLOBAL ROWCONV_LAUNCH_BOUNDS(row_conv1d_x) void row_conv1d_x(...)
// (nvcc: __launch_bounds__(n, 1)), or ROWCONV_UNBOUNDED_KERNEL(row_conv1d_x)
// for a kernel without one (at most 1024 threads per block); the launchers
// take ROWCONV_KERNEL(row_conv1d_x, template arguments...), which carries
// that bound, so a kernel without either declaration cannot be launched.
#pragma once

#include <cstdint>
#include <cstring>

namespace rowconv::cuda {

// 16 bytes of T: what one vectorised global load moves.
template <typename T>
struct alignas(16) Pack16 {
  static constexpr int kCount = 16 / sizeof(T);
  T v[kCount];
};

// Threads per block of any launch, at most (every GPU since compute capability 2.0).
constexpr int kMaxBlockThreads = 1024;
// Dynamic shared memory per block a kernel may use without an opt-in.
constexpr int64_t kDefaultMaxDynamicSharedBytes = 48 * 1024;
// Blocks of a 1-D grid, at most (gridDim.x).
constexpr int64_t kMaxGridBlocksX = (int64_t{1} << 31) - 1;

// A kernel as the launchers take it: the function, the most threads per
// block it may be launched with (its launch bound), the most dynamic shared
// memory (cudaFuncAttributeMaxDynamicSharedMemorySize: 48 KiB unless a
// launcher opts in to more, which the CUDA launcher then sets with
// cudaFuncSetAttribute; none does today), and its name for messages.
template <typename F>
struct Kernel {
  F function;
  int max_threads;
  int64_t max_dynamic_shared_bytes;
  const char* name;
};

// The Kernel of kFunction; its name is this function's signature, which
// spells out the kernel with its template arguments.
template <auto kFunction>
Kernel<decltype(kFunction)> make_kernel(int max_threads) {
  return {kFunction, max_threads, kDefaultMaxDynamicSharedBytes, __PRETTY_FUNCTION__};
}

}  // namespace rowconv::cuda

#define ROWCONV_DECLARE_LAUNCH_BOUNDS(kernel, max_threads) \
  inline constexpr int kernel##_max_threads = (max_threads);
#define ROWCONV_UNBOUNDED_KERNEL(kernel) \
  inline constexpr int kernel##_max_threads = ::rowconv::cuda::kMaxBlockThreads;
// The Kernel of a specialisation of a kernel template: ROWCONV_KERNEL(name, template arguments...).
#define ROWCONV_KERNEL(kernel, ...) \
  ::rowconv::cuda::make_kernel<&kernel<__VA_ARGS__>>(kernel##_max_threads)

#if defined(__CUDACC__)

#define ROWCONV_GLOBAL __global__
#define ROWCONV_DEVICE __device__ __forceinline__
// The most threads a kernel is launched with (its ROWCONV_DECLARE_LAUNCH_BOUNDS),
// so ptxas budgets registers for it.
#define ROWCONV_LAUNCH_BOUNDS(kernel) __launch_bounds__(kernel##_max_threads, 1)

namespace rowconv::cuda {

ROWCONV_DEVICE void sync_threads() { __syncthreads(); }

template <typename T>
ROWCONV_DEVICE T shfl_down(T v, unsigned delta) {
  return __shfl_down_sync(0xffffffffu, v, delta);
}

// One 16-byte load from a 16-byte aligned address (ld.global.v4 and kin).
template <typename T>
ROWCONV_DEVICE Pack16<T> load16(const T* p) {
  return *reinterpret_cast<const Pack16<T>*>(p);
}

// The block's dynamic shared memory (the size is set at launch).
template <typename T>
ROWCONV_DEVICE T* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char rowconv_shared_memory[];
  return reinterpret_cast<T*>(rowconv_shared_memory);
}

}  // namespace rowconv::cuda

#else

#include "emulator.h"

#define ROWCONV_GLOBAL
#define ROWCONV_DEVICE inline
#define ROWCONV_LAUNCH_BOUNDS(kernel)  // the emulator checks kernel##_max_threads at launch

namespace rowconv::cuda {

// A GPU faults on a 16-byte load from an address that is not 16-byte
// aligned ("misaligned address"): so does the emulator.
template <typename T>
inline Pack16<T> load16(const T* p) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) emu::misaligned_load16(p);
  Pack16<T> pack;
  std::memcpy(&pack, p, sizeof(pack));  // the same bytes, without an aliasing cast
  return pack;
}

}  // namespace rowconv::cuda

#endif
