// Forward, grad-input and grad-weight on the CPU for short rows, several
// batch entries a product:
//   y[b, co, h, t]  for b in a block of batch entries, t < Wout,
//   grad_x[b, ci, h, j]  for j < W, and
//   grad_w[h, co, ci, k]  reduced over blocks of entries,
// the same sums as forward_kernel.h, grad_input_kernel.h and
// grad_weight_kernel.h (the formulas there). Forward and grad-input: work
// item one (h, group, block of batch entries), whose entries' columns stand
// side by side, (b, t) for t < Wout (grad-input: (b, j), j < W), in one
// product of gemm_rows_set: weights (Cout_g x Cin_g*K) by the unrolled
// windows (Cin_g*K x columns; grad-input: Cin_g x Cout_g*K by Cout_g*K x
// columns), into a buffer, then copied out row by row. Grad-weight: work
// item one (h, group), its blocks' columns reduced by dot_rows.
//
// Why: the micro-kernels' column blocks are 32 floats wide (AVX-512, 8 x 2
// vectors), so one product a row of 7 outputs spent 7 of 32 columns on the
// row (16,256,16,7) Cout 512 K 11 groups 8 'same' ran at 56 GFLOP/s forward
// and 34 grad-input, against 133 for oneDNN's grouped convolution (Zen 4, 2
// threads). The windows are unrolled here (an im2col matrix, built: a copy
// of Cin_g*K rows of Wout per entry) because the shifted views of one
// window that the long rows' kernels read do not line up across entries.
//
// Each output is one chain of multiply-adds over the same terms in the same
// order as the one-row kernels' (the rows (ci, k) of the forward; (co, k) of
// the grad-input at stride 1), and gemm_rows_set sums each column alone:
// the same bits as those kernels where they run gemm_rows_set (not the
// depthwise taps kernels, which this path does not serve). Grad-weight's
// dot form sums its lanes over the columns (b, t) of a block, not t alone:
// other bits than grad_weight_kernel.h's, fixed by the shape.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

// Where these kernels take over (rows shorter than kShortRowColumns, two
// batch entries or more, no carried state): where the product has rows
// enough to pay for the copies (Cout_g for the forward, Cin_g for the
// grad-input: each copied element serves that many multiply-adds) and the
// one-row kernels leave enough of their column blocks empty. In-process A/B
// against the one-row kernels, the same bits, Zen 4, 2 threads, float
// (time of these over theirs; Cin_g x K: the forward's other side, the
// grad-input's Cout_g x K):
//   forward, Cin_g x K 16 x 3: Cout_g 32 0.72 / 0.89 / 1.08 at Wout 4 / 7 /
//   10; Cout_g 64 0.53 / 0.74 / 0.82 / 0.97 at 4 / 7 / 10 / 13, 1.14 at 16;
//   64 x 5: Cout_g 64 0.53-0.91 up to 16, 0.98-1.13 above; 4 x 5: Cout_g
//   64 0.69 / 0.88 / 0.99 at 4 / 7 / 10; Cout_g 16 0.81-1.63, 8 1.5-2.0, 4
//   2.3-2.7 (the copies dominate);
//   grad-input, Cout_g x K 16 x 3: Cin_g 16 0.81-0.92 up to W 10, 1.03-1.13
//   above; 32 0.64-0.95 at every W below 32; 64 x 5: 0.44-0.87 at every W
//   and Cin_g 16-64; 4 x 5: Cin_g 16-64 0.71-0.97 up to W 10, 0.88-1.25
//   above; stride 2 (the gradient's zeros in the rows) 1.67x.
//   (16,256,16,7) Cout 512 K 11 groups 8 'same' (Cout_g 64, Cin_g 32):
//   forward 0.55x, grad-input 0.64x.
constexpr int64_t kShortRowColumns = 32;
// Columns of a product: batch entries are added to a block up to this many.
constexpr int64_t kShortRowProductColumns = 256;

inline bool short_rows_apply(const RowConvParams& p) { return p.batch >= 2 && p.prefix_width == 0; }

inline bool forward_runs_short_rows(const RowConvParams& p) {
  const int64_t n = p.out_width, m = p.out_per_group;
  return short_rows_apply(p) && ((m >= 32 && n <= 7) || (m >= 64 && n <= 10));
}

inline bool grad_input_runs_short_rows(const RowConvParams& p) {
  const int64_t n = p.width, m = p.in_per_group, r = p.out_per_group * p.kernel_size;
  return short_rows_apply(p) && p.stride == 1 && n < kShortRowColumns &&
         ((m >= 16 && n <= 10) || (m >= 32 && r >= 48));
}

// Grad-weight: fewer output channels a group than this (the dot form, lane
// partials), where one-row products reduce over Wout columns each and load
// and store their Cout_g x Cin_g*K x 16 partials every call. In-process A/B,
// Zen 4, 2 threads, float, against grad_weight_kernel.h: forum rows of 20
// 0.54x the time, (16,8,32,12) stride 2 0.45x, (32,3,20,10) Cout 6 0.69x,
// (4,32,128,33) Cout 8 K 11 stride 2 0.74x (2.3 -> 1.7 ms), (64,4,64,24) K 7
// 0.74x, (64,2,64,16) 0.76x. With 16 output channels or more (the gemm
// form, vectors over co) the unrolled windows cost about what the one-row
// products lose: 0.84-1.06x, and 1.36x at (8,128,8,30) Cout 32 K 1 (8
// items, x read in place there); left to grad_weight_kernel.h. Not below 8
// (h, group) items: one item reduces all of a (h, group)'s terms.
constexpr int64_t kGradWeightShortRowsMaxOut = 16;

inline bool grad_weight_runs_short_rows(const RowConvParams& p) {
  return short_rows_apply(p) && p.out_width < kShortRowColumns && p.in_per_group * p.out_per_group > 1 &&
         p.out_per_group < kGradWeightShortRowsMaxOut && p.rows * p.groups >= 8;
}

// Batch entries a product: as many as fill kShortRowProductColumns, and at
// most what leaves 4 items a thread.
inline int64_t short_rows_entries(const RowConvParams& p, int64_t columns) {
  const int64_t fill = std::max<int64_t>(1, kShortRowProductColumns / std::max<int64_t>(columns, 1));
  const int64_t row_groups = p.rows * p.groups;
  const int64_t blocks_wanted = (4 * at::get_num_threads() + row_groups - 1) / row_groups;
  return std::clamp<int64_t>(std::min(fill, ceil_div(p.batch, blocks_wanted)), 1, p.batch);
}

// dst[u] = src[u] for u < n, by whole 16-byte pieces: up to 15 bytes past
// n are written (with src's values past n) and read (64-byte pieces, each
// four 16-byte moves in this baseline code, wrote rows of 7 floats 2.3
// times over: grad-input (8,64,16,31) K 5 0.74x the time, (16,32,128,7)
// K 11 0.94x, forward 0.94x, Zen 4). For a destination
// whose next n-element run is written after this one, or that has room
// (kRowSlack) past it.
template <typename T>
inline void copy_run_over(const T* src, int64_t n, T* dst) {
  constexpr int64_t kPiece = 16 / static_cast<int64_t>(sizeof(T));
  for (int64_t u = 0; u < n; u += kPiece) std::memcpy(dst + u, src + u, 16);
}

// dst[u] = src[u] for u < n, exactly (a row of a result), in 16-byte
// pieces, the last one ending at n: no call to memmove for a row of 7
// (std::copy_n's: grad-input (16,256,16,7) K 11 groups 8 0.94x the time,
// four other shapes 0.96-0.99x, Zen 4).
template <typename T>
inline void copy_short_run(const T* src, int64_t n, T* dst) {
  constexpr int64_t kPiece = 16 / static_cast<int64_t>(sizeof(T));
  if (n < kPiece) {
    for (int64_t u = 0; u < n; ++u) dst[u] = src[u];
    return;
  }
  for (int64_t u = 0; u + kPiece < n; u += kPiece) std::memcpy(dst + u, src + u, 16);
  std::memcpy(dst + n - kPiece, src + n - kPiece, 16);
}

// load_window into room for these kernels' windows (a row's few elements
// each): along unit steps, load_unit_window_line_aligned's loops inlined
// here (no call, divisions or copy call for a window of 17 elements);
// returns where the window starts. room holds span + kLineElements - 1
// elements.
template <typename T>
inline const T* load_short_window(const T* row, int64_t length, int64_t step, int64_t start, int64_t span, T* room) {
  if (step == 1) return load_unit_window_line_aligned(row, length, start, span, room, static_cast<const T*>(nullptr), 0);
  load_window(row, length, step, start, span, room);
  return room;
}

// The forward's (and grad-weight's) unrolled windows of x for batch
// entries [b0, b0 + n_entries) of (h, group g): row (ci, k) of `cols` (ld
// apart) holds x[b, ci, h, t * stride - pad_left + k * dilation] at column
// (b - b0) * Wout + t, zeros outside the row; `window` holds
// forward_window(Wout) + kRowSlack elements.
template <typename scalar_t>
void unroll_input_windows(const RowConvParams& p, const scalar_t* x, int64_t h, int64_t g, int64_t b0,
                          int64_t n_entries, scalar_t* window, scalar_t* cols, int64_t ld) {
  const int64_t cin_g = p.in_per_group, K = p.kernel_size, Wo = p.out_width;
  for (int64_t ci = 0; ci < cin_g; ++ci) {
    for (int64_t e = 0; e < n_entries; ++e) {
      const scalar_t* win = load_short_window(x + p.in_offset(b0 + e, g * cin_g + ci, h, 0), p.width, p.in_stride_w,
                                              p.input_position(0, 0), p.forward_window(Wo), window);
      for (int64_t k = 0; k < K; ++k) {
        scalar_t* dst = cols + (ci * K + k) * ld + e * Wo;
        const scalar_t* src = win + k * p.dilation;
        if (p.stride == 1) {
          copy_run_over(src, Wo, dst);  // (the next entry's run, or the slack, follows)
        } else {
          for (int64_t t = 0; t < Wo; ++t) dst[t] = src[t * p.stride];
        }
      }
    }
  }
}

// The forward's and grad-input's items: for each (h, group g, block of
// batch entries), unroll(h, g, b0, n_entries, window, cols, ld) fills the
// R rows of `cols` (`columns` a entry, side by side), weight_rows(h, g,
// pack, packed, rows) points the M rows of the weights (a thread's `pack`
// and the (h, group) `packed` in it, for weights packed first) and returns
// the product's init (the bias, or null), the product goes into a buffer,
// and its row m of entry e is copied to result_row(b, m, h, g).
template <typename scalar_t, typename Unroll, typename WeightRows, typename ResultRow>
void short_rows_products(const RowConvParams& p, int64_t M, int64_t R, int64_t columns, int64_t window_length,
                         const Unroll& unroll, const WeightRows& weight_rows, const ResultRow& result_row) {
  const MicroKernels<scalar_t>& mk = micro_kernels<scalar_t>();
  const int64_t entries = short_rows_entries(p, columns);
  const int64_t blocks = ceil_div(p.batch, entries);
  const int64_t ld = entries * columns + kRowSlack;
  const int64_t items = p.rows * p.groups * blocks;
  parallel_chunks(items, grain_for(M * R * entries * columns), [&](auto&& next) {
    std::vector<scalar_t> cols(R * ld, scalar_t(0)), out(M * ld), window(window_length + kRowSlack, scalar_t(0));
    std::vector<scalar_t> pack;
    int64_t packed = -1;
    std::vector<const scalar_t*> rows(R), w_rows(M);
    for (int64_t r = 0; r < R; ++r) rows[r] = cols.data() + r * ld;
    int64_t begin, end;
    while (next(begin, end)) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t hg = item / blocks, b0 = item % blocks * entries;
        const int64_t h = hg / p.groups, g = hg % p.groups, n_entries = std::min(entries, p.batch - b0);
        unroll(h, g, b0, n_entries, window.data(), cols.data(), ld);
        const scalar_t* init = weight_rows(h, g, pack, packed, w_rows.data());
        mk.gemm_rows_set(M, n_entries * columns, R, w_rows.data(), rows.data(), init, out.data(), ld, nullptr);
        for (int64_t e = 0; e < n_entries; ++e)
          for (int64_t m = 0; m < M; ++m)
            copy_short_run(out.data() + m * ld + e * columns, columns, result_row(b0 + e, m, h, g));
      }
    }
  });
}

template <typename scalar_t>
void row_conv1d_forward_short_rows(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                                   const scalar_t* bias, scalar_t* y) {
  const int64_t cout_g = p.out_per_group, R = p.in_per_group * p.kernel_size;
  short_rows_products<scalar_t>(
      p, cout_g, R, p.out_width, p.forward_window(p.out_width),
      [&](int64_t h, int64_t g, int64_t b0, int64_t n_entries, scalar_t* window, scalar_t* cols, int64_t ld) {
        unroll_input_windows(p, x, h, g, b0, n_entries, window, cols, ld);
      },
      [&](int64_t h, int64_t g, std::vector<scalar_t>&, int64_t&, const scalar_t** w_rows) {
        const scalar_t* w = weight + p.weight_offset(h, g * cout_g, 0, 0);  // Cout_g contiguous rows of R
        for (int64_t co = 0; co < cout_g; ++co) w_rows[co] = w + co * R;
        return bias ? bias + p.bias_offset(h, g * cout_g) : nullptr;
      },
      [&](int64_t b, int64_t co, int64_t h, int64_t g) { return y + p.output_offset(b, g * cout_g + co, h, 0); });
}

template <typename scalar_t>
void row_conv1d_grad_input_short_rows(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* weight,
                                      scalar_t* grad_x) {
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size, R = cout_g * K;
  const int64_t s = p.stride, W = p.width, Wo = p.out_width;
  // grad_out positions that column j reads through tap k: t = (j + pad_left
  // - k * dilation) / stride where exact; the window of each entry's row
  // from t_lo (tap K - 1, j = 0) to t_hi (tap 0, j = W - 1)
  const int64_t t_lo = floor_div(p.grad_numerator(0, K - 1), s), t_hi = floor_div(p.grad_numerator(W - 1, 0), s);
  const int64_t span = t_hi - t_lo + 1;
  short_rows_products<scalar_t>(
      p, cin_g, R, W, span,
      [&](int64_t h, int64_t g, int64_t b0, int64_t n_entries, scalar_t* window, scalar_t* cols, int64_t ld) {
        for (int64_t co = 0; co < cout_g; ++co) {
          for (int64_t e = 0; e < n_entries; ++e) {
            const scalar_t* win = load_short_window(grad_out + p.gout_offset(b0 + e, g * cout_g + co, h, 0), Wo,
                                                    p.gout_stride_w, t_lo, span, window);
            for (int64_t k = 0; k < K; ++k) {
              scalar_t* dst = cols + (co * K + k) * ld + e * W;
              if (s == 1) {
                copy_run_over(win + (p.grad_numerator(0, k) - t_lo), W, dst);
              } else {
                for (int64_t j = 0; j < W; ++j) {
                  const int64_t num = p.grad_numerator(j, k);
                  dst[j] = floor_mod(num, s) == 0 ? win[num / s - t_lo] : scalar_t(0);
                }
              }
            }
          }
        }
      },
      [&](int64_t h, int64_t g, std::vector<scalar_t>& pack, int64_t& packed, const scalar_t** w_rows) {
        // pack[ci][co * K + k] = weight[h, g Cout_g + co, ci, k], once a (h, group) a thread
        if (packed != h * p.groups + g) {
          pack.resize(cin_g * R);
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t co = 0; co < cout_g; ++co)
              for (int64_t k = 0; k < K; ++k) pack[ci * R + co * K + k] = weight[p.weight_offset(h, g * cout_g + co, ci, k)];
          packed = h * p.groups + g;
        }
        for (int64_t ci = 0; ci < cin_g; ++ci) w_rows[ci] = pack.data() + ci * R;
        return static_cast<const scalar_t*>(nullptr);
      },
      [&](int64_t b, int64_t ci, int64_t h, int64_t g) { return grad_x + p.grad_input_offset(b, g * cin_g + ci, h, 0); });
}

// grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t * stride - pad_left + k * dilation]
// for short rows: one item a (h, group), reduced over blocks of batch
// entries in order, each block's (b, t) columns side by side in one product
// (the gemm form's, vectors over co, where Cout_g fills a vector; else the
// dot form's lane partials, summed once at the end), running sums added to
// totals every kGradWeightFlushTerms columns as grad_weight_kernel.h's.
template <typename scalar_t>
void row_conv1d_grad_weight_short_rows(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* x,
                                       scalar_t* grad_w) {
  const MicroKernels<scalar_t>& mk = micro_kernels<scalar_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size, R = cin_g * K;
  const int64_t Wo = p.out_width;
  // (not short_rows_entries: the blocks fix the order of the sums, so they
  // depend on the shape only, not on the thread count)
  const int64_t entries = std::clamp<int64_t>(kShortRowProductColumns / std::max<int64_t>(Wo, 1), 1, p.batch);
  const int64_t ld = entries * Wo + kRowSlack;
  const bool channel_vectors = cout_g >= mk.lanes;
  const int64_t line = kLineElements<scalar_t>;
  // (the gemm form's transposed tile: whole lines, an odd number of them, as grad_weight_kernel.h's)
  const int64_t ldg = channel_vectors ? ((cout_g + kRowSlack + line - 1) / line | 1) * line : ld;
  const int64_t acc_size = channel_vectors ? R * ldg : cout_g * R * mk.lanes;
  at::parallel_for(0, p.rows * p.groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> cols(R * ld, scalar_t(0)), window(p.forward_window(Wo) + kRowSlack, scalar_t(0));
    std::vector<scalar_t> gout((channel_vectors ? entries * Wo : cout_g) * ldg, scalar_t(0));
    FlushedSums<scalar_t> sums_of(acc_size);
    std::vector<scalar_t> sums(channel_vectors ? 0 : cout_g * R);
    std::vector<const scalar_t*> rows(R), gout_rows(channel_vectors ? entries * Wo : cout_g);
    for (int64_t r = 0; r < R; ++r) rows[r] = cols.data() + r * ld;
    for (size_t i = 0; i < gout_rows.size(); ++i) gout_rows[i] = gout.data() + i * ldg;
    for (int64_t hg = begin; hg < end; ++hg) {
      const int64_t h = hg / p.groups, g = hg % p.groups;
      sums_of.start();
      scalar_t* acc = sums_of.acc.data();
      for (int64_t b0 = 0; b0 < p.batch; b0 += entries) {
        const int64_t n_entries = std::min(entries, p.batch - b0), n = n_entries * Wo;
        unroll_input_windows(p, x, h, g, b0, n_entries, window.data(), cols.data(), ld);
        if (channel_vectors) {
          // acc[(ci, k), co] += sum over columns of cols[(ci, k)] * gout[column][co]
          for (int64_t e = 0; e < n_entries; ++e)
            transpose_gout_tile(p, mk, grad_out + p.gout_offset(b0 + e, g * cout_g, h, 0), Wo,
                                gout.data() + e * Wo * ldg, ldg);
          mk.gemm_rows(R, cout_g, n, rows.data(), gout_rows.data(), acc, ldg);
        } else {
          for (int64_t co = 0; co < cout_g; ++co)
            for (int64_t e = 0; e < n_entries; ++e)
              load_window(grad_out + p.gout_offset(b0 + e, g * cout_g + co, h, 0), Wo, p.gout_stride_w, 0, Wo,
                          gout.data() + co * ldg + e * Wo);
          mk.dot_rows(cout_g, R, n, gout_rows.data(), rows.data(), acc, R, nullptr);
        }
        sums_of.after_step(n, b0 + entries >= p.batch);
      }
      const scalar_t* sum = sums_of.finish();
      if (channel_vectors) {
        for (int64_t r = 0; r < R; ++r)
          for (int64_t co = 0; co < cout_g; ++co)
            grad_w[p.weight_offset(h, g * cout_g + co, r / K, r % K)] = sum[r * ldg + co];
      } else {
        mk.reduce_lanes(cout_g * R, sum, sums.data());
        for (int64_t co = 0; co < cout_g; ++co)
          for (int64_t r = 0; r < R; ++r) grad_w[p.weight_offset(h, g * cout_g + co, r / K, r % K)] = sums[co * R + r];
      }
    }
  });
}

}  // namespace rowconv::cpu
