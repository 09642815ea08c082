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

// The channel mix's two products, where a backend has its own (the CPU's,
// cpu/spectrum_mix_kernel.h); null: at::matmul, on any device. Spectra are
// contiguous complex tensors, (B, C, H, blocks, F) and the weights' (H, Cout,
// C / groups, F):
//   mix: out[b, g*Og + o, h, i, f] = sum_c R[h, g*Og + o, c, f] * S[b, g*Cg + c, h, i, f]
//   correlate: out[h, g*Og + o, c, f] = sum_{b, i} G[b, g*Og + o, h, i, f] * X[b, g*Cg + c, h, i, f]
struct SpectraProducts {
  at::Tensor (*mix)(const at::Tensor& S, const at::Tensor& R, int64_t groups);
  at::Tensor (*correlate)(const at::Tensor& G, const at::Tensor& X, int64_t groups);
};

// y (B, Cout, H, Wout) = row_conv1d(x, weight, bias) of the checked params p.
at::Tensor forward(const RowConvParams& p, const at::Tensor& x, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, int64_t block,
                   const SpectraProducts* products = nullptr);

// grad_x (B, Cin, H, W) from grad_out (B, Cout, H, Wout) and weight.
at::Tensor grad_input(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& weight,
                      int64_t block, const SpectraProducts* products = nullptr);

// grad_weight (H, Cout, Cin / groups, K) from grad_out and x.
at::Tensor grad_weight(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& x,
                       int64_t block, const SpectraProducts* products = nullptr);

}  // namespace rowconv::fft
