// Gradient of the input where the rows have few outputs for their kernel
// (grad_input_runs_weight_rows below): each output t hands its gradient back
// through a whole (dilated) weight row,
//   grad_x[b, ci, h, j] = sum_{co, t} grad_out[b, co, h, t] * wd[h, co, ci, j + pad_left - t * stride]
// with wd the weight with dilation - 1 zeros between taps (zero outside its
// span). One gemm_rows_set product per (h, group, ci): the batch entries
// are its rows, the (co, t) pairs its terms (grad_out packed as A), shifted
// views of zero-padded weight rows its B rows, vectors over j. Its work is
// W * Cout_g * Wout a row, where grad_input_kernel.h's runs every tap at
// every position, W * Cout_g * K, most of it on the zeros around a short
// grad_out: (4,8,64,8) K 1024 'valid' (one output a row) took 152 ms there,
// against 25 ms for oneDNN's forward and backward together.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "convert_runs.h"
#include "cpu_tiling.h"
#include "microkernels.h"

namespace rowconv::cpu {

// Few outputs for the kernel. The work against grad_input_kernel.h's is
// Wout * stride / K (its phases run K / stride taps a position), at a lower
// rate with few batch entries (gemm_rows' blocks are 8 rows of them on
// AVX-512). In-process A/B, Zen 4, 2 threads, 'valid' rows of Wout outputs,
// time of this form over the other at K / (Wout * stride) = 1, 1.5, 2, 4:
//   B 1, Cin = Cout = 8, K 16-256    1.19-1.73  0.79-1.18  0.80-0.85  0.43-0.70
//   B 1, depthwise, 256 rows         0.61-1.31  0.46-0.78  0.48-0.86  0.33-0.73
//   B 8-16, Cin = Cout 16-64         0.87-1.02  0.47-0.70  0.49-0.63  0.26-0.43
//   B 16, depthwise                  0.31-0.67  0.24-0.47  0.26-0.35  0.18-0.28
// Against the short rows' grad-input (short_rows_kernel.h, many channels on
// rows of W < 32, which this rule comes before): (4,128,1,7) Cout 128 K 257
// stride 2 0.19x, (2,64,3,7) K 127 stride 2 0.19x; K / (Wout * stride) of
// 1.5-2.1 with B 4-16 0.72-1.01x; 1.1 1.16-1.29x (not taken).
// Double, K / Wout 2 and 4 (B 1 depthwise, B 1 with 8 channels, B 16 with
// 16): 0.26-0.80.
// So K >= 2 Wout * stride, or 1.5 Wout * stride with 8 entries or more.
inline bool grad_input_runs_weight_rows(const RowConvParams& p) {
  const int64_t reach = p.out_width * p.stride;
  return 2 * reach <= p.kernel_size || (p.batch >= 8 && 3 * reach <= 2 * p.kernel_size);
}

template <typename scalar_t>
void row_conv1d_grad_input_weight_rows(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* weight,
                                       scalar_t* grad_x) {
  using acc_t = at::opmath_type<scalar_t>;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  const int64_t B = p.batch, W = p.width, Wout = p.out_width, s = p.stride;
  const int64_t terms = cout_g * Wout;
  // The weight row (co, ci), dilated, at `lead` zeros and zeros after it, so
  // that the view of term (co, t), from lead + pad_left - t * s, reads zeros
  // wherever j + pad_left - t * s falls outside the span, up to W and
  // gemm_rows' slack.
  const int64_t lead = std::max<int64_t>(0, (Wout - 1) * s - p.pad_left);
  const int64_t row_length = lead + std::max(p.span(), p.pad_left + W) + kRowSlack;
  // grad_x's rows of the batch entries, kColumns positions a product (or
  // straight into grad_x: float and double)
  constexpr bool kDirect = std::is_same_v<scalar_t, acc_t>;
  const int64_t ldc = kDirect ? p.in_channels * p.rows * W : W;
  // grad_out as A, per (h, group): rows of the batch entries, (co, t) along them
  std::vector<acc_t> packed(p.rows * p.groups * B * terms);
  at::parallel_for(0, p.rows * p.groups, grain_for(B * terms), [&](int64_t begin, int64_t end) {
    for (int64_t hg = begin; hg < end; ++hg) {
      const int64_t h = hg / p.groups, g = hg % p.groups;
      acc_t* pack = packed.data() + hg * B * terms;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t co = 0; co < cout_g; ++co)
          for (int64_t t = 0; t < Wout; ++t)
            pack[(b * cout_g + co) * Wout + t] = static_cast<acc_t>(grad_out[p.gout_offset(b, g * cout_g + co, h, t)]);
    }
  });
  const int64_t items = p.rows * p.groups * cin_g;
  at::parallel_for(0, items, grain_for(B * W * terms), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> rows(cout_g * row_length), out(kDirect ? 0 : B * W);
    std::vector<const acc_t*> a_rows(B), b_rows(terms);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t hg = item / cin_g, ci = item % cin_g, h = hg / p.groups, g = hg % p.groups;
      std::fill(rows.begin(), rows.end(), acc_t{0});
      for (int64_t co = 0; co < cout_g; ++co) {
        acc_t* row = rows.data() + co * row_length + lead;
        for (int64_t k = 0; k < K; ++k)
          row[k * p.dilation] = static_cast<acc_t>(weight[p.weight_offset(h, g * cout_g + co, ci, k)]);
        for (int64_t t = 0; t < Wout; ++t) b_rows[co * Wout + t] = row + p.pad_left - t * s;
      }
      for (int64_t b = 0; b < B; ++b) a_rows[b] = packed.data() + (hg * B + b) * terms;
      acc_t* C = kDirect ? reinterpret_cast<acc_t*>(grad_x + p.grad_input_offset(0, g * cin_g + ci, h, 0))
                         : out.data();
      mk.gemm_rows_set(B, W, terms, a_rows.data(), b_rows.data(), nullptr, C, ldc, nullptr);
      if constexpr (!kDirect) {
        for (int64_t b = 0; b < B; ++b)
          store_run(out.data() + b * W, W, grad_x + p.grad_input_offset(b, g * cin_g + ci, h, 0));
      }
    }
  });
}

}  // namespace rowconv::cpu
