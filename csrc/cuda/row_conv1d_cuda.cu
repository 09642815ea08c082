// CUDA backend of the rowconv ops: the op bodies of row_conv1d_backend.h with
// the kernels of kernels/, launched by launch.h on the current stream of the
// input's device, with a launch check after every launch.
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../row_conv1d_backend.h"
#include "launch.h"

namespace rowconv::cuda {
namespace {

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

CudaKernels kernels_on(const at::Tensor& t) {
  return CudaKernels{CudaLaunch{c10::cuda::getCurrentCUDAStream(t.device().index()).stream()}, t.device()};
}

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                        int64_t pad_right, int64_t dilation, int64_t groups) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  return forward_op(kernels_on(x), x, weight, bias, stride, pad_left, pad_right, dilation, groups);
}

at::Tensor grad_input_cuda(const at::Tensor& grad_out, const at::Tensor& weight, int64_t width,
                           int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                           int64_t groups) {
  const c10::cuda::OptionalCUDAGuard guard(grad_out.device());
  return grad_input_op(kernels_on(grad_out), grad_out, weight, width, stride, pad_left, pad_right,
                       dilation, groups);
}

at::Tensor grad_weight_cuda(const at::Tensor& grad_out, const at::Tensor& x, int64_t kernel_size,
                            int64_t stride, int64_t pad_left, int64_t pad_right,
                            int64_t dilation, int64_t groups) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  return grad_weight_op(kernels_on(x), grad_out, x, kernel_size, stride, pad_left, pad_right,
                        dilation, groups);
}

at::Tensor grad_bias_cuda(const at::Tensor& grad_out) {
  const c10::cuda::OptionalCUDAGuard guard(grad_out.device());
  return grad_bias_op(kernels_on(grad_out), grad_out);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) {
  m.impl("row_conv1d", &rowconv::cuda::forward_cuda);
  m.impl("row_conv1d_grad_input", &rowconv::cuda::grad_input_cuda);
  m.impl("row_conv1d_grad_weight", &rowconv::cuda::grad_weight_cuda);
  m.impl("row_conv1d_grad_bias", &rowconv::cuda::grad_bias_cuda);
}
