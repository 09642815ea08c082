// CUDA backend of rowconv::row_conv1d_update: the decode step (cuda_kernels.h).
#include <torch/library.h>

#include "cuda_kernels.h"

namespace rowconv::cuda {
namespace {

at::Tensor update_cuda(const at::Tensor& x, const at::Tensor& conv_state, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, int64_t dilation, int64_t groups,
                       const std::optional<at::Tensor>& cache_seqlens,
                       const std::optional<at::Tensor>& state_indices) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  return update_op(kernels_on(x), x, conv_state, weight, bias, dilation, groups, cache_seqlens,
                   state_indices);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY_IMPL(rowconv, CUDA, m) { m.impl("row_conv1d_update", &rowconv::cuda::update_cuda); }
