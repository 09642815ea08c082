// The device-side vocabulary of the CUDA kernels, so that the same kernel
// source compiles with nvcc (real CUDA) and with a host C++ compiler, where
// emulator.h runs it on the CPU: one thread per CUDA thread, a barrier for
// __syncthreads, per-block shared memory, warp shuffles.
// Kernels use only: threadIdx.x, blockIdx.x, blockDim.x, gridDim.x,
// sync_threads(), shfl_down(), dynamic_shared<T>().
#pragma once

#include <cstdint>

#if defined(__CUDACC__)

#define ROWCONV_GLOBAL __global__
#define ROWCONV_DEVICE __device__ __forceinline__

namespace rowconv::cuda {

ROWCONV_DEVICE void sync_threads() { __syncthreads(); }

template <typename T>
ROWCONV_DEVICE T shfl_down(T v, unsigned delta) {
  return __shfl_down_sync(0xffffffffu, v, delta);
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

#endif
