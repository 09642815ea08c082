// CPU backend of the rowconv ops: checks, allocation, dtype dispatch.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../row_conv1d.h"
#include "forward_kernel.h"
#include "grad_bias_kernel.h"
#include "grad_input_kernel.h"
#include "grad_weight_kernel.h"

namespace rowconv {
namespace {

#define ROWCONV_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

at::Tensor row_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, int64_t stride,
                          int64_t pad_left, int64_t pad_right, int64_t dilation,
                          int64_t groups) {
  const RowConvParams p =
      check_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups);
  // The small operands are made contiguous; x is read in place.
  const at::Tensor w = weight.contiguous();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  at::Tensor y = at::empty({p.batch, p.out_channels, p.rows, p.out_width}, x.options());
  if (y.numel() == 0) return y;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d_cpu", [&] {
    cpu::row_conv1d_forward<scalar_t>(p, x.const_data_ptr<scalar_t>(),
                                      w.const_data_ptr<scalar_t>(),
                                      b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                                      y.mutable_data_ptr<scalar_t>());
  });
  return y;
}

at::Tensor row_conv1d_grad_input_cpu(const at::Tensor& grad_out, const at::Tensor& weight,
                                     int64_t width, int64_t stride, int64_t pad_left,
                                     int64_t pad_right, int64_t dilation, int64_t groups) {
  const RowConvParams p = check_grad_input(grad_out, weight, width, stride, pad_left, pad_right,
                                           dilation, groups);
  const at::Tensor w = weight.contiguous();
  at::Tensor grad_x =
      at::empty({p.batch, p.in_channels, p.rows, p.width}, grad_out.options());
  if (grad_x.numel() == 0) return grad_x;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_input_cpu", [&] {
    cpu::row_conv1d_grad_input<scalar_t>(p, grad_out.const_data_ptr<scalar_t>(),
                                         w.const_data_ptr<scalar_t>(),
                                         grad_x.mutable_data_ptr<scalar_t>());
  });
  return grad_x;
}

at::Tensor row_conv1d_grad_weight_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                      int64_t kernel_size, int64_t stride, int64_t pad_left,
                                      int64_t pad_right, int64_t dilation, int64_t groups) {
  const RowConvParams p = check_grad_weight(grad_out, x, kernel_size, stride, pad_left,
                                            pad_right, dilation, groups);
  at::Tensor grad_w = at::empty({p.rows, p.out_channels, p.in_per_group, p.kernel_size},
                                x.options());
  if (grad_w.numel() == 0) return grad_w;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d_grad_weight_cpu", [&] {
    cpu::row_conv1d_grad_weight<scalar_t>(p, grad_out.const_data_ptr<scalar_t>(),
                                          x.const_data_ptr<scalar_t>(),
                                          grad_w.mutable_data_ptr<scalar_t>());
  });
  return grad_w;
}

at::Tensor row_conv1d_grad_bias_cpu(const at::Tensor& grad_out) {
  const RowConvParams p = check_grad_bias(grad_out);
  at::Tensor grad_b = at::empty({p.rows, p.out_channels}, grad_out.options());
  if (grad_b.numel() == 0) return grad_b;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_bias_cpu", [&] {
    cpu::row_conv1d_grad_bias<scalar_t>(p, grad_out.const_data_ptr<scalar_t>(),
                                        grad_b.mutable_data_ptr<scalar_t>());
  });
  return grad_b;
}

}  // namespace
}  // namespace rowconv

TORCH_LIBRARY_IMPL(rowconv, CPU, m) {
  m.impl("row_conv1d", &rowconv::row_conv1d_cpu);
  m.impl("row_conv1d_grad_input", &rowconv::row_conv1d_grad_input_cpu);
  m.impl("row_conv1d_grad_weight", &rowconv::row_conv1d_grad_weight_cpu);
  m.impl("row_conv1d_grad_bias", &rowconv::row_conv1d_grad_bias_cpu);
}
