// CUDA backend of rowconv::row_conv1d_grad_bias: the gradient of the bias (cuda_kernels.h).
#include <torch/library.h>

#include "cuda_kernels.h"

namespace rowconv::cuda {
namespace {

at::Tensor grad_bias_cuda(const at::Tensor& grad_out) {
  const c10::cuda::OptionalCUDAGuard guard(grad_out.device());
  return grad_bias_op(kernels_on(grad_out), grad_out);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) { m.impl("row_conv1d_grad_bias", &rowconv::cuda::grad_bias_cuda); }
