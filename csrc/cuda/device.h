// The device-side vocabulary of the CUDA kernels, so that the same kernel
// source compiles with nvcc (real CUDA) and with a host C++ compiler, where
// emulator.h runs it on the CPU: one thread per CUDA thread, a barrier for
// __syncthreads, per-block shared memory, warp shuffles.
// Kernels use only: threadIdx.x, blockIdx.x, blockDim.x, gridDim.x,
// sync_threads(), shfl_down(), dynamic_shared<T>(), load16().
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

}  // namespace rowconv::cuda

#if defined(__CUDACC__)

#define ROWCONV_GLOBAL __global__
#define ROWCONV_DEVICE __device__ __forceinline__
// The most threads a kernel is launched with, so ptxas budgets registers for it.
#define ROWCONV_LAUNCH_BOUNDS(max_threads) __launch_bounds__(max_threads, 1)

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
#define ROWCONV_LAUNCH_BOUNDS(max_threads)

namespace rowconv::cuda {

template <typename T>
inline Pack16<T> load16(const T* p) {
  Pack16<T> pack;
  std::memcpy(&pack, p, sizeof(pack));  // the same bytes, without an aliasing cast
  return pack;
}

}  // namespace rowconv::cuda

#endif
