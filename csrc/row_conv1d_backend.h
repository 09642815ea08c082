// The body of every rowconv op for any backend: argument checks
// (row_conv1d_ops.cpp), allocation of the result, dtype dispatch. A backend
// supplies only its kernels, as a policy object with typed entry points
//   forward(p, x, weight, bias, y)       grad_input(p, grad_out, weight, grad_x)
//   grad_weight(p, grad_out, x, grad_w)  grad_bias(p, grad_out, grad_bias)
// (contiguous weight, bias and results; x and grad_out with any strides).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <optional>

#include "row_conv1d.h"

namespace rowconv {

#define ROWCONV_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

template <class Kernels>
at::Tensor forward_op(const Kernels& kernels, const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                      int64_t pad_right, int64_t dilation, int64_t groups) {
  const RowConvParams p =
      check_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups);
  const at::Tensor w = weight.contiguous();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
  at::Tensor y = at::empty({p.batch, p.out_channels, p.rows, p.out_width}, x.options());
  if (y.numel() == 0) return y;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d", [&] {
    kernels.forward(p, x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                    b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                    y.mutable_data_ptr<scalar_t>());
  });
  return y;
}

template <class Kernels>
at::Tensor grad_input_op(const Kernels& kernels, const at::Tensor& grad_out,
                         const at::Tensor& weight, int64_t width, int64_t stride,
                         int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups) {
  const RowConvParams p = check_grad_input(grad_out, weight, width, stride, pad_left, pad_right,
                                           dilation, groups);
  const at::Tensor w = weight.contiguous();
  at::Tensor grad_x = at::empty({p.batch, p.in_channels, p.rows, p.width}, grad_out.options());
  if (grad_x.numel() == 0) return grad_x;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_input", [&] {
    kernels.grad_input(p, grad_out.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                       grad_x.mutable_data_ptr<scalar_t>());
  });
  return grad_x;
}

template <class Kernels>
at::Tensor grad_weight_op(const Kernels& kernels, const at::Tensor& grad_out, const at::Tensor& x,
                          int64_t kernel_size, int64_t stride, int64_t pad_left,
                          int64_t pad_right, int64_t dilation, int64_t groups) {
  const RowConvParams p = check_grad_weight(grad_out, x, kernel_size, stride, pad_left,
                                            pad_right, dilation, groups);
  at::Tensor grad_w =
      at::empty({p.rows, p.out_channels, p.in_per_group, p.kernel_size}, x.options());
  if (grad_w.numel() == 0) return grad_w;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d_grad_weight", [&] {
    kernels.grad_weight(p, grad_out.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                        grad_w.mutable_data_ptr<scalar_t>());
  });
  return grad_w;
}

template <class Kernels>
at::Tensor grad_bias_op(const Kernels& kernels, const at::Tensor& grad_out) {
  const RowConvParams p = check_grad_bias(grad_out);
  at::Tensor grad_b = at::empty({p.rows, p.out_channels}, grad_out.options());
  if (grad_b.numel() == 0) return grad_b;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_bias", [&] {
    kernels.grad_bias(p, grad_out.const_data_ptr<scalar_t>(), grad_b.mutable_data_ptr<scalar_t>());
  });
  return grad_b;
}

}  // namespace rowconv
