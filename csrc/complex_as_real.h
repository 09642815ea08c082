// Complex row convolutions as real ones on twice the channels, so that every
// backend's real kernels serve complex64/complex128 in one launch each.
//
// A complex operand z (B, C, H, W) becomes the real (B, 2C, H, W) tensor whose
// channel 2c + q holds part q (0: real, 1: imaginary) of channel c. Groups
// keep their meaning: group g's channels [g C_g, (g+1) C_g) become the
// contiguous range [2 g C_g, 2 (g+1) C_g). A complex product w z is then the
// real 2x2 block
//     [re]   [wr  -wi] [zr]
//     [im] = [wi   wr] [zi]
// per (output channel, input channel, tap): four real products, all in the
// one real convolution.
//
// Conjugate bits (PyTorch's lazy conj, which the backward formulas use) are
// not resolved with a copy: an operand read as conj(z) is its stored values
// with the imaginary part scaled by s = -1, and s goes into the weight block or
// the final combination instead.
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/complex.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/imag.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/real.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/view_as_complex.h>
#include <ATen/ops/view_as_real.h>

#include <utility>
#include <vector>

namespace rowconv {

struct RealChannels {
  at::Tensor values;  // (B, 2C, H, W) real, contiguous
  double imag_sign;   // -1 where the operand is read conjugated
};

// z (B, C, H, W) complex, any strides, conjugate bit or not.
inline RealChannels as_real_channels(const at::Tensor& z) {
  const bool conj = z.is_conj();
  const at::Tensor stored = (conj ? z.conj() : z).resolve_neg();  // conj() of a conj view: the stored values
  const at::Tensor parts = at::view_as_real(stored);               // (B, C, H, W, 2)
  const at::Tensor real = parts.permute({0, 1, 4, 2, 3}).contiguous();  // (B, C, 2, H, W)
  return {real.view({z.size(0), 2 * z.size(1), z.size(2), z.size(3)}), conj ? -1.0 : 1.0};
}

// z as real channels whose imaginary parts carry the sign `imag_sign` of the
// operand it is read with (the prefix of an x that may be read conjugated
// while the prefix is not, or the other way round): a small copy, negated
// where the signs differ.
inline at::Tensor real_channels_with_sign(const at::Tensor& z, double imag_sign) {
  const RealChannels r = as_real_channels(z);
  if (r.imag_sign == imag_sign) return r.values;
  const at::Tensor flip = at::tensor({1.0, -1.0}, r.values.options()).view({1, 1, 2, 1, 1});
  return at::mul(r.values.view({z.size(0), z.size(1), 2, z.size(2), z.size(3)}), flip)
      .view(r.values.sizes());
}

// The real weight (H, 2 Cout, 2 Cin_g, K) of the block above, for a weight w
// (H, Cout, Cin_g, K) applied to an operand whose imaginary part is scaled by
// s. Element [h, 2 co + q, 2 ci + p, k] is block[q][p]. The forward maps
// operand part p (input channel side) to result part q (output channel
// side). grad_input runs the same map the other way round: its operand is on
// the output channel side and its result on the input side, so it stores the
// block transposed.
inline at::Tensor real_block_weight(const at::Tensor& w, double s, bool transposed) {
  const at::Tensor wc = w.resolve_conj().resolve_neg();  // the weight is small: resolving costs little
  const at::Tensor wr = at::real(wc);
  const at::Tensor wi = at::imag(wc);
  at::Tensor b00 = wr, b01 = wi * (-s), b10 = wi, b11 = wr * s;
  if (transposed) std::swap(b01, b10);
  const at::Tensor row0 = at::stack({b00, b01}, 3);  // (H, Cout, Cin_g, 2, K)
  const at::Tensor row1 = at::stack({b10, b11}, 3);
  // reshape, not view: at::stack keeps its operands' memory order, which
  // for a weight of other strides (a permuted copy) is not contiguous
  return at::stack({row0, row1}, 2)  // (H, Cout, 2, Cin_g, 2, K)
      .reshape({w.size(0), 2 * w.size(1), 2 * w.size(2), w.size(3)});
}

// A real (H, Cout) bias as (H, 2 Cout): the parts interleaved like the channels.
inline at::Tensor real_bias(const at::Tensor& b) {
  return at::view_as_real(b.resolve_conj().resolve_neg()).reshape({b.size(0), 2 * b.size(1)});
}

// The real result (B, 2C, H, W) of a convolution back to complex (B, C, H, W).
inline at::Tensor complex_from_channels(const at::Tensor& real) {
  const std::vector<int64_t> shape{real.size(0), real.size(1) / 2, real.size(2), real.size(3)};
  if (real.numel() == 0) {  // an empty tensor counts as contiguous whatever its strides
    return at::empty(shape, real.options().dtype(c10::toComplexType(real.scalar_type())));
  }
  const at::Tensor parts =
      real.view({real.size(0), real.size(1) / 2, 2, real.size(2), real.size(3)})
          .permute({0, 1, 3, 4, 2})
          .contiguous();
  return at::view_as_complex(parts);
}

// grad_weight of complex operands g (sign sg) and x (sign sx) from the real
// grad_weight (H, 2 Cout, 2 Cin_g, K) of their channels, whose block [q][p] is
// sum g_q x_p: sum g x = (gr xr - gi xi) + i (gr xi + gi xr).
inline at::Tensor complex_grad_weight(const at::Tensor& real, double sg, double sx) {
  const at::Tensor blocks =
      real.view({real.size(0), real.size(1) / 2, 2, real.size(2) / 2, 2, real.size(3)});
  const auto block = [&](int64_t q, int64_t p) { return blocks.select(4, p).select(2, q); };
  return at::complex(block(0, 0) - block(1, 1) * (sg * sx), block(0, 1) * sx + block(1, 0) * sg);
}

// grad_bias of a complex g (sign sg) from the real grad_bias (H, 2 Cout).
inline at::Tensor complex_grad_bias(const at::Tensor& real, double sg) {
  const at::Tensor parts = real.view({real.size(0), real.size(1) / 2, 2});
  return at::complex(parts.select(2, 0), parts.select(2, 1) * sg);
}

}  // namespace rowconv
