// The CUDA backend's kernel policy for the op bodies of row_conv1d_backend.h:
// the kernels of kernels/, launched by launch.h on the current stream of the
// input's device, with a launch check after every launch. Each op's
// registration is its own translation unit (row_conv1d_cuda_*.cu), so that
// nvcc compiles the four ops' kernel specialisations in parallel.
#pragma once

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../row_conv1d_backend.h"
#include "../row_conv1d_update_backend.h"
#include "launch.h"

namespace rowconv::cuda {

struct CudaLaunch {
  cudaStream_t stream;
  template <typename F, typename... Args>
  void operator()(const Kernel<F>& kernel, int64_t grid, int64_t block, int64_t shared_bytes,
                  Args... args) const {
    if (kernel.max_dynamic_shared_bytes > kDefaultMaxDynamicSharedBytes)  // an opt-in (none today)
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel.function, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(kernel.max_dynamic_shared_bytes)));
    kernel.function<<<static_cast<unsigned>(grid), static_cast<unsigned>(block),
                      static_cast<size_t>(shared_bytes), stream>>>(args...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

struct CudaKernels {
  static constexpr bool kWritesFinalState = false;  // forward_with_final_state_op copies it
  CudaLaunch launch;
  c10::Device device;
  template <typename T>
  void forward(const RowConvParams& p, const T* x, const T* w, const T* b, T* y) const {
    launch_forward<T>(launch, p, x, w, b, y);
  }
  template <typename T>
  void grad_input(const RowConvParams& p, const T* gy, const T* w, T* gx) const {
    launch_grad_input<T>(launch, p, gy, w, gx);
  }
  template <typename T>
  void grad_weight(const RowConvParams& p, const T* gy, const T* x, T* gw) const {
    at::Tensor holder;
    launch_grad_weight<T>(launch, p, gy, x, gw, workspace<at::opmath_type<T>>(holder));
  }
  template <typename T>
  void grad_bias(const RowConvParams& p, const T* gy, T* gb) const {
    at::Tensor holder;
    launch_grad_bias<T>(launch, p, gy, gb, workspace<at::opmath_type<T>>(holder));
  }
  template <typename T>
  void update(const RowConvUpdateParams& p, const T* x, T* state, const T* w, const T* b,
              const int64_t* cache_seqlens, const int64_t* state_indices, T* y) const {
    launch_update<T>(launch, p, x, state, w, b, cache_seqlens, state_indices, y);
  }
  // Room for n acc_t on the device, in `holder`. Freed when the caller
  // returns: the caching allocator hands it out again only to work queued
  // after these kernels on the same stream.
  template <typename acc_t>
  auto workspace(at::Tensor& holder) const {
    return [&holder, device = device](int64_t n) {
      holder = at::empty({n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<acc_t>::value).device(device));
      return holder.mutable_data_ptr<acc_t>();
    };
  }
};

inline CudaKernels kernels_on(const at::Tensor& t) {
  return CudaKernels{CudaLaunch{c10::cuda::getCurrentCUDAStream(t.device().index()).stream()}, t.device()};
}

}  // namespace rowconv::cuda
