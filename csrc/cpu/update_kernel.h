// The decode step on the CPU (row_conv1d_update_params.h has the index rules):
//   y[b, co, h, t] = bias[h, co] + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * z[t - (K-1-k)*d]
// where z[r] is x[b, ci, h, r] for r >= 0 and the held input r of the state
// row for r < 0; then the state takes the new inputs.
// Work item: one (b, h, group), which alone owns its state rows (the checks
// refuse two batch entries on one pool row): it copies the window of held
// and new inputs it reads into a buffer on the stack (the accumulation type),
// computes each output as a dot product of the output channel's weights with
// the inputs its taps read (laid out as the weights: at T = 1 and dilation 1
// the window itself), four output channels at a time, then writes the state,
// so every held input is read before any is overwritten. No allocation below
// 4096 window elements; items advance (b, h, group) counters instead of dividing.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../row_conv1d_update_params.h"

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

template <typename scalar_t>
void row_conv1d_update(const RowConvUpdateParams& p, const scalar_t* x, scalar_t* state,
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
  const bool one_channel_step = T == 1 && cin_g == 1 && cout_g == 1;
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
        if (one_channel_step) {  // depthwise, one step: K multiply-adds, the window not needed
          const int64_t c = g;
          const scalar_t* x_row = x + conv.in_offset(b, c, h, 0);
          scalar_t* state_row = state + p.state_row_offset(row, c, h);
          const scalar_t* w = weight + conv.weight_offset(h, c, 0, 0);
          acc_t acc = bias ? static_cast<acc_t>(bias[conv.bias_offset(h, c)]) : acc_t(0);
          for (int64_t k = 0; k + 1 < K; ++k)  // tap k reads held offset -(K-1-k)*d: window index k*d
            acc += static_cast<acc_t>(w[k]) * static_cast<acc_t>(state_row[held[k * conv.dilation]]);
          acc += static_cast<acc_t>(w[K - 1]) * static_cast<acc_t>(x_row[0]);
          y[conv.output_offset(b, c, h, 0)] = static_cast<scalar_t>(acc);
          store_new_inputs(p, x_row, state_row, cache_seqlens != nullptr, start);
        } else {
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
      }
      if (++g == conv.groups) {
        g = 0;
        if (++h == conv.rows) h = 0, ++b;
      }
    }
  });
}

}  // namespace rowconv::cpu
