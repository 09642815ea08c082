// Forward on the CPU with vectors over the taps, for rows of few outputs:
//   y[b, co, h, t] = bias[h, co] + sum_ci sum_k w[h, co, ci, k] * x[b, ci, h, t*stride - pad_left + k*dilation]
// as dot products over k (MicroKernels::dot_rows): the weight rows (co, ci)
// against the K taps each output reads, a contiguous run of a copied,
// zero-padded window of x split into the dilation's phases (the windows of
// grad_weight_taps_kernel.h). The other forms keep vectors over the
// outputs: a row of 1-15 outputs fills 1-15 of AVX-512's 16 lanes, so
// depthwise (1,1,1024,1024) K 1024 with one output a row ran at 3 GFLOP/s
// (0.6 ms against oneDNN's 0.3).
//
// Sums: lane l of output (co, b, t) adds the terms k % lanes == l, channel
// by channel (ci upwards, k upwards within one), from the bias's zero; the
// lanes summed by reduce_lanes, the bias added last. Fixed by the shape.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "convert_runs.h"
#include "cpu_tiling.h"

namespace rowconv::cpu {

// Rows of at most half a vector of outputs, kernels of 4 vectors or more and
// 16 taps an output or more; with two vectors of output channels or more
// (the gemm and short rows' forms share each x load among 8 of them), 16
// vectors of taps or more. In-process A/B against forward_kernel.h's and
// short_rows_kernel.h's forms, Zen 4, 2 threads, float, 'valid' (time of
// this form over theirs), over (B,Cin,H,Cout) of depthwise (1,1,1024) and
// (16,1,64), Cin = Cout 2-16 and 64 (B 2-8):
//   K 32: Wout 1 0.45-1.30, 4 0.77-1.44, 8 1.01-1.45;
//   K 64: Wout 1 0.32-0.82, 4 0.56-0.95, 8 0.83-1.18, 15 1.14-1.79;
//   K 256: Wout 1 0.19-0.54, 4 0.36-0.57, 8 0.48-0.74, 15 0.68-1.52;
//   K 1024: Wout 1 0.20-0.47, 4 0.27-0.53, 8 0.21-0.68, 15 0.58-2.25;
//   Cout_g 32 (B 8): K 64 0.82-1.46, K 256 0.71-1.16, K 1024 0.60-1.22.
// bfloat16 (float sums; the other forms' include vdpbf16ps pairs), the
// same shapes, Wout 1-4, K 64-1024: 0.09-0.85. Double (8 lanes, so Wout
// <= 4 and K >= 32 by the same rule), Wout 1-4, K 32-256: 0.89-3.27
// (depthwise (1,1,1024) 1.46-3.13), 0.51-0.95 on depthwise (16,1,64) only:
// not taken for double.
template <typename acc_t>
inline bool forward_runs_taps(const RowConvParams& p) {
  if constexpr (sizeof(acc_t) != 4) {
    return false;
  } else {
    const int64_t lanes = micro_kernels<acc_t>().lanes, K = p.kernel_size, Wo = p.out_width;
    return 2 * Wo <= lanes && K >= 4 * lanes && K >= 16 * Wo && (p.out_per_group < 2 * lanes || K >= 16 * lanes);
  }
}

template <typename scalar_t>
void row_conv1d_forward_taps(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                             const scalar_t* bias, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size, d = p.dilation;
  const int64_t Wo = p.out_width, lanes = mk.lanes;
  if (p.batch == 0 || Wo == 0) return;
  // The weights in acc_t, rows of whole vectors (dot_rows reads a row up to
  // K rounded up to the lanes; the zeros past K are never multiplied in).
  const int64_t ldw = ceil_div(K, lanes) * lanes;
  std::vector<acc_t> w(p.rows * p.out_channels * cin_g * ldw, acc_t(0));
  at::parallel_for(0, p.rows * p.out_channels, grain_for(cin_g * K), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin * cin_g; row < end * cin_g; ++row) load_run(weight + row * K, K, w.data() + row * ldw);
  });
  // A piece: `entries` whole rows side by side (all of them a row's
  // outputs: Wo < lanes), their lane partials (Cout_g x columns) within 32 KiB.
  const int64_t max_columns = std::max<int64_t>(1, 32768 / (cout_g * lanes * static_cast<int64_t>(sizeof(acc_t))));
  const int64_t entries = std::clamp<int64_t>(max_columns / std::max<int64_t>(Wo, 1), 1, p.batch);
  const int64_t columns = entries * Wo;
  const int64_t phase_len = ceil_div(p.forward_window(Wo), d) + ldw + kRowSlack;
  const int64_t window_len = d * phase_len;
  const int64_t pieces = ceil_div(p.batch, entries);
  const int64_t items = p.rows * p.groups * pieces;
  at::parallel_for(0, items, grain_for(columns * cout_g * cin_g * K), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> windows(entries * window_len, acc_t(0)), partials(cout_g * columns * lanes),
        sums(cout_g * columns);
    std::vector<const acc_t*> w_rows(cout_g), tap_rows(columns);
    // column (e, t) reads slot e's window from position t * stride
    for (int64_t e = 0; e < entries; ++e)
      for (int64_t t = 0; t < Wo; ++t) {
        const int64_t u = t * p.stride;
        tap_rows[e * Wo + t] = windows.data() + e * window_len + u % d * phase_len + u / d;
      }
    for (int64_t item = begin; item < end; ++item) {
      const int64_t hg = item / pieces, b0 = item % pieces * entries, h = hg / p.groups, g = hg % p.groups;
      const int64_t n_entries = std::min(entries, p.batch - b0), n = n_entries * Wo;
      const int64_t start = p.input_position(0, 0), span = p.forward_window(Wo);
      std::fill(partials.begin(), partials.end(), acc_t(0));
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        const int64_t c = g * cin_g + ci;
        for (int64_t e = 0; e < n_entries; ++e)
          load_phase_windows(p, x, b0 + e, c, h, start, span, windows.data() + e * window_len, phase_len);
        for (int64_t co = 0; co < cout_g; ++co)
          w_rows[co] = w.data() + ((h * p.out_channels + g * cout_g + co) * cin_g + ci) * ldw;
        mk.dot_rows(cout_g, n, K, w_rows.data(), tap_rows.data(), partials.data(), columns, nullptr);
      }
      mk.reduce_lanes(cout_g * columns, partials.data(), sums.data());
      for (int64_t co = 0; co < cout_g; ++co) {
        const acc_t b = bias ? static_cast<acc_t>(bias[p.bias_offset(h, g * cout_g + co)]) : acc_t(0);
        for (int64_t e = 0; e < n_entries; ++e)
          for (int64_t t = 0; t < Wo; ++t)
            y[p.output_offset(b0 + e, g * cout_g + co, h, t)] =
                static_cast<scalar_t>(sums[co * columns + e * Wo + t] + b);
      }
    }
  });
}

}  // namespace rowconv::cpu
