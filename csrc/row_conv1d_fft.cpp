// The FFT method (row_conv1d_fft.h): torch.fft transforms, a batched complex
// matrix product per (row, group, frequency) for the channel mix, and
// overlap-save blocks so that the transforms stay short and the memory in use
// grows with the operands, never with their product. Device-generic: only
// ATen ops. The derivations are in docs/design.md ("The FFT method").
#include "row_conv1d_fft.h"

#include <algorithm>
#include <vector>

#include <ATen/Context.h>  // NoTF32Guard
#include <ATen/ops/add.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/fft_fft.h>
#include <ATen/ops/fft_ifft.h>
#include <ATen/ops/fft_irfft.h>
#include <ATen/ops/fft_rfft.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/roll.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include "fft_plan.h"
#include "result_memory.h"

namespace rowconv::fft {
namespace {

// Overlap-save framing of `outputs` outputs of a kernel spanning `span`
// points: `count` transforms of `size` points, each giving `valid` outputs,
// from its point `first` = span - 1 on (flipped_spectrum).
struct Blocks {
  int64_t size, valid, count, first;
  Blocks(int64_t size_, int64_t span, int64_t outputs)
      : size(size_),
        valid(size_ - span + 1),
        count(ceil_div(outputs, size_ - span + 1)),
        first(span - 1) {}
};

// An operand as the transforms take it: conjugate and negative bits resolved
// (no copy without them); the half types in float32, which torch.fft lacks
// on the CPU and which keeps the error of the sums at float32's.
at::Tensor operand(const at::Tensor& t) {
  const at::Tensor v = t.resolve_conj().resolve_neg();
  const auto dtype = v.scalar_type();
  return dtype == at::kHalf || dtype == at::kBFloat16 ? v.to(at::kFloat) : v;
}

// t (reversed in time if `reversed`) followed by zeros: (..., n), contiguous,
// each point written once (the transforms' own padding fills and copies).
at::Tensor zero_padded(const at::Tensor& t, int64_t n, bool reversed) {
  std::vector<int64_t> sizes = t.sizes().vec();
  const int64_t length = sizes.back();
  sizes.back() = n;
  at::Tensor out = at::empty(sizes, t.options());
  at::Tensor head = out.narrow(-1, 0, length);
  if (reversed) {
    at::flip_out(head, t, {-1});
  } else {
    head.copy_(t);
  }
  out.narrow(-1, length, n - length).zero_();
  return out;
}

// The transform of each length-n row of t (n == t.size(-1), or t padded with zeros).
at::Tensor spectrum(const at::Tensor& t, int64_t n) {
  const at::Tensor rows = t.size(-1) == n ? t : zero_padded(t, n, false);
  return t.is_complex() ? at::fft_fft(rows) : at::fft_rfft(rows);
}

// The spectrum of k reversed in time over its own length: the valid
// correlation sum_j k[j] s[t + j] of a signal s of at most n points is the
// circular convolution of s with the reversed k, read at t + len(k) - 1,
// i.e. signal(spectrum(s) * flipped_spectrum(k))[t + len(k) - 1] for
// t <= n - len(k). (Flipping k in time costs a copy of k; the alternative,
// conjugating its spectrum, a pass over the larger spectrum.)
at::Tensor flipped_spectrum(const at::Tensor& k, int64_t n) { return spectrum(zero_padded(k, n, true), n); }

at::Tensor signal(const at::Tensor& spec, int64_t n, bool complex) {
  return complex ? at::fft_ifft(spec, n) : at::fft_irfft(spec, n);
}

// The signal read from position -left (zeros outside it; a negative left
// skips its first points) in blocks of b.size points every b.valid points:
// (..., b.count, b.size), contiguous, each point written once. Blocks inside
// the signal come straight from an overlapping view of it; the few at its
// ends get their part of the signal and zeros around it.
at::Tensor overlapping_blocks(const at::Tensor& sig, int64_t left, const Blocks& b) {
  const int64_t length = sig.size(-1);
  std::vector<int64_t> sizes = sig.sizes().vec();
  sizes.back() = b.count;
  sizes.push_back(b.size);
  at::Tensor blocks = at::empty(sizes, sig.options());
  // Blocks [inner_from, inner_to) start at or after position 0 and end by the signal's end.
  const int64_t inner_from = std::clamp<int64_t>(ceil_div(left, b.valid), 0, b.count);
  const int64_t inner_to = std::clamp<int64_t>(floor_div(length + left - b.size, b.valid) + 1,
                                               inner_from, b.count);
  if (inner_to > inner_from) {
    const int64_t start = inner_from * b.valid - left;
    const int64_t span = (inner_to - inner_from - 1) * b.valid + b.size;
    blocks.narrow(-2, inner_from, inner_to - inner_from)
        .copy_(sig.narrow(-1, start, span).unfold(-1, b.size, b.valid));
  }
  const auto edge_block = [&](int64_t i) {
    const at::Tensor block = blocks.select(-2, i);
    const int64_t start = i * b.valid - left;  // signal position of the block's first point
    const int64_t lo = std::clamp<int64_t>(start, 0, length);
    const int64_t hi = std::clamp<int64_t>(start + b.size, lo, length);
    if (hi == lo) {
      block.zero_();
      return;
    }
    block.narrow(-1, 0, lo - start).zero_();
    block.narrow(-1, lo - start, hi - lo).copy_(sig.narrow(-1, lo, hi - lo));
    block.narrow(-1, hi - start, start + b.size - hi).zero_();
  };
  for (int64_t i = 0; i < inner_from; ++i) edge_block(i);
  for (int64_t i = inner_to; i < b.count; ++i) edge_block(i);
  return blocks;
}

// The kernel with dilation - 1 zeros between its taps: (..., span).
at::Tensor dilated(const at::Tensor& w, int64_t dilation) {
  if (dilation == 1) return w;
  const int64_t span = dilation * (w.size(-1) - 1) + 1;
  return at::constant_pad_nd(w.unsqueeze(-1), {0, dilation - 1}).flatten(-2).narrow(-1, 0, span);
}

// out[b, g*Og + o, h, i, f] = sum_c S[b, g*Cg + c, h, i, f] * R[h, g*Og + o, c, f]
// for S (B, groups*Cg, H, blocks, F) and R (H, groups*Og, Cg, F): one complex
// matrix product (Og x Cg) @ (Cg x B*blocks) per row, group and frequency.
at::Tensor mix_channels(at::Tensor S, const at::Tensor& R, int64_t groups, const SpectraProducts* products) {
  const int64_t B = S.size(0), H = S.size(2), blocks = S.size(3), F = S.size(4);
  const int64_t in_g = R.size(2), out_g = R.size(1) / groups;
  if (in_g == 1 && out_g == 1) {  // depthwise: a product per frequency, no matrices
    return S.mul_(R.view({H, groups, F}).transpose(0, 1).unsqueeze(0).unsqueeze(3));  // S is ours
  }
  if (products) return products->mix(S.contiguous(), R.contiguous(), groups);
  const at::Tensor s = S.view({B, groups, in_g, H, blocks, F})
                           .permute({3, 1, 5, 2, 0, 4})
                           .reshape({H, groups, F, in_g, B * blocks});
  const at::Tensor r = R.reshape({H, groups, out_g, in_g, F}).permute({0, 1, 4, 2, 3});
  // Full float32 products whatever the user allows matmuls (TF32 on a GPU,
  // set_float32_matmul_precision('high'): 1e-3 relative, far past the FFT
  // method's error bound)
  const at::NoTF32Guard full_precision;
  return at::matmul(r, s)
      .view({H, groups, F, out_g, B, blocks})
      .permute({4, 1, 3, 0, 5, 2})
      .reshape({B, groups * out_g, H, blocks, F});
}

// P[h, g*Og + o, c, f] = sum_{b, i} G[b, g*Og + o, h, i, f] * X[b, g*Cg + c, h, i, f]
// for G (B, groups*Og, H, blocks, F) and X (B, groups*Cg, H, blocks, F): the
// weight gradient's reduction over batch and blocks, one complex matrix
// product (Og x B*blocks) @ (B*blocks x Cg) per row, group and frequency.
at::Tensor correlate_channels(const at::Tensor& G, const at::Tensor& X, int64_t groups,
                              const SpectraProducts* products) {
  const int64_t B = G.size(0), H = G.size(2), blocks = G.size(3), F = G.size(4);
  const int64_t out_g = G.size(1) / groups, in_g = X.size(1) / groups;
  if (in_g == 1 && out_g == 1) {  // depthwise: a sum of products per frequency
    return at::mul(G, X).sum(at::IntArrayRef{0, 3}).transpose(0, 1).unsqueeze(2);
  }
  if (products) return products->correlate(G.contiguous(), X.contiguous(), groups);
  const at::Tensor g = G.view({B, groups, out_g, H, blocks, F})
                           .permute({3, 1, 5, 2, 0, 4})
                           .reshape({H, groups, F, out_g, B * blocks});
  const at::Tensor x = X.view({B, groups, in_g, H, blocks, F})
                           .permute({3, 1, 5, 0, 4, 2})
                           .reshape({H, groups, F, B * blocks, in_g});
  const at::NoTF32Guard full_precision;  // (as mix_channels)
  return at::matmul(g, x).permute({0, 1, 3, 4, 2}).reshape({H, groups * out_g, in_g, F});
}

// dst = src (+ bias (1, C, H, 1), broadcast over any trailing dims of src),
// converting to dst's dtype.
void write_result(at::Tensor dst, const at::Tensor& src, const std::optional<at::Tensor>& bias) {
  if (!bias) {
    dst.copy_(src);
    return;
  }
  at::Tensor bv = *bias;
  while (bv.dim() < src.dim()) bv = bv.unsqueeze(-1);
  at::add_out(dst, src, bv);
}

// The result from the inverse transforms' blocks (B, C, H, count, size),
// whose valid outputs start at b.first:
// y[..., t] = blocks[..., u / valid, first + u % valid] (+ bias) for
// u = t * stride < length, written once into a contiguous tensor of dtype
// (the copy rounds the half types).
at::Tensor gather_outputs(const at::Tensor& blocks, const Blocks& b, int64_t length, int64_t stride,
                          at::ScalarType dtype, const std::optional<at::Tensor>& bias) {
  const int64_t B = blocks.size(0), C = blocks.size(1), H = blocks.size(2);
  at::Tensor y = empty_result({B, C, H, (length - 1) / stride + 1}, blocks.options().dtype(dtype));
  if (stride == 1) {
    const int64_t whole = length / b.valid, rest = length - whole * b.valid;
    if (whole > 0) {
      write_result(y.narrow(3, 0, whole * b.valid).view({B, C, H, whole, b.valid}),
                   blocks.narrow(3, 0, whole).narrow(4, b.first, b.valid), bias);
    }
    if (rest > 0) {
      write_result(y.narrow(3, whole * b.valid, rest),
                   blocks.select(3, whole).narrow(3, b.first, rest), bias);
    }
  } else {
    write_result(y,
                 blocks.narrow(4, b.first, b.valid)
                     .reshape({B, C, H, b.count * b.valid})
                     .slice(3, 0, length, stride),
                 bias);
  }
  return y;
}

// The result from one circular transform (B, C, H, n): y[..., t] =
// circle[..., (start + t * stride) % n] (+ bias) for t < count, in at most
// two strided copies (before and after the wrap).
at::Tensor gather_circular(const at::Tensor& circle, int64_t start, int64_t count, int64_t stride,
                           at::ScalarType dtype, const std::optional<at::Tensor>& bias) {
  const int64_t n = circle.size(3);
  at::Tensor y = empty_result({circle.size(0), circle.size(1), circle.size(2), count},
                              circle.options().dtype(dtype));
  const int64_t before = std::min(count, ceil_div(n - start, stride));
  write_result(y.narrow(3, 0, before), circle.slice(3, start, start + (before - 1) * stride + 1, stride),
               bias);
  if (before < count) {
    const int64_t from = start + before * stride - n, rest = count - before;
    write_result(y.narrow(3, before, rest), circle.slice(3, from, from + (rest - 1) * stride + 1, stride),
                 bias);
  }
  return y;
}

// grad_out placed at the stride-1 output positions, zeros between them.
at::Tensor upsampled(const at::Tensor& g, const RowConvParams& p) {
  if (p.stride == 1) return g;
  at::Tensor up = at::zeros({p.batch, p.out_channels, p.rows, p.stride1_outputs()}, g.options());
  up.slice(3, 0, up.size(3), p.stride).copy_(g);
  return up;
}

}  // namespace

at::Tensor forward(const RowConvParams& p, const at::Tensor& x, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, int64_t block, const SpectraProducts* products) {
  const bool has_bias = bias.has_value() && bias->defined();
  if (p.batch == 0 || p.rows == 0 || p.out_channels == 0) {
    return at::zeros({p.batch, p.out_channels, p.rows, p.out_width}, x.options());
  }
  // y[t] = sum_j wd[j] xpad[t * stride + j], wd the dilated kernel: the valid
  // correlation of the padded input with wd, at every stride-th position.
  const int64_t outputs = p.stride1_outputs();
  const at::Tensor R = flipped_spectrum(dilated(operand(weight), p.dilation), block);
  const std::optional<at::Tensor> bias_col =
      has_bias ? std::optional<at::Tensor>(operand(*bias).t().reshape({1, p.out_channels, p.rows, 1}))
               : std::nullopt;
  if (one_circular_block(p, block)) {
    // x at [0, W) of the circle, its padding read from the zeros after it:
    // output t is at (t + span - 1 - pad_left) mod n.
    const at::Tensor S = spectrum(operand(x), block).unsqueeze(3);
    const at::Tensor circle = signal(mix_channels(S, R, p.groups, products), block, x.is_complex()).squeeze(3);
    return gather_circular(circle, floor_mod(p.span() - 1 - p.pad_left, block), p.out_width, p.stride,
                           x.scalar_type(), bias_col);
  }
  const Blocks b(block, p.span(), outputs);
  const at::Tensor S = spectrum(overlapping_blocks(operand(x), p.pad_left, b), block);
  return gather_outputs(signal(mix_channels(S, R, p.groups, products), block, x.is_complex()), b, outputs,
                        p.stride, x.scalar_type(), bias_col);
}

at::Tensor grad_input(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& weight,
                      int64_t block, const SpectraProducts* products) {
  if (p.batch == 0 || p.rows == 0 || p.in_channels == 0) {
    return at::zeros({p.batch, p.in_channels, p.rows, p.width}, grad_out.options());
  }
  // grad_xpad[u] = sum_j wd[j] up[u - j], up the stride-1 grad_out: the full
  // convolution of up with wd, channels' roles swapped, i.e. the valid
  // correlation of up (span - 1 zeros on each side) with the flipped wd;
  // only u in [pad_left, pad_left + W) is kept.
  const int64_t span = p.span();
  const at::Tensor transposed = dilated(operand(weight), p.dilation)
                                    .reshape({p.rows, p.groups, p.out_per_group, p.in_per_group, span})
                                    .transpose(2, 3)
                                    .reshape({p.rows, p.in_channels, p.out_per_group, span});
  // Correlating with the flipped wd is convolving with wd: its plain spectrum.
  const at::Tensor R = spectrum(transposed, block);
  const at::Tensor up = upsampled(operand(grad_out), p);
  if (one_circular_block(p, block)) {
    // up at [0, Wout at stride 1) of the circle, zeros after it: the circular
    // convolution at u is grad_xpad[u] for u in [pad_left, pad_left + W).
    const at::Tensor S = spectrum(up, block).unsqueeze(3);
    return gather_circular(signal(mix_channels(S, R, p.groups, products), block, grad_out.is_complex()).squeeze(3),
                           p.pad_left, p.width, 1, grad_out.scalar_type(), std::nullopt);
  }
  const Blocks b(block, span, p.width);
  const at::Tensor S = spectrum(overlapping_blocks(up, span - 1 - p.pad_left, b), block);
  return gather_outputs(signal(mix_channels(S, R, p.groups, products), block, grad_out.is_complex()), b,
                        p.width, 1, grad_out.scalar_type(), std::nullopt);
}

at::Tensor grad_weight(const RowConvParams& p, const at::Tensor& grad_out, const at::Tensor& x,
                       int64_t block, const SpectraProducts* products) {
  if (p.batch == 0 || p.rows == 0) {
    return at::zeros({p.rows, p.out_channels, p.in_per_group, p.kernel_size}, x.options());
  }
  // gwd[j] = sum_{b, u} up[u] xpad[u + j], j < span, summed block by block:
  // block i pairs up[i*valid, (i+1)*valid) with the input block that the
  // forward reads for those outputs (their valid correlation has span
  // lags, from point valid - 1 on), and the sum over (b, i) is taken per
  // frequency, before the one inverse transform per weight.
  const int64_t outputs = p.stride1_outputs();
  const int64_t span = p.span();
  const at::Tensor up = upsampled(operand(grad_out), p);
  at::Tensor lags;  // (H, Cout, Cin_g, n): the lags j of gwd at [first, first + span)
  int64_t first = 0;
  if (one_circular_block(p, block)) {
    // x and up each at the start of a circle: lag j lands at
    // (Wout at stride 1 - 1 - pad_left + j) mod n; rolled to start at 0.
    const at::Tensor X = spectrum(operand(x), block).unsqueeze(3);
    const at::Tensor G = flipped_spectrum(up, block).unsqueeze(3);
    lags = at::roll(signal(correlate_channels(G, X, p.groups, products), block, x.is_complex()),
                    -floor_mod(outputs - 1 - p.pad_left, block), -1);
  } else {
    const Blocks b(block, span, outputs);
    const at::Tensor X = spectrum(overlapping_blocks(operand(x), p.pad_left, b), block);
    const at::Tensor G = flipped_spectrum(
        at::constant_pad_nd(up, {0, b.count * b.valid - outputs}, 0)
            .view({p.batch, p.out_channels, p.rows, b.count, b.valid}),
        block);
    lags = signal(correlate_channels(G, X, p.groups, products), block, x.is_complex());
    first = b.valid - 1;
  }
  return lags.slice(3, first, first + span, p.dilation).to(x.scalar_type()).contiguous();
}

}  // namespace rowconv::fft
