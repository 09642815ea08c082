// Forward on the CPU:
//   y[b, co, h, t] = bias[h, co]
//       + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * x[b, ci, h, t*stride - pad_left + k*dilation]
// Work item: one (b, h, group, tile of output positions). Per item this is a
// (Cout_g x Cin_g*K) by (Cin_g*K x tile) matrix product whose right factor is
// read through InputRows (copied windows, or x itself where few output
// channels read only the row), run by the gemm_rows micro-kernels: straight
// into y from the bias for float and double, through float sums for the
// half types.
// Depthwise at stride 1 (one input and one output channel a group, float
// and double): one row of taps an item, by taps_row_set
// (row_conv1d_forward_depthwise).
// With a final_state to fill (a causal convolution's carried state), the
// item of each row's last tile copies it.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "bf16_pairs.h"
#include "cpu_tiling.h"
#include "forward_taps_kernel.h"
#include "short_rows_kernel.h"

namespace rowconv::cpu {

// The final state of a causal convolution (row_conv1d_with_final_state),
// (B, Cin, H, S = pad_left) contiguous: the last S positions of the virtual
// row prefix ++ x of group g's channels at (b, h), copied as they are. The
// work item of the row's last tile does it, just after reading those
// positions (a copy after the kernel would fetch a cache line per row from
// far away: 6% of a 512-wide chunk of the forum shape).
template <typename scalar_t>
void copy_final_state_rows(const RowConvParams& p, const scalar_t* x, int64_t b, int64_t h, int64_t g,
                           scalar_t* final_state) {
  const int64_t S = p.pad_left;
  for (int64_t c = g * p.in_per_group; c < (g + 1) * p.in_per_group; ++c) {
    scalar_t* dst = final_state + ((b * p.in_channels + c) * p.rows + h) * S;
    if (S <= p.width && p.in_stride_w == 1) {  // the row's last S inputs, one run
      // a fresh tensor, written a few elements a row: its lines fetched for
      // writing 4 lines ahead (and no call to memmove for a few elements)
      __builtin_prefetch(dst + 256 / sizeof(scalar_t), 1);
      const scalar_t* src = x + p.in_offset(b, c, h, p.width - S);
      for (int64_t s = 0; s < S; ++s) dst[s] = src[s];
      continue;
    }
    load_window(x + p.in_offset(b, c, h, 0), p.width, p.in_stride_w, p.width - S, S, dst, 1,
                p.prefix_row<scalar_t>(b, c, h), p.prefix_width, p.pre_stride_w);
  }
}

// The bfloat16 forward at stride 1 by pairs, summed by vdpbf16ps in float
// (bf16_pairs.h), straight into y from the bias. Two pairings:
//  - of input channels: tap k of channel pair cp reads the pair row from
//    position k * dilation on (shifted views, as InputRows), with the weights
//    (w[co][2cp][k], w[co][2cp+1][k]);
//  - of taps, where a group has one input channel (depthwise: a channel pair
//    would be half zeros): the channel's window paired with itself `dilation`
//    positions on, (x[u], x[u + d]), and tap pair j = (2j, 2j + 1) reads that
//    row from 2j * d on, with the weights (w[co][0][2j], w[co][0][2j+1]); an
//    odd K's last tap reads a row of (x[u + (K-1)d], 0) with (w[co][0][K-1], 0).
// Tiles and work items as row_conv1d_forward's.
template <typename scalar_t>
void row_conv1d_forward_bf16_pairs(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                                   const scalar_t* bias, scalar_t* y, scalar_t* final_state,
                                   const Bf16PairKernels& bk) {
  static_assert(std::is_same_v<scalar_t, c10::BFloat16>);
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size, d = p.dilation;
  const bool tap_pairs = cin_g == 1 && K > 1;
  const int64_t channel_pairs = (cin_g + 1) / 2, P = tap_pairs ? (K + 1) / 2 : channel_pairs * K;
  const int64_t tile = tile_width(cout_g + cin_g, p.out_width);
  const int64_t ldy = p.rows * p.out_width;
  const int64_t tiles = tile_count(p.out_width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  const int64_t window = tile + (K - 1) * d;  // input positions a tile reads
  // (fetch_window_ahead: x's rows, where they come from memory)
  const bool fetch_ahead = p.in_stride_w == 1 && p.operands_from_memory;

  // per (h, group): Cout_g rows of P pairs
  const std::vector<uint32_t> w_pairs =
      pack_weight_pairs(p.rows, p.groups, cout_g * P, [&](int64_t h, int64_t g, uint32_t* dst) {
        for (int64_t co = 0; co < cout_g; ++co, dst += P) {
          const scalar_t* wc = weight + p.weight_offset(h, g * cout_g + co, 0, 0);
          if (tap_pairs) {
            for (int64_t j = 0; j < P; ++j) dst[j] = bf16_pair(wc[2 * j], 2 * j + 1 < K ? wc[2 * j + 1] : scalar_t(0));
          } else {
            for (int64_t cp = 0; cp < channel_pairs; ++cp)
              for (int64_t k = 0; k < K; ++k)
                dst[cp * K + k] = bf16_pair(wc[2 * cp * K + k], 2 * cp + 1 < cin_g ? wc[(2 * cp + 1) * K + k] : scalar_t(0));
          }
        }
      });

  parallel_chunks(items, grain_for(cout_g * cin_g * K * tile), [&](auto&& next) {
    ChannelPairRows in(tap_pairs ? 0 : cin_g, tap_pairs ? 0 : window + kRowSlack);
    // tap pairs: the window (and d more positions: the last partners), its
    // pairs with itself d on, and an odd K's last tap with zeros
    std::vector<scalar_t> win(tap_pairs ? window + d : 0), zeros(tap_pairs ? tile : 0, scalar_t(0));
    std::vector<uint32_t> self_pairs(tap_pairs ? window + kRowSlack : 0, 0),
        last_pairs(tap_pairs ? tile + kRowSlack : 0, 0);
    std::vector<const uint32_t*> w_rows(cout_g), rows(P);
    if (tap_pairs) {
      for (int64_t j = 0; j < K / 2; ++j) rows[j] = self_pairs.data() + 2 * j * d;
      if (K % 2) rows[K / 2] = last_pairs.data();
    } else {
      for (int64_t cp = 0; cp < channel_pairs; ++cp)
        for (int64_t k = 0; k < K; ++k) rows[cp * K + k] = in.row(cp) + k * d;
    }
    std::vector<float> bias_f(cout_g);
    int64_t packed = -1;  // the (h, group) of w_rows and bias_f
    int64_t begin, end;
    while (next(begin, end)) for (int64_t item = begin; item < end; ++item) {
      const auto [b, h, g, t0, n] = tiled_item(p, item, tiles, tile, p.out_width);
      if (packed != h * p.groups + g) {
        for (int64_t co = 0; co < cout_g; ++co) {
          w_rows[co] = w_pairs.data() + ((h * p.groups + g) * cout_g + co) * P;
          bias_f[co] = bias ? static_cast<float>(bias[p.bias_offset(h, g * cout_g + co)]) : 0.f;
        }
        packed = h * p.groups + g;
      }
      const int64_t start = p.input_position(t0, 0), count = n + (K - 1) * d;
      const auto load = [&](int64_t ci, int64_t span, scalar_t* dst) {
        const int64_t c = g * cin_g + ci;
        load_window(x + p.in_offset(b, c, h, 0), p.width, p.in_stride_w, start, span, dst, 1,
                    p.prefix_row<scalar_t>(b, c, h), p.prefix_width, p.pre_stride_w);
      };
      if (tap_pairs) {
        load(0, count + d, win.data());
        const auto* bits = reinterpret_cast<const uint16_t*>(win.data());
        bk.interleave_pairs(count, bits, bits + d, self_pairs.data());
        if (K % 2)
          bk.interleave_pairs(n, bits + (K - 1) * d, reinterpret_cast<const uint16_t*>(zeros.data()),
                              last_pairs.data());
      } else {
        in.fill(bk, count, [&](int64_t ci, int64_t span, scalar_t* room) -> const scalar_t* {
          if (fetch_ahead)
            fetch_window_ahead(ci, 0, cin_g, start, start + n * p.stride, span,
                               [&](int64_t ch) { return x + p.in_offset(b, g * cin_g + ch, h, 0); });
          if (window_in_row(p.in_stride_w, start, span, p.width))
            return x + p.in_offset(b, g * cin_g + ci, h, start);
          load(ci, span, room);
          return room;
        });
      }
      if (final_state && t0 + n == p.out_width) copy_final_state_rows(p, x, b, h, g, final_state);
      // straight into y's rows (Cout_g of them), from the bias, rounded as c10 rounds
      bk.gemm_pairs_set(cout_g, n, P, w_rows.data(), rows.data(), bias ? bias_f.data() : nullptr,
                        reinterpret_cast<uint16_t*>(y + p.output_offset(b, g * cout_g, h, t0)), ldy);
    }
  });
}

// Whether a streaming depthwise item (`it`, `has_next`: an item follows it)
// leaves the taps kernel its fetches of x ahead (kTapsFetchAheadBytes past
// each block): yes where the next item's input follows this one's in memory
// (a row's next tile, or rows contiguous). Else the lines past the row are
// not the next ones read (chunks of one x, x[..., i:i+512]: the same row's
// next chunk, fetched for nothing), so this fetches the next item's first
// lines itself, and the kernel fetches only for a tile longer than twice
// the distance (most of its fetches then inside the row). Zen 3, 2
// threads, (64,1,1024,4096) K 4 in chunks of W with carried state,
// x[..., i:i+W], in-process against the kernel's fetches only: W 512
// 0.68-0.71x the time, 1024 0.80-0.91x; W 2048 with the kernel's fetches
// and the next row's 0.92-0.95x, without them 1.01x; contiguous chunks and
// one pass unchanged. Fetching two or four items ahead instead of one:
// 0.99-1.00x, 1.08-1.15x the time.
template <typename scalar_t>
inline bool kernel_fetches_next_input(const RowConvParams& p, const scalar_t* x, const TiledItem& it, bool has_next,
                                      int64_t tile) {
  if (!has_next) return true;
  TiledItem next = it;
  next_tiled_item(p, tile, p.out_width, next);
  // the positions of x each item reads: [first, end) of its row
  const auto first_read = [&](const TiledItem& i) { return std::clamp<int64_t>(i.t0 - p.pad_left, 0, p.width); };
  const int64_t end_read = std::clamp<int64_t>(it.t0 + it.n - p.pad_left + (p.kernel_size - 1) * p.dilation, 0, p.width);
  const scalar_t* row = x + p.in_offset(it.b, it.g, it.h, 0);
  const scalar_t* next_first = x + p.in_offset(next.b, next.g, next.h, 0) + first_read(next);
  if (next_first >= row + first_read(it) && next_first <= row + end_read) return true;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(scalar_t));
  const int64_t count =
      std::min<int64_t>(p.width - first_read(next), kTapsFetchAheadBytes / static_cast<int64_t>(sizeof(scalar_t)));
  for (int64_t i = 0; i < count; i += kLine) prefetch_line(next_first + i);
  return it.n * static_cast<int64_t>(sizeof(scalar_t)) > 2 * kTapsFetchAheadBytes;
}

// The forward of one input and one output channel a group (depthwise) at
// stride 1, float or double, unit steps along x's rows (and the carried
// state's): one row of K taps an item, by taps_row_set, without InputRows'
// channels, phases and row pointers. A tile's columns whose windows lie
// inside the row read x in place; the others (a causal chunk's first ones,
// which read the carried state) a window copied next to them. Zen 3, 2
// threads, (64,1,1024,4096) K 4 causal, against the general path in the
// same processes: one pass 0.73-0.92x the time, chunks of 512 with carried
// state 0.72-0.88x (most of it the input fetched ahead, taps_row_impl).
template <typename scalar_t>
void row_conv1d_forward_depthwise(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                                  const scalar_t* bias, scalar_t* y, scalar_t* final_state, int64_t tile,
                                  int64_t x_extent, bool streaming) {
  const MicroKernels<scalar_t>& mk =
      depthwise_micro_kernels<scalar_t>(p.kernel_size, p.dilation, DepthwiseTaps::rows);
  const auto taps_into_y_fetching = streaming ? mk.taps_row_set_streaming : mk.taps_row_set;
  const int64_t K = p.kernel_size, d = p.dilation, reach = (K - 1) * d;
  const int64_t tiles = tile_count(p.out_width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  parallel_chunks(items, grain_for(K * tile), [&](auto&& next) {
    std::vector<scalar_t> room(tile + reach + kRowSlack + kLineElements<scalar_t>);
    int64_t begin, end;
    while (next(begin, end)) {
      TiledItem it = tiled_item(p, begin, tiles, tile, p.out_width);
      for (int64_t item = begin; item < end; ++item, next_tiled_item(p, tile, p.out_width, it)) {
        const auto [b, h, g, t0, n] = it;
        const scalar_t* w = weight + p.weight_offset(h, g, 0, 0);
        const scalar_t* b0 = bias ? bias + p.bias_offset(h, g) : nullptr;
        const int64_t x_row = p.in_offset(b, g, h, 0);
        scalar_t* y_row = y + p.output_offset(b, g, h, 0);
        const auto taps_into_y =
            streaming && !kernel_fetches_next_input(p, x, it, item + 1 < items, tile) ? mk.taps_row_set_streaming_unfetched
                                                                                  : taps_into_y_fetching;
        // columns [c0, c0 + cn) from a copied window
        const auto from_window = [&](int64_t c0, int64_t cn) {
          const scalar_t* window = load_unit_window_line_aligned(x + x_row, p.width, c0 - p.pad_left, cn + reach,
                                                                 room.data(), p.prefix_row<scalar_t>(b, g, h),
                                                                 p.prefix_width);
          taps_into_y(cn, K, d, w, window, b0, y_row + c0);
        };
        // (a left end of one line: the taps kernel's blocks are 256 columns, not measured as left ends)
        const auto [lo, hi] = in_place_columns(t0, n, p.pad_left, p.width + p.pad_left - reach, y_row, 1);
        // (the kernel reads whole blocks past the last column: within x?)
        if (hi > lo && x_row + hi - p.pad_left + reach + kRowSlack <= x_extent) {
          if (lo > t0) from_window(t0, lo - t0);  // (left end first: rows read in order, as grad-input's)
          split_at_first_line(lo, hi, y_row, streaming, K, [&](int64_t c0, int64_t cn) {
            taps_into_y(cn, K, d, w, x + x_row + (c0 - p.pad_left), b0, y_row + c0);
          });
          if (t0 + n > hi) from_window(hi, t0 + n - hi);
        } else {
          split_at_first_line(t0, t0 + n, y_row, streaming, K, from_window);
        }
        if (final_state && t0 + n == p.out_width) copy_final_state_rows(p, x, b, h, g, final_state);
      }
    }
    if (streaming) store_fence();
  });
}

template <typename scalar_t>
void row_conv1d_forward(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                        const scalar_t* bias, scalar_t* y, scalar_t* final_state = nullptr) {
  using acc_t = at::opmath_type<scalar_t>;
  if (!final_state && forward_runs_taps<acc_t>(p))  // (no final state to copy there)
    return row_conv1d_forward_taps(p, x, weight, bias, y);
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    if (const Bf16PairKernels* bk = bf16_pair_kernels(); bk && p.stride == 1)
      return row_conv1d_forward_bf16_pairs(p, x, weight, bias, y, final_state, *bk);
  }
  if constexpr (std::is_same_v<scalar_t, acc_t>) {  // (short_rows_kernel.h; no final state to copy there)
    if (forward_runs_short_rows(p) && !final_state) return row_conv1d_forward_short_rows(p, x, weight, bias, y);
  }
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group;
  const int64_t R = cin_g * p.kernel_size;
  const int64_t tile = tile_width(cout_g + cin_g, p.out_width);
  const int64_t ldc = tile + kRowSlack;
  const int64_t tiles = tile_count(p.out_width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;

  // the half types only: weights converted, sums before the rounding into y
  constexpr bool kConverts = !std::is_same_v<scalar_t, acc_t>;
  // Depthwise at stride 1 where x is not read in place (strided rows): the
  // rows are one window's shifted views, and the taps kernel sums them as
  // row_conv1d_forward_depthwise does (the same bits in every layout).
  const bool one_row_of_taps = cin_g == 1 && cout_g == 1 && p.stride == 1;
  const bool streaming =
      !kConverts &&
      streams_result(p.batch * p.out_channels * p.rows * p.out_width * int64_t{sizeof(scalar_t)}, cout_g, R,
                     p.out_width * int64_t{sizeof(scalar_t)});
  const auto gemm_rows_into_y = streaming ? mk.gemm_rows_set_streaming : mk.gemm_rows_set;
  const MicroKernels<acc_t>& taps_mk = depthwise_micro_kernels<acc_t>(p.kernel_size, p.dilation, DepthwiseTaps::rows);
  const auto taps_into_y = streaming ? taps_mk.taps_row_set_streaming : taps_mk.taps_row_set;

  // Few output channels (kMaxInPlaceStrips strips of the micro-kernel's rows
  // or fewer): the rows point straight into x, no copy, for the columns
  // whose windows lie inside the row (stride 1, unit steps along the row,
  // float or double). Zen 3: pointwise and depthwise forwards 0.58-0.90x
  // the time, forum 0.85x.
  const bool reads_in_place = !kConverts && items > 0 && p.stride == 1 && p.in_stride_w == 1 &&
                              cout_g <= kMaxInPlaceStrips * mk.gemm_rows_block;
  const int64_t x_extent = reads_in_place ? p.in_offset(p.batch - 1, p.in_channels - 1, p.rows - 1, p.width - 1) + 1 : 0;
  // Where x comes from memory, an item's product fetches the next item's
  // windows of x as it goes (LineFetch: each block of the product its
  // share, at its start), as grad-weight's dot form fetches its next step:
  // the product's column blocks read all Cin_g rows of the window along the
  // tile, streams that the hardware's prefetchers meet cold at each item,
  // and the loads waited on them (the forward of (32,15,10,4096) K 3 ran at
  // 81% of the FMA peak from the caches, 50% from memory; Zen 5). Only
  // products of 32 multiply-adds or more a line: with fewer the
  // prefetchers keep up, and the fetches cost up to 1.2x the time
  // ((8,4,64,4096) K 7, (16,2,32,4096) K 3). In-process A/B, same bits, Zen 5, 2 threads: (32,15,10,4096) K 3
  // 0.62-0.66x the time (padded 0.83x), (32,8,32,2048) K 9 0.66x,
  // (16,32,16,2048) Cout 32 K 3 0.79x, (16,12,16,2048) K 7 0.91x,
  // (8,16,16,4096) K 5 0.97x, in cache 1.0x (these with a line every 16
  // multiply-adds along the blocks' loops; at the blocks' starts, as now,
  // forum-long 0.69-0.74x in alternating processes against the previous
  // build: the same within the noise, and no code in the loops).
  const bool fetch_next_item =
      reads_in_place && p.operands_from_memory && products_fetch_ahead() &&
      2 * lines_of_rows<scalar_t>(cin_g, tile + (p.kernel_size - 1) * p.dilation) <= product_steps(cout_g, R, tile, mk.lanes);
  if constexpr (!kConverts) {
    if (reads_in_place && cin_g == 1 && cout_g == 1 && (p.prefix_width == 0 || p.pre_stride_w == 1))
      return row_conv1d_forward_depthwise(p, x, weight, bias, y, final_state, tile, x_extent, streaming);
  }
  parallel_chunks(items, grain_for(cout_g * R * tile), [&](auto&& next) {
    InputRows<acc_t> in(p, tile);
    std::vector<acc_t> w(kConverts ? cout_g * R : 0), acc(kConverts ? cout_g * ldc : 0), bias_acc(kConverts ? cout_g : 0);
    std::vector<const acc_t*> w_rows(cout_g);
    for (int64_t co = 0; co < cout_g; ++co) w_rows[co] = w.data() + co * R;
    std::vector<const char*> next_rows(cin_g);  // the next item's rows of x, fetched as the product goes
    int64_t packed = -1;  // the (h, group) whose weights are in w
    int64_t begin, end;
    while (next(begin, end)) {
      TiledItem it = tiled_item(p, begin, tiles, tile, p.out_width);
      for (int64_t item = begin; item < end; ++item, next_tiled_item(p, tile, p.out_width, it)) {
        const auto [b, h, g, t0, n] = it;
        if (packed != h * p.groups + g) {
          const scalar_t* src = weight + p.weight_offset(h, g * cout_g, 0, 0);
          if constexpr (!kConverts) {
            // The group's weights are already Cout_g contiguous rows of R: read in place.
            for (int64_t co = 0; co < cout_g; ++co) w_rows[co] = src + co * R;
          } else {
            load_run(src, cout_g * R, w.data());
            for (int64_t co = 0; bias && co < cout_g; ++co)
              bias_acc[co] = static_cast<acc_t>(bias[p.bias_offset(h, g * cout_g + co)]);
          }
          packed = h * p.groups + g;
        }
        if constexpr (!kConverts) {
          // straight into y's rows (Cout_g of them, H * Wout apart), from the bias
          const scalar_t* b0 = bias ? bias + p.bias_offset(h, g * cout_g) : nullptr;
          scalar_t* y_row = y + p.output_offset(b, g * cout_g, h, 0);
          LineFetch fetch{nullptr, nullptr, 0, 0, 0, 1};
          TiledItem next_it = it;
          if (fetch_next_item && item_to_fetch(p, next, item, end, tiles, tile, p.out_width, next_it)) {
            // the next item's windows of x
            const RowSpan span = input_span(p, next_it.t0, next_it.n);
            for (int64_t ci = 0; ci < cin_g; ++ci)
              next_rows[ci] = reinterpret_cast<const char*>(
                  x + p.in_offset(next_it.b, next_it.g * cin_g + ci, next_it.h, span.first));
            const int64_t steps = product_steps(cout_g, R, n, mk.lanes);
            if (span.first < span.end) fetch = spread_fetch<scalar_t>(next_rows.data(), cin_g, span.end - span.first, steps);
          }
          const auto into_y = [&](int64_t c0, int64_t cn) {
            if (one_row_of_taps)  // in.rows[k] = in.rows[0] + k * dilation
              taps_into_y(cn, p.kernel_size, p.dilation, w_rows[0], in.rows[0], b0, y_row + c0);
            else
              gemm_rows_into_y(cout_g, cn, R, w_rows.data(), in.rows.data(), b0, y_row + c0, p.rows * p.out_width,
                               fetch.row ? &fetch : nullptr);
          };
          const auto [lo, hi] = in_place_columns(t0, n, p.pad_left, p.width + p.pad_left - (p.kernel_size - 1) * p.dilation, y_row, mk.gemm_rows_columns);
          if (reads_in_place && hi > lo && in.point_into(x, x_extent, b, h, g, lo, hi - lo)) {
            // the left end first, the rows then read in order (grad_input_kernel.h)
            if (lo > t0) in.gather(x, b, h, g, t0, lo - t0), into_y(t0, lo - t0);
            split_at_first_line(lo, hi, y_row, streaming, R, [&](int64_t c0, int64_t cn) {
              if (c0 > lo || lo > t0) in.point_into(x, x_extent, b, h, g, c0, cn);  // (again after the left edge's gather)
              into_y(c0, cn);
            });
            if (t0 + n > hi) in.gather(x, b, h, g, hi, t0 + n - hi), into_y(hi, t0 + n - hi);
          } else {
            in.gather(x, b, h, g, t0, n);
            into_y(t0, n);
          }
          if (final_state && t0 + n == p.out_width) copy_final_state_rows(p, x, b, h, g, final_state);
          continue;
        }
        in.gather(x, b, h, g, t0, n);
        if (final_state && t0 + n == p.out_width) copy_final_state_rows(p, x, b, h, g, final_state);
        scalar_t* out0 = y + p.output_offset(b, g * cout_g, h, t0);
        // float sums from the bias, then rounded into y's rows
        mk.gemm_rows_set(cout_g, n, R, w_rows.data(), in.rows.data(), bias ? bias_acc.data() : nullptr, acc.data(), ldc,
                         nullptr);
        for (int64_t co = 0; co < cout_g; ++co) store_run(acc.data() + co * ldc, n, out0 + co * p.rows * p.out_width);
      }
    }
    if (streaming) store_fence();
  });
}

}  // namespace rowconv::cpu
