// CUDA backend of rowconv::row_conv1d: the forward (cuda_kernels.h).
#include <torch/library.h>

#include "cuda_kernels.h"

namespace rowconv::cuda {
namespace {

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                        int64_t pad_right, int64_t dilation, int64_t groups,
                        int64_t fft_block, const std::optional<at::Tensor>& prefix) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  return forward_op(kernels_on(x), x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                    fft_block, prefix);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) { m.impl("row_conv1d", &rowconv::cuda::forward_cuda); }
