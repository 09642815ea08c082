// CUDA backend of rowconv::row_conv1d_grad_weight: the gradient of the weight (cuda_kernels.h).
#include <torch/library.h>

#include "cuda_kernels.h"

namespace rowconv::cuda {
namespace {

at::Tensor grad_weight_cuda(const at::Tensor& grad_out, const at::Tensor& x, int64_t kernel_size,
                            int64_t stride, int64_t pad_left, int64_t pad_right,
                            int64_t dilation, int64_t groups, int64_t fft_block,
                            const std::optional<at::Tensor>& prefix) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  return grad_weight_op(kernels_on(x), grad_out, x, kernel_size, stride, pad_left, pad_right,
                        dilation, groups, fft_block, prefix);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) { m.impl("row_conv1d_grad_weight", &rowconv::cuda::grad_weight_cuda); }
