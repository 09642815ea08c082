// The body of every rowconv op for any backend: argument checks
// (row_conv1d_ops.cpp), allocation of the result, dtype dispatch. A backend
// supplies only its kernels, as a policy object with typed entry points
//   forward(p, x, weight, bias, y)       grad_input(p, grad_out, weight, grad_x)
//   grad_weight(p, grad_out, x, grad_w)  grad_bias(p, grad_out, grad_bias)
// (contiguous weight, bias and results; x and grad_out with any strides).
// A nonzero fft_block selects the FFT method instead (row_conv1d_fft.h): ATen
// ops, the same on every device; fft_plan.h resolves 'auto' per call.
// Complex operands run the same real kernels on twice the channels
// (complex_as_real.h); zero input or output channels need no kernel.
// An optional prefix of x (the carried state of a causal convolution) is
// read by the direct kernels through RowConvParams::prefix; the FFT method
// convolves x alone and adds the prefix's part, which only the first
// dilation * (K - 1) outputs see, with the direct kernels on x's zeros.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <type_traits>

#include "complex_as_real.h"
#include "fft_plan.h"
#include "result_memory.h"
#include "row_conv1d_fft.h"
#include "row_conv1d.h"

namespace rowconv {
namespace detail {

inline bool present(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// `width` zero positions shaped like x's head: an expanded scalar, no memory.
inline at::Tensor zero_head(const at::Tensor& x, int64_t width) {
  return at::zeros({}, x.options()).expand({x.size(0), x.size(1), x.size(2), width});
}

// The prefix as the real kernels read it: its own negative bit resolved, and
// the complex case's real channels with the imaginary sign of x's.
inline std::optional<at::Tensor> real_prefix(const std::optional<at::Tensor>& prefix,
                                             double imag_sign) {
  if (!present(prefix)) return std::nullopt;
  return real_channels_with_sign(*prefix, imag_sign);
}

// The backend's own products of spectra for the FFT method's channel mix
// (Kernels::kSpectraProducts), or null: at::matmul's. (No `requires`: nvcc
// compiles this header as C++17 under torch before 2.13.)
template <class Kernels, class = void>
struct HasSpectraProducts : std::false_type {};
template <class Kernels>
struct HasSpectraProducts<Kernels, std::void_t<decltype(&Kernels::kSpectraProducts)>> : std::true_type {};

template <class Kernels>
const fft::SpectraProducts* spectra_products(const Kernels&) {
  if constexpr (HasSpectraProducts<Kernels>::value) {
    return &Kernels::kSpectraProducts;
  } else {
    return nullptr;
  }
}

}  // namespace detail

// row_conv1d_with_final_state's state, (B, Cin, H, pad_left) contiguous in
// x's dtype: the last pad_left inputs of prefix ++ x. A backend whose
// Kernels declare kWritesFinalState has its direct forward kernel write it
// (the rows are in cache there); forward_op says whether it did.
struct FinalStateOut {
  at::Tensor state;
  bool written = false;
  std::optional<RowConvParams> checked;  // forward_op's checks, already made
};

// The state copied out of prefix ++ x (zeros before a missing prefix): where
// no kernel wrote it.
inline void copy_final_state(const at::Tensor& x, const std::optional<at::Tensor>& prefix, at::Tensor& state) {
  const int64_t S = state.size(3), W = x.size(3);
  if (S == 0) return;
  if (W >= S) {
    state.copy_(x.narrow(3, W - S, S));
    return;
  }
  state.narrow(3, S - W, W).copy_(x);
  at::Tensor older = state.narrow(3, 0, S - W);
  if (detail::present(prefix)) {
    older.copy_(prefix->narrow(3, W, S - W));
  } else {
    older.zero_();
  }
}

#define ROWCONV_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

template <class Kernels>
at::Tensor forward_op(const Kernels& kernels, const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                      int64_t pad_right, int64_t dilation, int64_t groups,
                      int64_t fft_block = 0,
                      const std::optional<at::Tensor>& prefix = std::nullopt,
                      FinalStateOut* final_state = nullptr) {
  RowConvParams p = final_state && final_state->checked
                        ? *final_state->checked
                        : check_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                                        fft_block, prefix);
  const bool has_bias = bias.has_value() && bias->defined();
  if (p.in_per_group == 0 && has_bias) {  // no input channels: the output is the bias
    return bias->t().unsqueeze(0).unsqueeze(3)
        .expand({p.batch, p.out_channels, p.rows, p.out_width})
        .contiguous();
  }
  if (p.in_per_group == 0) return at::zeros({p.batch, p.out_channels, p.rows, p.out_width}, x.options());
  if (const int64_t block = fft::resolve_block(p, x.is_complex(), x.device().type(), p.fft_block)) {
    at::Tensor y = fft::forward(p, x, weight, bias, block, detail::spectra_products(kernels));
    if (p.prefix_width > 0) {  // outputs [0, head) also read the prefix
      const int64_t head = std::min(p.prefix_width, p.width);
      y.narrow(3, 0, head).add_(forward_op(kernels, detail::zero_head(x, head), weight, std::nullopt,
                                           stride, pad_left, pad_right, dilation, groups, 0, prefix));
    }
    return y;
  }
  if (x.is_complex()) {
    const RealChannels xr = as_real_channels(x);
    const at::Tensor y = forward_op(kernels, xr.values, real_block_weight(weight, xr.imag_sign, false),
                                    has_bias ? std::optional<at::Tensor>(real_bias(*bias)) : std::nullopt,
                                    stride, pad_left, pad_right, dilation, groups, 0,
                                    detail::real_prefix(prefix, xr.imag_sign));
    return complex_from_channels(y);
  }
  // A negative bit (a real view of a conjugate, e.g. z.conj().imag) is not in
  // the stored values: resolve it (a no-op without one).
  const at::Tensor xv = x.resolve_neg();
  const at::Tensor w = weight.resolve_neg().contiguous();
  const at::Tensor b = has_bias ? bias->resolve_neg().contiguous() : at::Tensor();
  const at::Tensor pre = detail::present(prefix) ? prefix->resolve_neg() : at::Tensor();
  at::Tensor y = empty_result({p.batch, p.out_channels, p.rows, p.out_width}, x.options());
  if (y.numel() == 0) return y;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d", [&] {
    if (pre.defined()) p.prefix = pre.const_data_ptr<scalar_t>();
    const scalar_t* b_ptr = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    if constexpr (Kernels::kWritesFinalState) {
      if (final_state) {
        kernels.forward(p, xv.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), b_ptr,
                        y.mutable_data_ptr<scalar_t>(), final_state->state.mutable_data_ptr<scalar_t>());
        final_state->written = true;
        return;
      }
    }
    kernels.forward(p, xv.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), b_ptr,
                    y.mutable_data_ptr<scalar_t>());
  });
  return y;
}

// row_conv1d_with_final_state: a causal row_conv1d and the state it leaves.
template <class Kernels>
std::tuple<at::Tensor, at::Tensor> forward_with_final_state_op(
    const Kernels& kernels, const at::Tensor& x, const at::Tensor& weight,
    const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left, int64_t pad_right,
    int64_t dilation, int64_t groups, int64_t fft_block, const std::optional<at::Tensor>& prefix) {
  FinalStateOut out;
  out.checked = check_forward_with_final_state(x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                                               fft_block, prefix);
  out.state = at::empty({x.size(0), x.size(1), x.size(2), pad_left}, x.options());
  at::Tensor y = forward_op(kernels, x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                            fft_block, prefix, &out);
  if (!out.written) copy_final_state(x, prefix, out.state);
  return {y, out.state};
}

template <class Kernels>
at::Tensor grad_input_op(const Kernels& kernels, const at::Tensor& grad_out,
                         const at::Tensor& weight, int64_t width, int64_t stride,
                         int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups,
                         int64_t fft_block = 0) {
  const RowConvParams p = check_grad_input(grad_out, weight, width, stride, pad_left, pad_right,
                                           dilation, groups, fft_block);
  if (p.out_per_group == 0) {  // no output channels: nothing flows back
    return at::zeros({p.batch, p.in_channels, p.rows, p.width}, grad_out.options());
  }
  if (const int64_t block =
          fft::resolve_block(p, grad_out.is_complex(), grad_out.device().type(), p.fft_block)) {
    return fft::grad_input(p, grad_out, weight, block, detail::spectra_products(kernels));
  }
  if (grad_out.is_complex()) {
    const RealChannels gr = as_real_channels(grad_out);
    return complex_from_channels(grad_input_op(kernels, gr.values,
                                               real_block_weight(weight, gr.imag_sign, true), width,
                                               stride, pad_left, pad_right, dilation, groups));
  }
  const at::Tensor gy = grad_out.resolve_neg();
  const at::Tensor w = weight.resolve_neg().contiguous();
  at::Tensor grad_x = empty_result({p.batch, p.in_channels, p.rows, p.width}, grad_out.options());
  if (grad_x.numel() == 0) return grad_x;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_input", [&] {
    kernels.grad_input(p, gy.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                       grad_x.mutable_data_ptr<scalar_t>());
  });
  return grad_x;
}

template <class Kernels>
at::Tensor grad_weight_op(const Kernels& kernels, const at::Tensor& grad_out, const at::Tensor& x,
                          int64_t kernel_size, int64_t stride, int64_t pad_left,
                          int64_t pad_right, int64_t dilation, int64_t groups,
                          int64_t fft_block = 0,
                          const std::optional<at::Tensor>& prefix = std::nullopt) {
  RowConvParams p = check_grad_weight(grad_out, x, kernel_size, stride, pad_left, pad_right,
                                      dilation, groups, fft_block, prefix);
  if (p.in_per_group == 0 || p.out_per_group == 0) {
    return at::empty({p.rows, p.out_channels, p.in_per_group, p.kernel_size}, x.options());
  }
  if (const int64_t block = fft::resolve_block(p, x.is_complex(), x.device().type(), p.fft_block)) {
    at::Tensor grad_w = fft::grad_weight(p, grad_out, x, block, detail::spectra_products(kernels));
    if (p.prefix_width > 0) {  // the prefix's products, all with outputs [0, head)
      const int64_t head = std::min(p.prefix_width, p.width);
      grad_w.add_(grad_weight_op(kernels, grad_out.narrow(3, 0, head), detail::zero_head(x, head),
                                 kernel_size, stride, pad_left, pad_right, dilation, groups, 0,
                                 prefix));
    }
    return grad_w;
  }
  if (x.is_complex()) {
    const RealChannels gr = as_real_channels(grad_out);
    const RealChannels xr = as_real_channels(x);
    return complex_grad_weight(grad_weight_op(kernels, gr.values, xr.values, kernel_size, stride,
                                              pad_left, pad_right, dilation, groups, 0,
                                              detail::real_prefix(prefix, xr.imag_sign)),
                               gr.imag_sign, xr.imag_sign);
  }
  const at::Tensor gy = grad_out.resolve_neg();
  const at::Tensor xv = x.resolve_neg();
  const at::Tensor pre = detail::present(prefix) ? prefix->resolve_neg() : at::Tensor();
  at::Tensor grad_w =
      at::empty({p.rows, p.out_channels, p.in_per_group, p.kernel_size}, x.options());
  if (grad_w.numel() == 0) return grad_w;
  ROWCONV_DISPATCH_FLOATING(x.scalar_type(), "row_conv1d_grad_weight", [&] {
    if (pre.defined()) p.prefix = pre.const_data_ptr<scalar_t>();
    kernels.grad_weight(p, gy.const_data_ptr<scalar_t>(), xv.const_data_ptr<scalar_t>(),
                        grad_w.mutable_data_ptr<scalar_t>());
  });
  return grad_w;
}

template <class Kernels>
at::Tensor grad_bias_op(const Kernels& kernels, const at::Tensor& grad_out) {
  const RowConvParams p = check_grad_bias(grad_out);
  if (grad_out.is_complex() && p.out_channels > 0) {
    const RealChannels gr = as_real_channels(grad_out);
    return complex_grad_bias(grad_bias_op(kernels, gr.values), gr.imag_sign);
  }
  const at::Tensor gy = grad_out.resolve_neg();
  at::Tensor grad_b = at::empty({p.rows, p.out_channels}, grad_out.options());
  if (grad_b.numel() == 0) return grad_b;
  ROWCONV_DISPATCH_FLOATING(grad_out.scalar_type(), "row_conv1d_grad_bias", [&] {
    kernels.grad_bias(p, gy.const_data_ptr<scalar_t>(), grad_b.mutable_data_ptr<scalar_t>());
  });
  return grad_b;
}

}  // namespace rowconv
