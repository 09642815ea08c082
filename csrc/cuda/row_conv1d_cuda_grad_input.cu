// CUDA backend of rowconv::row_conv1d_grad_input: the gradient of the input (cuda_kernels.h).
#include <torch/library.h>

#include "cuda_kernels.h"

namespace rowconv::cuda {
namespace {

at::Tensor grad_input_cuda(const at::Tensor& grad_out, const at::Tensor& weight, int64_t width,
                           int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                           int64_t groups, int64_t fft_block) {
  const c10::cuda::OptionalCUDAGuard guard(grad_out.device());
  return grad_input_op(kernels_on(grad_out), grad_out, weight, width, stride, pad_left, pad_right,
                       dilation, groups, fft_block);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) { m.impl("row_conv1d_grad_input", &rowconv::cuda::grad_input_cuda); }
