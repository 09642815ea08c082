// Gradient of the weight on the CPU with vectors over the taps:
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// as one product a (h, group, input channel): grad_out's rows (Cout_g x J)
// by (J x K), J the columns (b, t) of every batch entry side by side, row
// (b, t) of the right factor being the K taps that output position reads:
// K positions `dilation` apart in x's row, i.e. a contiguous run of the
// row's phase of the dilation. So each such row is a pointer into a copied,
// zero-padded window of x: nothing is unrolled, and the whole reduction over
// (b, t) is one gemm_rows call (its registers hold Cout_g x K sums).
//
// Why: on short rows the other forms reduce a row of Wout positions per
// product (grad_weight_kernel.h) or unroll the windows into an im2col matrix
// (short_rows_kernel.h): at (4,32,128,33) Cout 8 K 11 stride 2 (17 outputs a
// row) the short rows' dot form spent 2 ms, most of it copying x K times at
// stride 2, against 0.48 for oneDNN's grouped convolution (Zen 4, 2 threads).
// Here a vector holds K of its lanes' worth of taps (11 of 16 at K 11): for
// long kernels, whatever the row's length.
//
// Sums: each (co, ci, k) is one chain over the columns (b, t) in order,
// added to a running total and restarted once kGradWeightFlushTerms columns
// have gone in (at the end of a piece, below), as the other forms flush
// theirs: other bits than the dot forms', the gemm form's where it sums the
// same columns between flushes; fixed by the shape, not the thread count.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

// Where this form takes over from grad_weight_kernel.h's and
// short_rows_kernel.h's: kernels long enough for the row's length, i.e.
// where the others' products reduce too few positions at a time (short
// rows) and this one's vectors are full enough (K of every ceil(K / lanes)
// vectors' lanes). In-process A/B against them, Zen 4, 2 threads, float
// (time of this form over theirs; 180 random shapes, Cout_g 1-64, Cin_g
// 1-64, strides 1-3, dilations 1-2):
//   Wo < 32: K >= 8 0.08-0.95 (K 48 Cout_g 8 at stride 3: 0.08), K 6-7
//   1.06-1.53 (one 0.25);
//   Wo 32-64: K >= 13 0.32-0.82, K 8-11 0.44-1.77;
//   Wo 100-200: K >= 32 0.61-0.94, K 16-24 0.54-1.26, below 1.15-1.91;
//   Wo 400-1000: K 48-64 0.46-0.88, below mostly 1.1-4.2 (the dot form's
//   vectors over t are full there).
// With two vectors of output channels or more, grad_weight_kernel.h's gemm
// form fills its vectors: Cout_g 64 K 11 Wo 31 1.46, Cout_g 32 K 11 Wo 7
// 1.17, so there K must fill 3/4 of its vectors (K 16, 24, 32, 48: 0.10-0.90).
// bfloat16, float16 and double gain alike (0.31-0.94 on five shapes).
inline bool grad_weight_runs_taps(const RowConvParams& p, int64_t lanes) {
  const int64_t K = p.kernel_size, Wo = p.out_width;
  const int64_t min_k = Wo < 32 ? 8 : Wo < 128 ? 13 : Wo <= 256 ? 32 : 48;
  const bool fills_taps = 4 * K >= 3 * ceil_div(K, lanes) * lanes;
  return K >= min_k && Wo <= 1024 && (p.out_per_group < 2 * lanes || fills_taps);
}

// Columns of grad_out a piece of the reduction takes: its rows (Cout_g of
// them) within 16 KiB, read again for every input channel from L1. Pieces
// are whole batch entries where rows are short, else stretches of one row.
// (A product's sums go on from one piece to the next through C, one chain;
// the pieces set no order, only kGradWeightFlushTerms does.)
template <typename acc_t>
inline int64_t taps_piece_columns(int64_t cout_g) {
  return std::clamp<int64_t>(16384 / (cout_g * static_cast<int64_t>(sizeof(acc_t))), 64, kGradWeightFlushTerms);
}

template <typename scalar_t>
void row_conv1d_grad_weight_taps(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* x,
                                 scalar_t* grad_w) {
  using acc_t = at::opmath_type<scalar_t>;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size, d = p.dilation;
  const int64_t Wo = p.out_width;
  // A piece: `entries` whole rows side by side, or one row's stretch of `stretch` positions.
  const int64_t columns = taps_piece_columns<acc_t>(cout_g);
  const int64_t entries = std::clamp<int64_t>(columns / std::max<int64_t>(Wo, 1), 1, p.batch);
  const int64_t stretch = std::min(Wo, columns);
  // A slot's window: the positions its outputs read, split into the
  // dilation's phases (window position u at phase u % d, index u / d), each
  // with a row's slack for the micro-kernel's whole-vector reads.
  const int64_t phase_len = ceil_div(p.forward_window(stretch), d) + kRowSlack;
  const int64_t window_len = d * phase_len;
  // sums of one input channel: Cout_g rows of K (whole vectors: gemm_rows' stores)
  const int64_t ldc = ceil_div(K, mk.lanes) * mk.lanes;
  const int64_t ld_gout = entries * stretch + kRowSlack;
  // Items (h, group, block of input channels): enough for every thread, and
  // an item's sums within a quarter of the L2.
  const int64_t row_groups = p.rows * p.groups;
  const int64_t want = ceil_div(4 * at::get_num_threads(), row_groups);
  const int64_t max_block =
      std::max<int64_t>(1, l2_cache_bytes() / 4 / (2 * cout_g * ldc * static_cast<int64_t>(sizeof(acc_t))));
  const int64_t block = ceil_div(cin_g, std::clamp<int64_t>(std::max(want, ceil_div(cin_g, max_block)), 1, cin_g));
  const int64_t blocks = ceil_div(cin_g, block);

  at::parallel_for(0, row_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gout(cout_g * ld_gout), windows(entries * window_len, acc_t(0));
    FlushedSums<acc_t> sums(block * cout_g * ldc);
    std::vector<const acc_t*> gout_rows(cout_g), tap_rows(entries * stretch);
    for (int64_t co = 0; co < cout_g; ++co) gout_rows[co] = gout.data() + co * ld_gout;
    // column (e, t) of a piece reads slot e's window from position t * stride
    for (int64_t e = 0; e < entries; ++e)
      for (int64_t t = 0; t < stretch; ++t) {
        const int64_t u = t * p.stride;
        tap_rows[e * stretch + t] = windows.data() + e * window_len + u % d * phase_len + u / d;
      }
    for (int64_t item = begin; item < end; ++item) {
      const int64_t hg = item / blocks, first = item % blocks * block, count = std::min(block, cin_g - first);
      const int64_t h = hg / p.groups, g = hg % p.groups;
      sums.start();
      for (int64_t b0 = 0; b0 < p.batch; b0 += entries) {
        const int64_t n_entries = std::min(entries, p.batch - b0);
        for (int64_t t0 = 0; t0 < Wo; t0 += stretch) {
          const int64_t n = std::min(stretch, Wo - t0), start = p.input_position(t0, 0), span = p.forward_window(n);
          for (int64_t co = 0; co < cout_g; ++co) {
            acc_t* dst = gout.data() + co * ld_gout;
            for (int64_t e = 0; e < n_entries; ++e, dst += stretch) {
              const scalar_t* src = grad_out + p.gout_offset(b0 + e, g * cout_g + co, h, t0);
              if (p.gout_stride_w == 1 && n <= 64) {  // (a short row: no call)
                for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<acc_t>(src[t]);
              } else {
                load_window(src, n, p.gout_stride_w, 0, n, dst);
              }
            }
          }
          for (int64_t ci = first; ci < first + count; ++ci) {
            const int64_t c = g * cin_g + ci;
            for (int64_t e = 0; e < n_entries; ++e)
              load_phase_windows(p, x, b0 + e, c, h, start, span, windows.data() + e * window_len, phase_len);
            // acc[ci][co][k] += sum over the piece's columns j of gout[co][j] * tap_rows[j][k]
            mk.gemm_rows(cout_g, K, n_entries * n, gout_rows.data(), tap_rows.data(),
                         sums.acc.data() + (ci - first) * cout_g * ldc, ldc);
          }
          sums.after_step(n_entries * n, b0 + n_entries == p.batch && t0 + n == Wo);
        }
      }
      const acc_t* sum = sums.finish();
      for (int64_t ci = first; ci < first + count; ++ci)
        for (int64_t co = 0; co < cout_g; ++co)
          for (int64_t k = 0; k < K; ++k)
            grad_w[p.weight_offset(h, g * cout_g + co, ci, k)] =
                static_cast<scalar_t>(sum[((ci - first) * cout_g + co) * ldc + k]);
    }
  });
}

}  // namespace rowconv::cpu
