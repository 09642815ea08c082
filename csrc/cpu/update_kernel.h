// The decode step on the CPU (row_conv1d_update_params.h has the index rules):
//   y[b, co, h, t] = bias[h, co] + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * z[t - (K-1-k)*d]
// where z[r] is x[b, ci, h, r] for r >= 0 and the held input r of the state
// row for r < 0; then the state takes the new inputs. Three forms, each
// reading every held input of a state row before writing any:
//  - depthwise, one step (one input and one output channel a group, T = 1):
//    K multiply-adds a (b, channel, row), rows walked with pointer steps; one
//    channel over rows (or one row over channels) with x and the state packed
//    along the walk: a unit-step run that the compiler vectorises;
//  - channel mixing (float types, Cin_g * K >= kUpdateDotMinTaps): per (row,
//    group, block of batch entries), the window each output reads, (Cin_g, K)
//    like a weight row, packed a (b, t) column, and every output a dot
//    product of it with a weight row (dot_rows: AVX-512/AVX2 at run time);
//  - otherwise, per (b, h, group): the window copied to the stack, four
//    output channels at a time.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../row_conv1d_update_params.h"
#include "microkernels.h"

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
      const int64_t row = update_state_row(state_indices, b);
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

// The depthwise step over a run of n (row, channel) pairs laid out at unit
// steps: x and y one element each, the state K - 1 (rows exactly the held
// inputs, shifted, dilation 1), the weights K and the bias one. Written so
// that the compiler vectorises it across the run (each pair's sum in tap
// order, as the scalar form): the step streams the state, and this keeps
// many of its loads in flight.
template <int kK, bool kBias, typename T>
inline void update_depthwise_unit_run(int64_t n, const T* __restrict x, T* __restrict state,
                                      const T* __restrict w, const T* __restrict bias, T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) {
    T v[kK];
    for (int k = 0; k + 1 < kK; ++k) v[k] = state[i * (kK - 1) + k];
    v[kK - 1] = x[i];
    T acc = kBias ? bias[i] : T(0);
    for (int k = 0; k < kK; ++k) acc += w[i * kK + k] * v[k];
    for (int k = 0; k + 1 < kK; ++k) state[i * (kK - 1) + k] = v[k + 1];
    y[i] = acc;
  }
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
  at::parallel_for(0, conv.batch * per_entry, 4096, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> taps(K);  // one allocation a chunk of 4096 or more
    for (int64_t b = begin / per_entry; b * per_entry < end; ++b) {
      const int64_t first = std::max(begin - b * per_entry, int64_t{0});
      const int64_t last = std::min(end - b * per_entry, per_entry);
      int64_t c = first % C, h = first / C;
      scalar_t* y_ptr = y + conv.output_offset(b, c, h, 0);
      const int64_t row = update_state_row(state_indices, b);
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
  for (int64_t ci = 0; ci < cin_g; ++ci, col += k_n, x_row += x_stride_c, s_row += s_stride_c) {
    for (int64_t k = 0; k + 1 < k_n; ++k) col[k] = static_cast<acc_t>(s_row[k * ss]);
    col[k_n - 1] = static_cast<acc_t>(x_row[0]);
  }
}

template <int kK, typename scalar_t, typename acc_t>
inline void store_state_rows_from_windows(int64_t cin_g, int64_t K, const acc_t* col, scalar_t* s_row,
                                          int64_t s_stride_c, int64_t ss) {
  const int64_t k_n = kK > 0 ? kK : K;
  for (int64_t ci = 0; ci < cin_g; ++ci, col += k_n, s_row += s_stride_c)
    for (int64_t k = 0; k + 1 < k_n; ++k) s_row[k * ss] = static_cast<scalar_t>(col[k + 1]);
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

// Channel mixing needs this many terms an output for the packed form to pay.
constexpr int64_t kUpdateDotMinTaps = 8;

// Per (group, block of batch entries, row): the window of each (b, t), (Cin_g,
// K) like a weight row, packed as a row of `cols` (a column of the product);
// every output the dot product of a weight row and a column, its lanes summed
// in a fixed order (so results do not depend on the blocks or the thread
// count). The weight rows are read in place where they are in the
// accumulation type and dot_rows' whole-vector reads stay inside the weight
// tensor (packed otherwise). One step of a shifted state holding exactly the
// history at dilation 1 (the usual decode step): each channel's window is its
// state row then the new input, and the row's update is that window from its
// second element, written back from the packed column.
template <typename scalar_t>
void update_by_dot_rows(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
                        const scalar_t* weight, const scalar_t* bias, const int64_t* cache_seqlens,
                        const int64_t* state_indices, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const RowConvParams& conv = p.conv;
  const int64_t cin_g = conv.in_per_group, cout_g = conv.out_per_group, K = conv.kernel_size;
  const int64_t T = conv.width, S = p.state_len, R = cin_g * K, d = conv.dilation;
  const int64_t ld = (R + mk.lanes - 1) / mk.lanes * mk.lanes;  // packed rows: whole vectors
  const int64_t weight_numel = conv.rows * conv.out_channels * R, ss = p.state_stride_s;
  // strides in locals: the stores through scalar_t* below would otherwise
  // make the compiler reload them from the params at every element
  const int64_t s_stride_c = p.state_stride_c, x_stride_c = conv.in_stride_c;
  const int64_t y_stride_c = conv.rows * conv.out_width;
  const bool window_is_state_row = T == 1 && cache_seqlens == nullptr && S == K - 1 && d == 1;
  // batch entries a block: about 256 columns, at most 64 KiB of them, and at
  // least one block a thread: threads own batch entries, not rows, whose
  // outputs and state rows share cache lines (written by two threads, each
  // store of one waited for the other's)
  const int64_t per_thread = (conv.batch + at::get_num_threads() - 1) / at::get_num_threads();
  const int64_t per_block = std::clamp<int64_t>(
      std::min({int64_t{256} / T, (int64_t{1} << 16) / (ld * int64_t(sizeof(acc_t)) * T), per_thread}), 1,
      conv.batch);
  const int64_t blocks = (conv.batch + per_block - 1) / per_block;
  const int64_t items = conv.rows * conv.groups * blocks;
  const int64_t work = std::max<int64_t>(1, (cout_g + 1) * R * per_block * T);  // Cout may be 0
  at::parallel_for(0, items, std::max<int64_t>(1, 32768 / work), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> w_rows_buf(cout_g * ld, acc_t(0)), cols_buf(per_block * T * ld, acc_t(0));
    std::vector<acc_t> partials(cout_g * per_block * T * mk.lanes), out(cout_g * per_block * T);
    std::vector<const acc_t*> w_rows(cout_g), cols(per_block * T);
    std::vector<int64_t> entries(per_block), rows(per_block), starts(per_block), taps(K);
    std::vector<scalar_t*> y_rows(per_block);
    for (int64_t item = begin; item < end; ++item) {
      // rows fastest: a thread's consecutive items read and write the same
      // cache lines of x, the state and y (rows are their second-innermost
      // dimension); blocks of batch entries outermost (see per_block)
      const int64_t h = item % conv.rows, g = item / conv.rows % conv.groups, blk = item / conv.rows / conv.groups;
      const int64_t b0 = blk * per_block, b1 = std::min(conv.batch, b0 + per_block);
      int64_t n = 0;  // batch entries with a state row
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = update_state_row(state_indices, b);
        if (row < 0) {  // a skipped entry: zero outputs, its state untouched
          for (int64_t co = g * cout_g; co < (g + 1) * cout_g; ++co)
            std::fill_n(y + conv.output_offset(b, co, h, 0), T, scalar_t(0));
          continue;
        }
        entries[n] = b, rows[n] = row, starts[n] = update_state_start(cache_seqlens, b, S);
        ++n;
      }
      if (n == 0) continue;
      for (int64_t m = 0; m < cout_g; ++m) {
        const int64_t offset = conv.weight_offset(h, g * cout_g + m, 0, 0);
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (offset + ld <= weight_numel) {
            w_rows[m] = weight + offset;
            continue;
          }
        }
        acc_t* dst = w_rows_buf.data() + m * ld;
        for (int64_t r = 0; r < R; ++r) dst[r] = static_cast<acc_t>(weight[offset + r]);
        w_rows[m] = dst;
      }
      // every read of the state rows before any write
      for (int64_t e = 0; e < n; ++e) {
        if (T == 1)  // one step: tap k < K-1 reads a held input, at the same place in every channel's row
          for (int64_t k = 0; k + 1 < K; ++k)
            taps[k] = update_state_position(starts[e], -(K - 1 - k) * d, S) * ss;
        const scalar_t* x_row = x + conv.in_offset(entries[e], g * cin_g, h, 0);
        const scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g, h);
        acc_t* col = cols_buf.data() + e * T * ld;
        if (window_is_state_row && p.channel_parts == 1) {  // the usual step, without the branches below
          with_update_width(K, [&](auto width) {
            pack_state_row_windows<width()>(cin_g, K, x_row, x_stride_c, s_row, s_stride_c, ss, col);
          });
          continue;
        }
        for (int64_t ci = 0; ci < cin_g; ++ci, col += K) {
          if (ci > 0 && p.channel_parts == 1) {
            x_row += x_stride_c, s_row += s_stride_c;
          } else if (ci > 0) {  // complex as real: the state's channels alternate parts
            x_row = x + conv.in_offset(entries[e], g * cin_g + ci, h, 0);
            s_row = state + p.state_row_offset(rows[e], g * cin_g + ci, h);
          }
          if (window_is_state_row) {
            for (int64_t k = 0; k + 1 < K; ++k) col[k] = static_cast<acc_t>(s_row[k * ss]);
            col[K - 1] = static_cast<acc_t>(x_row[0]);
          } else if (T == 1) {
            for (int64_t k = 0; k + 1 < K; ++k) col[k] = static_cast<acc_t>(s_row[taps[k]]);
            col[K - 1] = static_cast<acc_t>(x_row[0]);
          } else {
            acc_t* c = col;
            for (int64_t t = 0; t < T; ++t, c += ld)
              for (int64_t k = 0; k < K; ++k)
                c[k] = static_cast<acc_t>(update_input(p, x_row, s_row, starts[e], t - (K - 1 - k) * d));
          }
        }
      }
      const int64_t count = n * T;
      for (int64_t j = 0; j < count; ++j) cols[j] = cols_buf.data() + j * ld;
      std::fill_n(partials.data(), cout_g * count * mk.lanes, acc_t(0));
      mk.dot_rows(cout_g, count, R, w_rows.data(), cols.data(), partials.data(), count);
      mk.reduce_lanes(cout_g * count, partials.data(), out.data());
      // y is contiguous: entry e's outputs of the group at y_rows[e] + m * y_stride_c + t
      for (int64_t e = 0; e < n; ++e) y_rows[e] = y + conv.output_offset(entries[e], g * cout_g, h, 0);
      for (int64_t m = 0; m < cout_g; ++m) {
        const acc_t b0v = bias ? static_cast<acc_t>(bias[conv.bias_offset(h, g * cout_g + m)]) : acc_t(0);
        const acc_t* o = out.data() + m * count;
        if (T == 1) {
          for (int64_t e = 0; e < n; ++e) y_rows[e][m * y_stride_c] = static_cast<scalar_t>(b0v + o[e]);
        } else {
          for (int64_t e = 0; e < n; ++e)
            for (int64_t t = 0; t < T; ++t)
              y_rows[e][m * y_stride_c + t] = static_cast<scalar_t>(b0v + o[e * T + t]);
        }
      }
      for (int64_t e = 0; e < n; ++e) {
        if (window_is_state_row && p.channel_parts == 1) {  // the column from its second element
          scalar_t* s_row = state + p.state_row_offset(rows[e], g * cin_g, h);
          const acc_t* col = cols_buf.data() + e * ld;
          with_update_width(K, [&](auto width) {
            store_state_rows_from_windows<width()>(cin_g, K, col, s_row, s_stride_c, ss);
          });
          continue;
        }
        for (int64_t c = g * cin_g; c < (g + 1) * cin_g; ++c)
          store_new_inputs(p, x + conv.in_offset(entries[e], c, h, 0), state + p.state_row_offset(rows[e], c, h),
                           cache_seqlens != nullptr, starts[e]);
      }
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
  if (conv.in_per_group * conv.kernel_size >= kUpdateDotMinTaps)
    return update_by_dot_rows(p, x, state, weight, bias, cache_seqlens, state_indices, y);
  update_per_item(p, x, state, weight, bias, cache_seqlens, state_indices, y);
}

}  // namespace rowconv::cpu
