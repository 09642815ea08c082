// The body of row_conv1d_update for any backend: checks, the result, dtype
// dispatch; the backend's policy object supplies
//   update(p, x, state, weight, bias, cache_seqlens, state_indices, y)
// (contiguous weight, bias, int64 index vectors and y; x and state with any
// strides, the state written in place).
// Complex tensors run the real kernel on twice the channels
// (complex_as_real.h): x and the weight are converted like the forward's,
// and the state is read and written in place as (real, imaginary) channel
// pairs of at::view_as_real (RowConvUpdateParams::channel_parts), so its
// updates land in the caller's tensor.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/view_as_real.h>

#include <optional>

#include "complex_as_real.h"
#include "row_conv1d.h"
#include "row_conv1d_backend.h"  // ROWCONV_DISPATCH_FLOATING

namespace rowconv {

template <class Kernels>
at::Tensor update_op(const Kernels& kernels, const at::Tensor& x, const at::Tensor& conv_state,
                     const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     int64_t dilation, int64_t groups,
                     const std::optional<at::Tensor>& cache_seqlens,
                     const std::optional<at::Tensor>& state_indices) {
  RowConvUpdateParams p = check_update(x, conv_state, weight, bias, dilation, groups,
                                       cache_seqlens, state_indices);
  const bool has_bias = bias.has_value() && bias->defined();
  const auto as_long = [](const std::optional<at::Tensor>& t) {
    return t.has_value() && t->defined() ? t->to(at::kLong).contiguous() : at::Tensor();
  };
  const at::Tensor seqlens = as_long(cache_seqlens), indices = as_long(state_indices);
  at::Tensor xv = x.resolve_conj().resolve_neg();  // the stored values go into the state
  at::Tensor state = conv_state, w = weight.resolve_conj().resolve_neg(), b;
  if (has_bias) b = bias->resolve_conj().resolve_neg();
  const bool complex = x.is_complex();
  if (complex) {
    xv = as_real_channels(xv).values;  // (B, 2 Cin, H, T)
    w = real_block_weight(w, 1.0, false);
    if (has_bias) b = real_bias(b);
    state = at::view_as_real(conv_state);  // (pool, Cin, H, S, 2), the same memory
    p.channel_parts = 2;
    p.conv.in_channels *= 2, p.conv.out_channels *= 2, p.conv.in_per_group *= 2, p.conv.out_per_group *= 2;
    p.conv.in_stride_b = xv.stride(0), p.conv.in_stride_c = xv.stride(1), p.conv.in_stride_h = xv.stride(2);
    p.conv.in_stride_w = xv.stride(3);
    p.state_stride_b = state.stride(0), p.state_stride_c = state.stride(1);
    p.state_stride_h = state.stride(2), p.state_stride_s = state.stride(3);
    p.state_stride_part = state.stride(4);
  }
  w = w.contiguous();
  if (has_bias) b = b.contiguous();
  at::Tensor y = at::empty({p.conv.batch, p.conv.out_channels, p.conv.rows, p.conv.width}, xv.options());
  if (p.conv.batch * p.conv.rows > 0) {
    ROWCONV_DISPATCH_FLOATING(xv.scalar_type(), "row_conv1d_update", [&] {
      kernels.update(p, xv.const_data_ptr<scalar_t>(), state.mutable_data_ptr<scalar_t>(),
                     w.const_data_ptr<scalar_t>(), b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                     seqlens.defined() ? seqlens.const_data_ptr<int64_t>() : nullptr,
                     indices.defined() ? indices.const_data_ptr<int64_t>() : nullptr,
                     y.mutable_data_ptr<scalar_t>());
    });
  }
  return complex ? complex_from_channels(y) : y;
}

}  // namespace rowconv
