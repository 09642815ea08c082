// The FFT method of the rowconv ops: the same three functions as the direct
// kernels (forward, grad-input, grad-weight), computed with torch.fft
// (pocketfft/MKL on the CPU, cuFFT on CUDA) in overlap-save blocks of
// `block` points, so one implementation serves every device. The op bodies
// (row_conv1d_backend.h) call these after the argument checks, for a nonzero
// fft_block argument; docs/design.md derives the formulas.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "row_conv1d_params.h"

namespace rowconv::fft {

// y (B, Cout, H, Wout) = row_conv1d(x, weight, bias) of the checked params p.
at::Tensor forward(const RowConvParams& p, const at::Tensor& x, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, int64_t block);

// grad_x (B, Cin, H, W) from grad_out (B, Cout, H, Wout) and weight.
at::Tensor grad_input(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& weight,
                      int64_t block);

// grad_weight (H, Cout, Cin / groups, K) from grad_out and x.
at::Tensor grad_weight(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& x,
                       int64_t block);

}  // namespace rowconv::fft
