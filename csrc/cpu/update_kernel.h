// The decode step on the CPU (row_conv1d_update_params.h has the index rules):
//   y[b, co, h, t] = bias[h, co] + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * z[t - (K-1-k)*d]
// where z[r] is x[b, ci, h, r] for r >= 0 and the held input r of the state
// row for r < 0; then the state takes the new inputs. Three forms, each
// reading every held input of a state row before writing any:
//  - depthwise, one step (one input and one output channel a group, T = 1):
//    K multiply-adds a (b, channel, row), rows walked with pointer steps; one
//    channel over rows (or one row over channels) with x and the state packed
//    along the walk: a unit-step run that the compiler vectorises;
//  - channel mixing (Cin_g * K >= kUpdateDotMinTaps): per (block of batch
//    entries, group, tile of rows), the window each output reads, (Cin_g, K)
//    like a weight row, packed per (b, t), and the outputs its dot products
//    with the weight rows (dot_rows_sums, AVX-512/AVX2 at run time);
//  - otherwise, per (b, h, group): the window copied to the stack, four
//    output channels at a time.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "../row_conv1d_update_params.h"
#include "cpu_tiling.h"
#include "microkernels.h"
#include "update_depthwise_run.h"

namespace rowconv::cpu {

// Output channels accumulated side by side: independent chains of
// multiply-adds hide their latency and share each load of the taps.
constexpr int kUpdateChannelBlock = 4;

// out[j] = bias0[j] + sum_{i < n} w_rows[j][i] * taps[i], j < kRows: the
// weights of an output channel, (Cin_g, K) contiguous, against the inputs its
// taps read, laid out alike. In 16-byte GCC vectors (SSE2 on any x86-64),
// two per row, where the weights are in the accumulation type; a plain loop
// converting them for the half types.
template <int kRows, typename scalar_t, typename acc_t>
inline void update_dot_rows(int64_t n, const scalar_t* const* w_rows, const acc_t* taps,
                            const acc_t* bias0, acc_t* out) {
  for (int j = 0; j < kRows; ++j) out[j] = bias0[j];
  int64_t i = 0;
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    typedef acc_t V __attribute__((vector_size(16)));
    constexpr int kWidth = 16 / sizeof(acc_t);
    V acc[kRows][2] = {};
    const auto load = [](const acc_t* p) {
      V v;
      std::memcpy(&v, p, sizeof(V));  // an unaligned vector load
      return v;
    };
    for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
      const V t0 = load(taps + i), t1 = load(taps + i + kWidth);
      for (int j = 0; j < kRows; ++j) {
        acc[j][0] += load(w_rows[j] + i) * t0;
        acc[j][1] += load(w_rows[j] + i + kWidth) * t1;
      }
    }
    for (int j = 0; j < kRows; ++j) {
      const V v = acc[j][0] + acc[j][1];
      for (int l = 0; l < kWidth; ++l) out[j] += v[l];
    }
  }
  for (; i < n; ++i)
    for (int j = 0; j < kRows; ++j) out[j] += static_cast<acc_t>(w_rows[j][i]) * taps[i];
}

// Per (b, h, group): the general form (any T, groups, dtype).
template <typename scalar_t>
void update_per_item(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
                     const scalar_t* weight, const scalar_t* bias, const int64_t* cache_seqlens,
                     const int64_t* state_indices, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const RowConvParams& conv = p.conv;
  const int64_t cin_g = conv.in_per_group, cout_g = conv.out_per_group, T = conv.width, S = p.state_len;
  const int64_t history = conv.pad_left, window = history + T;
  const int64_t items = conv.batch * conv.rows * conv.groups;
  const int64_t work = cin_g * (window + S) + cout_g * T * (cin_g * conv.kernel_size + 1) + 1;
  const int64_t K = conv.kernel_size;
  const bool window_is_taps = T == 1 && conv.dilation == 1;  // window = K: laid out as the taps
  constexpr int64_t kStackElements = 4096;
  at::parallel_for(0, items, std::max<int64_t>(1, 32768 / work), [&](int64_t begin, int64_t end) {
    // the window (Cin_g, history + T), then the taps of one output (Cin_g, K)
    acc_t stack[kStackElements];
    std::vector<acc_t> heap;
    acc_t* win = stack;
    if (cin_g * (window + K) > kStackElements) {
      heap.resize(cin_g * (window + K));
      win = heap.data();
    }
    acc_t* const taps = win + cin_g * window;
    // offsets in a state row of the held inputs the window starts with, for
    // the buffer position `held_start` of offset 0 (recomputed when it changes)
    int64_t held_stack[256];
    std::vector<int64_t> held_heap;
    int64_t* held = held_stack;
    if (history > 256) {
      held_heap.resize(history);
      held = held_heap.data();
    }
    int64_t held_start = -1;
    int64_t g = begin % conv.groups, h = begin / conv.groups % conv.rows, b = begin / conv.groups / conv.rows;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t row = update_state_row(p, state_indices, b);
      if (row < 0) {  // a skipped entry: zero outputs, its state untouched
        for (int64_t co = g * cout_g; co < (g + 1) * cout_g; ++co)
          std::fill_n(y + conv.output_offset(b, co, h, 0), T, scalar_t(0));
      } else {
        const int64_t start = update_state_start(cache_seqlens, b, S);
        if (start != held_start) {
          for (int64_t i = 0; i < history; ++i)
            held[i] = update_state_position(start, i - history, S) * p.state_stride_s;
          held_start = start;
        }
        const scalar_t* w_rows[kUpdateChannelBlock];
        acc_t bias0[kUpdateChannelBlock], out[kUpdateChannelBlock];
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          const int64_t c = g * cin_g + ci;
          acc_t* z = win + ci * window;
          const scalar_t* x_row = x + conv.in_offset(b, c, h, 0);
          const scalar_t* state_row = state + p.state_row_offset(row, c, h);
          for (int64_t i = 0; i < history; ++i) z[i] = static_cast<acc_t>(state_row[held[i]]);
          for (int64_t t = 0; t < T; ++t) z[history + t] = static_cast<acc_t>(x_row[t * conv.in_stride_w]);
        }
        for (int64_t t = 0; t < T; ++t) {
          // the taps of output t, (Cin_g, K) like a weight row: the window
          // itself for one step at dilation 1
          const acc_t* tap = win;
          if (!window_is_taps) {
            for (int64_t ci = 0; ci < cin_g; ++ci)
              for (int64_t k = 0; k < K; ++k) taps[ci * K + k] = win[ci * window + t + k * conv.dilation];
            tap = taps;
          }
          for (int64_t co0 = 0; co0 < cout_g; co0 += kUpdateChannelBlock) {
            const int64_t n = std::min<int64_t>(kUpdateChannelBlock, cout_g - co0);
            for (int64_t j = 0; j < n; ++j) {
              const int64_t co = g * cout_g + co0 + j;
              w_rows[j] = weight + conv.weight_offset(h, co, 0, 0);
              bias0[j] = bias ? static_cast<acc_t>(bias[conv.bias_offset(h, co)]) : acc_t(0);
            }
            if (n == kUpdateChannelBlock) {
              update_dot_rows<kUpdateChannelBlock>(cin_g * K, w_rows, tap, bias0, out);
            } else {
              for (int64_t j = 0; j < n; ++j) update_dot_rows<1>(cin_g * K, w_rows + j, tap, bias0 + j, out + j);
            }
            for (int64_t j = 0; j < n; ++j)
              y[conv.output_offset(b, g * cout_g + co0 + j, h, t)] = static_cast<scalar_t>(out[j]);
          }
        }
        for (int64_t c = g * cin_g; c < (g + 1) * cin_g; ++c)
          store_new_inputs(p, x + conv.in_offset(b, c, h, 0), state + p.state_row_offset(row, c, h),
                           cache_seqlens != nullptr, start);
      }
      if (++g == conv.groups) {
        g = 0;
        if (++h == conv.rows) h = 0, ++b;
      }
    }
  });
}

// Depthwise, one step: per (b, channel, row) the K - 1 held inputs its taps
// read (at offsets `taps` in the state row), the new input, and the row's
// update; the (row, channel) pairs of one batch entry walked in order (the
// channel fastest) with pointer steps. kK: K at compile time (0: run time).
template <int kK, typename scalar_t>
void update_depthwise_step(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
                           const scalar_t* weight, const scalar_t* bias, const int64_t* cache_seqlens,
                           const int64_t* state_indices, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const RowConvParams& conv = p.conv;
  const int64_t K = kK > 0 ? kK : conv.kernel_size, C = conv.groups, H = conv.rows, S = p.state_len;
  const int64_t per_entry = H * C, ss = p.state_stride_s;
  const bool circular = cache_seqlens != nullptr;
  // the unit-step run compiled for the instruction set in use (float)
  const DepthwiseUnitRun vector_run = std::is_same_v<scalar_t, float> ? depthwise_unit_run(K, bias != nullptr) : nullptr;
  at::parallel_for(0, conv.batch * per_entry, 4096, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> taps(K);  // one allocation a chunk of 4096 or more
    for (int64_t b = begin / per_entry; b * per_entry < end; ++b) {
      const int64_t first = std::max(begin - b * per_entry, int64_t{0});
      const int64_t last = std::min(end - b * per_entry, per_entry);
      int64_t c = first % C, h = first / C;
      scalar_t* y_ptr = y + conv.output_offset(b, c, h, 0);
      const int64_t row = update_state_row(p, state_indices, b);
      if (row < 0) {  // a skipped entry: zero outputs, its state untouched
        for (int64_t j = first; j < last; ++j, y_ptr += H) {
          *y_ptr = scalar_t(0);
          if (++c == C) c = 0, y_ptr += 1 - C * H;
        }
        continue;
      }
      const int64_t start = update_state_start(cache_seqlens, b, S);
      for (int64_t k = 0; k + 1 < K; ++k)  // tap k reads offset -(K-1-k)*d
        taps[k] = update_state_position(start, -(K - 1 - k) * conv.dilation, S) * ss;
      const int64_t stored = circular ? start * ss : 0;  // circular: where the new input goes
      const scalar_t* x_ptr = x + conv.in_offset(b, c, h, 0);
      scalar_t* s_ptr = state + p.state_row_offset(row, c, h);
      const scalar_t* w_ptr = weight + conv.weight_offset(h, c, 0, 0);
      const scalar_t* b_ptr = bias ? bias + conv.bias_offset(h, c) : nullptr;
      // shifted, dilation 1, a state of K - 1: the taps read the whole row,
      // whose values, moved by one, are its update (no copy loop a call each)
      const bool whole_row = kK > 0 && !circular && S == K - 1 && conv.dilation == 1;
      if constexpr (kK > 0 && std::is_same_v<scalar_t, acc_t>) {
        // one channel (the walk goes over rows) or one row (over channels),
        // with x and the state rows packed along it: one unit-step run
        const int64_t x_walk = C == 1 ? conv.in_stride_h : (H == 1 ? conv.in_stride_c : 0);
        const int64_t s_walk = C == 1 ? p.state_stride_h : (H == 1 ? p.state_stride_c : 0);
        if (whole_row && x_walk == 1 && s_walk == K - 1 && ss == 1) {
          if constexpr (std::is_same_v<scalar_t, float>) {
            if (vector_run) {
              vector_run(last - first, x_ptr, s_ptr, w_ptr, b_ptr, y_ptr);
              continue;
            }
          }
          if (b_ptr) {
            update_depthwise_unit_run<kK, true>(last - first, x_ptr, s_ptr, w_ptr, b_ptr, y_ptr);
          } else {
            update_depthwise_unit_run<kK, false>(last - first, x_ptr, s_ptr, w_ptr, b_ptr, y_ptr);
          }
          continue;
        }
      }
      for (int64_t j = first; j < last; ++j) {
        acc_t acc = b_ptr ? static_cast<acc_t>(*b_ptr++) : acc_t(0);
        if constexpr (kK > 0) {
          if (whole_row) {
            scalar_t v[kK];
            for (int k = 0; k + 1 < kK; ++k) v[k] = s_ptr[k * ss];
            v[kK - 1] = *x_ptr;
            for (int k = 0; k < kK; ++k) acc += static_cast<acc_t>(w_ptr[k]) * static_cast<acc_t>(v[k]);
            for (int k = 0; k + 1 < kK; ++k) s_ptr[k * ss] = v[k + 1];
          }
        }
        if (!whole_row) {
          for (int64_t k = 0; k + 1 < K; ++k)
            acc += static_cast<acc_t>(w_ptr[k]) * static_cast<acc_t>(s_ptr[taps[k]]);
          acc += static_cast<acc_t>(w_ptr[K - 1]) * static_cast<acc_t>(*x_ptr);
          if (circular) {
            s_ptr[stored] = *x_ptr;
          } else if (S > 0) {  // shifted: position i takes position i + 1, the last the new input
            for (int64_t i = 0; i + 1 < S; ++i) s_ptr[i * ss] = s_ptr[(i + 1) * ss];
            s_ptr[(S - 1) * ss] = *x_ptr;
          }
        }
        *y_ptr = static_cast<scalar_t>(acc);
        w_ptr += K;  // weight (H, C, 1, K) and bias (H, C): (row, channel) in order
        x_ptr += conv.in_stride_c, s_ptr += p.state_stride_c, y_ptr += H;
        if (++c == C) {
          c = 0;
          x_ptr += conv.in_stride_h - C * conv.in_stride_c;
          s_ptr += p.state_stride_h - C * p.state_stride_c;
          y_ptr += 1 - C * H;
        }
      }
    }
  });
}

// The usual decode step (one step, a shifted state of exactly K - 1 held
// inputs, dilation 1): a batch entry's window, per channel its state row then
// the new input (Cin_g rows of K, like a weight row), and the state rows'
// update, that window from its second element. kK: K at compile time for the
// common widths (0: run time), so the copies of K - 1 elements are unrolled.
template <int kK, typename scalar_t, typename acc_t>
inline void pack_state_row_windows(int64_t cin_g, int64_t K, const scalar_t* x_row, int64_t x_stride_c,
                                   const scalar_t* s_row, int64_t s_stride_c, int64_t ss, acc_t* col) {
  const int64_t k_n = kK > 0 ? kK : K;
  if constexpr (kK > 0 && std::is_same_v<scalar_t, acc_t>) {
    if (ss == 1) {  // contiguous held inputs: a copy of fixed size, a vector move
      for (int64_t ci = 0; ci < cin_g; ++ci, col += kK, x_row += x_stride_c, s_row += s_stride_c) {
        std::memcpy(col, s_row, (kK - 1) * sizeof(acc_t));
        col[kK - 1] = x_row[0];
      }
      return;
    }
  }
  for (int64_t ci = 0; ci < cin_g; ++ci, col += k_n, x_row += x_stride_c, s_row += s_stride_c) {
    for (int64_t k = 0; k + 1 < k_n; ++k) col[k] = static_cast<acc_t>(s_row[k * ss]);
    col[k_n - 1] = static_cast<acc_t>(x_row[0]);
  }
}

template <int kK, typename scalar_t, typename acc_t>
inline void store_state_rows_from_windows(int64_t cin_g, int64_t K, const acc_t* col, scalar_t* s_row,
                                          int64_t s_stride_c, int64_t ss) {
  const int64_t k_n = kK > 0 ? kK : K;
  if constexpr (kK > 0 && std::is_same_v<scalar_t, acc_t>) {
    if (ss == 1) {
      for (int64_t ci = 0; ci < cin_g; ++ci, col += kK, s_row += s_stride_c)
        std::memcpy(s_row, col + 1, (kK - 1) * sizeof(acc_t));
      return;
    }
  }
  for (int64_t ci = 0; ci < cin_g; ++ci, col += k_n, s_row += s_stride_c)
    for (int64_t k = 0; k + 1 < k_n; ++k) s_row[k * ss] = static_cast<scalar_t>(col[k + 1]);
}

// Both at once, for held inputs contiguous and in the accumulation type:
// each state row's values loaded once and kept in registers, stored into
// the window and, moved by one, back into the state row (where a second
// pass, store_state_rows_from_windows from the window's second element,
// would load across the window's two stores and wait for them).
template <int kK, typename T>
inline void pack_windows_and_shift_state_rows(int64_t cin_g, const T* x_row, int64_t x_stride_c, T* s_row,
                                              int64_t s_stride_c, T* col) {
  for (int64_t ci = 0; ci < cin_g; ++ci, col += kK, x_row += x_stride_c, s_row += s_stride_c) {
    T v[kK];
    for (int k = 0; k + 1 < kK; ++k) v[k] = s_row[k];
    v[kK - 1] = x_row[0];
    for (int k = 0; k < kK; ++k) col[k] = v[k];
    for (int k = 0; k + 1 < kK; ++k) s_row[k] = v[k + 1];
  }
}

// f(std::integral_constant<int, K>) for the widths compiled in (2..5), else
// f(std::integral_constant<int, 0>) (K at run time).
template <typename F>
inline void with_update_width(int64_t K, F&& f) {
  switch (K) {
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

// Channel mixing needs this many terms an output for the packed forms to pay.
constexpr int64_t kUpdateDotMinTaps = 8;

// A decode step of the channel-mixing form runs on one thread below this
// much work: its multiply-adds plus kUpdatePackCost for each packed window
// element and output. Zen 5, 2 threads, one thread's time over two's:
// (2,64,1) K 5 0.75x, (4,64,1) 0.80x, (2,32,8) K 4 0.86x; the crossing
// near (8,64,1) K 5 (170 K); forum (32,15,4) K 3 (147 K) is 1.15x slower
// on one, (32,15,2) K 3 (74 K) 1.04x.
constexpr int64_t kUpdatePackCost = 8, kUpdateMinParallelWork = 96 * 1024;

// How the channel-mixing form splits the work: items of (block of batch
// entries, group, tile of rows), tiles fastest. Batch entries a block: about
// 256 columns, at most 64 KiB of them (a row's product keeps them in L1).
// While the weights fit in a core's L2 (256 KiB of it), at least one block
// a thread: threads own batch entries, not rows, whose outputs and state
// rows share cache lines (written by two threads, each store of one waited
// for the other's). Larger weights are streamed from L3 at every step, by
// every thread that needs them; they still own entries where each has at
// least 4 steps (entries x T) to use a weight line on, and own rows (a
// thread streams its rows' weights only) where fewer, or fewer entries than
// threads (Zen 4, 2 threads, rows -> entries: (8,64,16) K 5 0.96x the time
// with both vCPUs on one CCD, 0.70x on two (a cache line's round trip 340
// ns, not 80: the shared y lines); (4,64,16) K 5 T 2 0.78x; at 1-3 steps
// a thread entries took 1.11-1.6x); but where the tiles' state rows
// (`state_row_bytes` apart) would share cache lines, threads own entries
// after all (Zen 5, (8,64,16), 2 threads: K 4 0.81x the time, K 2 0.41x).
// Rows a tile: the tile's columns stay in L2 (256 KiB). Where large weights still leave fewer items than
// threads (one row, few entries), the output channels are also split into
// `out_parts` parts of `part_len` (a multiple of out_unit; out_unit 0: no
// split).
struct UpdateBlocking {
  int64_t threads, per_block, blocks, tile, tiles, items, out_parts = 1, part_len;
  UpdateBlocking(const RowConvParams& conv, int64_t column_bytes, int64_t weight_bytes, int64_t state_row_bytes,
                 int64_t out_unit = 0) {
    // one thread for a small step: its blocks then serve all its entries
    // (with two, (2,64,1) K 5 read the weights once an entry) and no parallel
    // region starts
    const int64_t R = conv.in_per_group * conv.kernel_size, T = conv.width;
    const int64_t outputs = conv.batch * conv.rows * conv.out_channels * T;
    const int64_t work = outputs * R + kUpdatePackCost * (conv.batch * conv.rows * conv.groups * T * R + outputs);
    threads = work < kUpdateMinParallelWork ? 1 : at::get_num_threads();
    const int64_t per_thread = (conv.batch + threads - 1) / threads;
    const bool own_rows = weight_bytes > (int64_t{1} << 18) && per_thread * T < 4;
    split_entries(conv, column_bytes, own_rows ? conv.batch : per_thread, threads);
    if (own_rows && tiles > 1 && (tile * state_row_bytes) % 64 != 0 && conv.batch >= threads)
      split_entries(conv, column_bytes, per_thread, threads);
    items = blocks * conv.groups * tiles;
    const int64_t cout_g = conv.out_per_group;
    part_len = cout_g;
    if (out_unit > 0 && weight_bytes > (int64_t{1} << 18) && items < threads && cout_g > out_unit) {
      const int64_t want = (threads + items - 1) / items;
      part_len = ((cout_g + want - 1) / want + out_unit - 1) / out_unit * out_unit;
      out_parts = (cout_g + part_len - 1) / part_len;
    }
  }
  // blocks of at most `split` entries, then tiles of rows
  void split_entries(const RowConvParams& conv, int64_t column_bytes, int64_t split, int64_t threads) {
    const int64_t T = conv.width, H = conv.rows;
    per_block = std::clamp<int64_t>(
        std::min({int64_t{256} / T, (int64_t{1} << 16) / (column_bytes * T), split}), 1, conv.batch);
    blocks = (conv.batch + per_block - 1) / per_block;
    const int64_t row_parts = blocks >= threads ? 1 : (threads + blocks - 1) / blocks;
    tile = std::clamp<int64_t>((int64_t{1} << 18) / (column_bytes * T * per_block), 1, (H + row_parts - 1) / row_parts);
    tiles = (H + tile - 1) / tile;
  }
  // the item's batch entries [b0, b1), group and rows [h0, h1)
  void unpack(const RowConvParams& conv, int64_t item, int64_t& b0, int64_t& b1, int64_t& g, int64_t& h0,
              int64_t& h1) const {
    h0 = item % tiles * tile, h1 = std::min(conv.rows, h0 + tile);
    g = item / tiles % conv.groups;
    b0 = item / tiles / conv.groups * per_block, b1 = std::min(conv.batch, b0 + per_block);
  }
};

// The batch entries of [b0, b1) with a state row, their rows and buffer
// starts; a skipped entry gets zero outputs (its state untouched) for the
// group's channels [m0, m1) and the rows [h0, h1). Returns how many.
template <typename scalar_t>
inline int64_t collect_update_entries(const RowConvUpdateParams& p, const int64_t* cache_seqlens,
                                      const int64_t* state_indices, int64_t b0, int64_t b1, int64_t g, int64_t h0,
                                      int64_t h1, int64_t m0, int64_t m1, scalar_t* y, int64_t* entries,
                                      int64_t* rows, int64_t* starts) {
  const RowConvParams& conv = p.conv;
  int64_t n = 0;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t row = update_state_row(p, state_indices, b);
    if (row < 0) {
      for (int64_t co = g * conv.out_per_group + m0; co < g * conv.out_per_group + m1; ++co)
        for (int64_t h = h0; h < h1; ++h) std::fill_n(y + conv.output_offset(b, co, h, 0), conv.width, scalar_t(0));
      continue;
    }
    entries[n] = b, rows[n] = row, starts[n] = update_state_start(cache_seqlens, b, p.state_len);
    ++n;
  }
  return n;
}

// w_rows[m] (m0 <= m < m1): row h's weights of output channel g * Cout_g + m,
// (Cin_g, K), in place where they are in the accumulation type and `read`
// elements from their start stay inside the weight tensor; else converted
// into buf (rows of ld).
template <typename scalar_t, typename acc_t>
inline void update_weight_rows(const RowConvParams& conv, const scalar_t* weight, int64_t h, int64_t g,
                               int64_t m0, int64_t m1, int64_t read, acc_t* buf, int64_t ld,
                               const acc_t** w_rows) {
  const int64_t R = conv.in_per_group * conv.kernel_size, numel = conv.rows * conv.out_channels * R;
  for (int64_t m = m0; m < m1; ++m) {
    const int64_t offset = conv.weight_offset(h, g * conv.out_per_group + m, 0, 0);
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      if (offset + read <= numel) {
        w_rows[m] = weight + offset;
        continue;
      }
    }
    acc_t* dst = buf + m * ld;
    for (int64_t r = 0; r < R; ++r) dst[r] = static_cast<acc_t>(weight[offset + r]);
    w_rows[m] = dst;
  }
}

// One step's window of a batch entry (state row `row`, buffer start `start`)
// and the group's channels in row h, (Cin_g, K), element r at col[r];
// `taps[k]`: where tap k < K-1 reads in every channel's state row (the
// shifted window of exactly the history when window_is_state_row).
template <typename scalar_t, typename acc_t>
inline void pack_step_window(const RowConvUpdateParams& p, const scalar_t* x, const scalar_t* state,
                             int64_t b, int64_t row, int64_t g, int64_t h, bool window_is_state_row,
                             const int64_t* taps, acc_t* col) {
  const RowConvParams& conv = p.conv;
  const int64_t cin_g = conv.in_per_group, K = conv.kernel_size, ss = p.state_stride_s;
  for (int64_t ci = 0; ci < cin_g; ++ci, col += K) {
    const scalar_t* x_row = x + conv.in_offset(b, g * cin_g + ci, h, 0);
    const scalar_t* s_row = state + p.state_row_offset(row, g * cin_g + ci, h);
    for (int64_t k = 0; k + 1 < K; ++k)
      col[k] = static_cast<acc_t>(s_row[window_is_state_row ? k * ss : taps[k]]);
    col[K - 1] = static_cast<acc_t>(x_row[0]);
  }
}

// The new inputs of a batch entry and the group's channels in row h into
// their state rows (after every read of them).
template <typename scalar_t>
inline void store_step_inputs(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state, int64_t b,
                              int64_t row, int64_t g, int64_t h, bool circular, int64_t start) {
  const RowConvParams& conv = p.conv;
  for (int64_t c = g * conv.in_per_group; c < (g + 1) * conv.in_per_group; ++c)
    store_new_inputs(p, x + conv.in_offset(b, c, h, 0), state + p.state_row_offset(row, c, h), circular, start);
}

// tap k < K-1 of one step reads a held input at the same place in every
// channel's state row: taps[k], for the buffer start `start`
inline void step_tap_offsets(const RowConvUpdateParams& p, int64_t start, int64_t* taps) {
  const int64_t K = p.conv.kernel_size;
  for (int64_t k = 0; k + 1 < K; ++k)
    taps[k] = update_state_position(start, -(K - 1 - k) * p.conv.dilation, p.state_len) * p.state_stride_s;
}

// Channel mixing, few batch entries a step or many steps: per item (see
// UpdateBlocking), the window of each (b, h, t), (Cin_g, K) like a weight
// row, packed as a row of `cols` (a column of row h's product); every output
// the dot product of a weight row and a column, its lanes summed in a fixed
// order (so results do not depend on the blocks, the tiles or the thread
// count). A tile's phases each walk the block's x, state and y in memory
// order (rows are their second-innermost dimension): pack every row's
// columns, update the state rows, one product a row (its weights streamed
// through once), write the outputs. With the output channels split
// (blocking.out_parts > 1), each part packs the windows itself and the state
// rows are updated after every part has read them, in a second pass.
template <typename scalar_t>
void update_by_dot_rows(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
                        const scalar_t* weight, const scalar_t* bias, const int64_t* cache_seqlens,
                        const int64_t* state_indices, scalar_t* y, const UpdateBlocking& blocking) {
  using acc_t = at::opmath_type<scalar_t>;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const RowConvParams& conv = p.conv;
  const int64_t cin_g = conv.in_per_group, cout_g = conv.out_per_group, K = conv.kernel_size;
  const int64_t T = conv.width, S = p.state_len, R = cin_g * K, d = conv.dilation;
  const int64_t ld = (R + mk.lanes - 1) / mk.lanes * mk.lanes;  // packed rows: whole vectors
  const int64_t s_stride_c = p.state_stride_c, x_stride_c = conv.in_stride_c, ss = p.state_stride_s;
  const bool circular = cache_seqlens != nullptr;
  const bool window_is_state_row = T == 1 && !circular && S == K - 1 && d == 1;
  const bool usual_step = window_is_state_row && p.channel_parts == 1;
  const int64_t count_max = blocking.per_block * T, tile = blocking.tile;
  // rows' columns an odd number of cache lines apart: a row group's windows
  // (pack_step_windows_rows), one store a row, then fall into different
  // sets of L1 (rows 4 KiB apart: (64,8,64) K 3's step 1.67x slower)
  const int64_t h_stride = (count_max * ld + kLineElements<acc_t> - 1) / kLineElements<acc_t> / 2 * 2 *
                               kLineElements<acc_t> + kLineElements<acc_t>;
  const int64_t parts = blocking.out_parts, part_len = blocking.part_len;
  // one pass reads each state row into the window and shifts it: one part
  // (no other part reads the rows after), the common widths, float types
  const bool packs_and_shifts = usual_step && parts == 1 && ss == 1 && K >= 2 && K <= 5 &&
                                std::is_same_v<scalar_t, acc_t>;
  // AVX-512's packing for the usual step (float, K 3 and 5; null otherwise)
  const PackStepWindows vector_pack = std::is_same_v<scalar_t, float> ? pack_step_windows(K) : nullptr;
  // and over a group of neighbouring rows at once (rows contiguous in x and
  // the state), where a tile has that many rows, and where the group's held
  // inputs are whole cache lines or no other item shares the rows' lines
  // (K = 4: the wide step 1.16x slower with rows split between threads)
  const PackStepWindowsRows rows_pack = std::is_same_v<scalar_t, float> && packs_and_shifts &&
                                                conv.in_stride_h == 1 && p.state_stride_h == K - 1
                                            ? pack_step_windows_rows(K)
                                            : PackStepWindowsRows{nullptr, 0};
  const bool packs_rows = rows_pack.pack && std::min(tile, conv.rows) >= rows_pack.group &&
                          (rows_pack.group * (K - 1) == 16 || blocking.tiles == 1);
  const int64_t work = std::max<int64_t>(1, (part_len + 1) * R * count_max * tile);  // Cout may be 0
  const int64_t grain = blocking.threads == 1 ? blocking.items * parts : std::max<int64_t>(1, 32768 / work);
  at::parallel_for(0, blocking.items * parts, grain, [&](int64_t begin, int64_t end) {
    // left uninitialised: dot_rows masks the terms past R out of its reads
    // (a select, so junk there does not matter)
    // the columns on 64-byte lines: their whole-vector loads then never split
    // a line (2-5% of the wide decode step, Zen 3)
    std::unique_ptr<acc_t[]> w_rows_buf(new acc_t[cout_g * ld]);
    std::unique_ptr<acc_t[]> cols_room(new acc_t[tile * h_stride + kLineElements<acc_t>]);
    acc_t* const cols_buf = cols_room.get() + elements_to_next_line(cols_room.get());
    std::unique_ptr<acc_t[]> out(new acc_t[tile * cout_g * count_max]);  // every entry used is written
    std::vector<const acc_t*> w_rows(cout_g), cols(count_max);
    std::vector<acc_t> bias_rows(bias && T == 1 ? cout_g * tile : 0);
    std::vector<int64_t> entries(blocking.per_block), rows(blocking.per_block), starts(blocking.per_block), taps(K);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t item = i / parts, m0 = i % parts * part_len, m1 = std::min(cout_g, m0 + part_len);
      int64_t b0, b1, g, h0, h1;
      blocking.unpack(conv, item, b0, b1, g, h0, h1);
      const int64_t n = collect_update_entries(p, cache_seqlens, state_indices, b0, b1, g, h0, h1, m0, m1, y,
                                               entries.data(), rows.data(), starts.data());
      if (n == 0) continue;
      const int64_t count = n * T, nh = h1 - h0;
      // every read of the state rows before any write: row h's columns at
      // cols_buf[(h - h0) * h_stride], entry e's at e * T * ld in them
      for (int64_t e = 0; e < n; ++e) {
        int64_t h_first = h0;  // rows from here on: one at a time
        if (packs_rows) {  // (only for float) groups of rows, then the rest as below
          h_first += nh / rows_pack.group * rows_pack.group;
          if constexpr (std::is_same_v<scalar_t, float>)
            rows_pack.pack(cin_g, h_first - h0, x + conv.in_offset(entries[e], g * cin_g, h0, 0), x_stride_c,
                           state + p.state_row_offset(rows[e], g * cin_g, h0), s_stride_c, cols_buf + e * ld,
                           h_stride);
        }
        if (T == 1) step_tap_offsets(p, starts[e], taps.data());
        for (int64_t h = h_first; h < h1; ++h) {
          acc_t* col = cols_buf + (h - h0) * h_stride + e * T * ld;
          if (packs_and_shifts) {
            const scalar_t* x_row = x + conv.in_offset(entries[e], g * cin_g, h, 0);
            scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g, h);
            if (vector_pack) {  // (null but for float)
              if constexpr (std::is_same_v<scalar_t, float>)
                vector_pack(cin_g, x_row, x_stride_c, s_row, s_stride_c, col);
            } else {
              with_update_width(K, [&](auto width) {
                if constexpr (width() > 0 && std::is_same_v<scalar_t, acc_t>)
                  pack_windows_and_shift_state_rows<width()>(cin_g, x_row, x_stride_c, s_row, s_stride_c, col);
              });
            }
          } else if (usual_step) {  // without the branches of the general form
            const scalar_t* x_row = x + conv.in_offset(entries[e], g * cin_g, h, 0);
            const scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g, h);
            with_update_width(K, [&](auto width) {
              pack_state_row_windows<width()>(cin_g, K, x_row, x_stride_c, s_row, s_stride_c, ss, col);
            });
          } else if (T == 1) {
            pack_step_window(p, x, state, entries[e], rows[e], g, h, window_is_state_row, taps.data(), col);
          } else {
            for (int64_t ci = 0; ci < cin_g; ++ci, col += K) {
              const scalar_t* x_row = x + conv.in_offset(entries[e], g * cin_g + ci, h, 0);
              const scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g + ci, h);
              acc_t* c = col;
              for (int64_t t = 0; t < T; ++t, c += ld)
                for (int64_t k = 0; k < K; ++k)
                  c[k] = static_cast<acc_t>(update_input(p, x_row, s_row, starts[e], t - (K - 1 - k) * d));
            }
          }
        }
      }
      for (int64_t e = 0; e < n && parts == 1 && !packs_and_shifts; ++e) {
        for (int64_t h = h0; h < h1; ++h) {
          if (usual_step) {  // the column from its second element
            scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g, h);
            const acc_t* col = cols_buf + (h - h0) * h_stride + e * ld;
            with_update_width(K, [&](auto width) {
              store_state_rows_from_windows<width()>(cin_g, K, col, s_row, s_stride_c, ss);
            });
            continue;
          }
          store_step_inputs(p, x, state, entries[e], rows[e], g, h, circular, starts[e]);
        }
      }
      for (int64_t h = h0; h < h1; ++h) {
        update_weight_rows(conv, weight, h, g, m0, m1, ld, w_rows_buf.get(), ld, w_rows.data());
        const acc_t* h_cols = cols_buf + (h - h0) * h_stride;
        for (int64_t j = 0; j < count; ++j) cols[j] = h_cols + j * ld;
        // sums as (channel, entry, row) for one step, the rows of a y row
        // together; else as (row, channel, column)
        const int64_t column_stride = T == 1 ? nh : 1, channel_stride = count * column_stride;
        acc_t* const sums = out.get() + (T == 1 ? m0 * channel_stride + (h - h0) : ((h - h0) * cout_g + m0) * count);
        mk.dot_rows_sums(m1 - m0, count, R, w_rows.data() + m0, cols.data(), sums, channel_stride, column_stride);
      }
      // y is contiguous: (b, co, h, t) with h then t innermost, so each
      // (entry, channel) writes nh * T consecutive outputs
      if (T == 1) {  // the decode step: the bias as (channel, row), the outputs whole runs
        for (int64_t m = m0; m < m1 && bias; ++m)
          for (int64_t i = 0; i < nh; ++i)
            bias_rows[m * nh + i] = static_cast<acc_t>(bias[conv.bias_offset(h0 + i, g * cout_g + m)]);
        for (int64_t e = 0; e < n; ++e) {
          for (int64_t m = m0; m < m1; ++m) {
            scalar_t* y_row = y + conv.output_offset(entries[e], g * cout_g + m, h0, 0);
            const acc_t* o = out.get() + (m * count + e) * nh;
            if (bias) {
              const acc_t* b_row = bias_rows.data() + m * nh;
              for (int64_t i = 0; i < nh; ++i) y_row[i] = static_cast<scalar_t>(b_row[i] + o[i]);
            } else {
              for (int64_t i = 0; i < nh; ++i) y_row[i] = static_cast<scalar_t>(o[i]);
            }
          }
        }
        continue;
      }
      for (int64_t e = 0; e < n; ++e) {
        for (int64_t m = m0; m < m1; ++m) {
          const int64_t co = g * cout_g + m;
          scalar_t* y_row = y + conv.output_offset(entries[e], co, h0, 0);
          const acc_t* o = out.get() + m * count + e * T;
          const scalar_t* b_row = bias ? bias + conv.bias_offset(h0, co) : nullptr;
          const int64_t b_stride = conv.out_channels, o_stride = cout_g * count;
          for (int64_t i = 0; i < nh; ++i, y_row += T, o += o_stride) {
            const acc_t b0v = b_row ? static_cast<acc_t>(b_row[i * b_stride]) : acc_t(0);
            for (int64_t t = 0; t < T; ++t) y_row[t] = static_cast<scalar_t>(b0v + o[t]);
          }
        }
      }
    }
  });
  if (parts == 1) return;
  // every part has read the windows: the state rows take the new inputs
  at::parallel_for(0, blocking.items, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> entries(blocking.per_block), rows(blocking.per_block), starts(blocking.per_block);
    for (int64_t item = begin; item < end; ++item) {
      int64_t b0, b1, g, h0, h1;
      blocking.unpack(conv, item, b0, b1, g, h0, h1);
      const int64_t n = collect_update_entries(p, cache_seqlens, state_indices, b0, b1, g, h0, h1, 0, 0, y,
                                               entries.data(), rows.data(), starts.data());
      for (int64_t e = 0; e < n; ++e)
        for (int64_t h = h0; h < h1; ++h)
          store_step_inputs(p, x, state, entries[e], rows[e], g, h, circular, starts[e]);
    }
  });
}

template <typename scalar_t>
void row_conv1d_update(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
                       const scalar_t* weight, const scalar_t* bias, const int64_t* cache_seqlens,
                       const int64_t* state_indices, scalar_t* y) {
  const RowConvParams& conv = p.conv;
  if (conv.width == 1 && conv.in_per_group == 1 && conv.out_per_group == 1 && p.channel_parts == 1) {
    switch (conv.kernel_size) {  // the common widths unrolled
      case 2: return update_depthwise_step<2>(p, x, state, weight, bias, cache_seqlens, state_indices, y);
      case 3: return update_depthwise_step<3>(p, x, state, weight, bias, cache_seqlens, state_indices, y);
      case 4: return update_depthwise_step<4>(p, x, state, weight, bias, cache_seqlens, state_indices, y);
      default: return update_depthwise_step<0>(p, x, state, weight, bias, cache_seqlens, state_indices, y);
    }
  }
  const int64_t R = conv.in_per_group * conv.kernel_size;
  if (R >= kUpdateDotMinTaps) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t lanes = micro_kernels<acc_t>().lanes;
    const int64_t ld = (R + lanes - 1) / lanes * lanes;
    const int64_t acc_bytes = sizeof(acc_t), weight_bytes = conv.rows * conv.out_channels * R * acc_bytes;
    const UpdateBlocking blocking(conv, ld * acc_bytes, weight_bytes, p.state_stride_h * int64_t{sizeof(scalar_t)},
                                  micro_kernels<acc_t>().dot_rows_block);
    return update_by_dot_rows(p, x, state, weight, bias, cache_seqlens, state_indices, y, blocking);
  }
  update_per_item(p, x, state, weight, bias, cache_seqlens, state_indices, y);
}

}  // namespace rowconv::cpu
