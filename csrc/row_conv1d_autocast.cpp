// Autocast for row_conv1d: under torch.autocast the forward casts its
// floating inputs to the autocast dtype of the device, as conv1d does
// (bfloat16 on CPU; float16 or bfloat16 on CUDA). The backward ops need no
// entry: autograd runs them on tensors already in that dtype.
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>

#include "row_conv1d.h"

namespace rowconv {
namespace {

template <c10::DeviceType device>
at::Tensor row_conv1d_autocast(const at::Tensor& x, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, int64_t stride,
                               int64_t pad_left, int64_t pad_right, int64_t dilation,
                               int64_t groups, int64_t fft_block,
                               const std::optional<at::Tensor>& prefix) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device));
  const at::ScalarType dtype = at::autocast::get_lower_precision_fp_from_device_type(device);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rowconv::row_conv1d", "")
                             .typed<ForwardSignature>();
  return op.call(at::autocast::cached_cast(dtype, x, device),
                 at::autocast::cached_cast(dtype, weight, device),
                 at::autocast::cached_cast(dtype, bias, device), stride, pad_left, pad_right,
                 dilation, groups, fft_block, at::autocast::cached_cast(dtype, prefix, device));
}

}  // namespace
}  // namespace rowconv

TORCH_LIBRARY_IMPL(rowconv, AutocastCPU, m) {
  m.impl("row_conv1d", &rowconv::row_conv1d_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(rowconv, AutocastCUDA, m) {
  m.impl("row_conv1d", &rowconv::row_conv1d_autocast<c10::DeviceType::CUDA>);
}
