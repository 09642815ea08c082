// The decode step row_conv1d_update: its geometry and the state index rules
// that every backend (CPU, CUDA, CUDA emulated on the CPU) shares.
//
//   x          (B, Cin, H, T)        the T newest inputs, any strides
//   conv_state (pool, Cin, H, S)     any strides, updated in place
//   weight     (H, Cout, Cin_g, K)   contiguous;  bias (H, Cout) contiguous
//   y          (B, Cout, H, T)       contiguous
//
// Batch entry b reads and writes row state_row(b) of the pool (b itself
// without state_indices; a negative index skips the entry). Relative to the
// first new input, offset r >= 0 is x[r] and r < 0 (r >= -S) is a held
// input, at buffer position floor_mod(start + r, S), where start is
// cache_seqlens[b] for a circular buffer and 0 for the shifted one (oldest
// first: the newest held input at S - 1). Output t reads offsets
// t - (K - 1 - k) * dilation, k = 0 .. K-1; S >= dilation * (K - 1) keeps
// them inside the buffer.
// The update: circular, x[r] goes to position floor_mod(start + r, S) for the
// last min(T, S) inputs; shifted, position j gets offset j + T - S (a held
// input, at position j + T, or a new one). Kernels read every held input
// they need before writing any (T > S, and a circular buffer wraps).
#pragma once

#include <cstdint>

#include "row_conv1d_params.h"

namespace rowconv {

struct RowConvUpdateParams {
  // x, weight, bias and y as a causal row convolution of the T new steps
  // (width = out_width = T, stride 1, pad_left = the history it reaches
  // back to), whose padding is read from the state instead of zeros: its
  // input_position(t, k) is the offset output t reads through tap k.
  RowConvParams conv;
  int64_t state_len, pool_size;
  // 1, or 2 when complex tensors run as real ones (complex_as_real.h): real
  // channel c is part c % 2 of the state's channel c / 2, read in place.
  int64_t channel_parts;
  int64_t state_stride_b, state_stride_c, state_stride_part, state_stride_h, state_stride_s;

  // Offset of position 0 of state row (pool row, channel c, row h); position
  // pos is pos * state_stride_s further. No division (a decode step is short).
  ROWCONV_HOST_DEVICE int64_t state_row_offset(int64_t row, int64_t c, int64_t h) const {
    const int64_t channel = channel_parts == 1
                                ? c * state_stride_c
                                : (c >> 1) * state_stride_c + (c & 1) * state_stride_part;
    return row * state_stride_b + channel + h * state_stride_h;
  }
};

// The pool row of batch entry b; negative: skip it. A row past the pool is
// skipped too: the checks refuse such values before any kernel, except on a
// CUDA stream that a graph is capturing, where they cannot read them
// (check_update), and then the kernel must not write past the pool.
ROWCONV_HOST_DEVICE int64_t update_state_row(const RowConvUpdateParams& p, const int64_t* state_indices,
                                             int64_t b) {
  const int64_t row = state_indices != nullptr ? state_indices[b] : b;
  return row < p.pool_size ? row : -1;
}

// Buffer position of offset 0 (the first new input), in [0, S):
// cache_seqlens[b] % S for a circular buffer, 0 (= S mod S) for the shifted one.
ROWCONV_HOST_DEVICE int64_t update_state_start(const int64_t* cache_seqlens, int64_t b,
                                               int64_t state_len) {
  return cache_seqlens != nullptr ? floor_mod(cache_seqlens[b], state_len) : 0;
}

// Buffer position of offset r (a held input: -S <= r < 0; or, circular, a
// new input r >= 0 being stored), for start in [0, S): floor_mod(start + r, S),
// without a division in the usual range.
ROWCONV_HOST_DEVICE int64_t update_state_position(int64_t start, int64_t r, int64_t state_len) {
  const int64_t q = start + r;
  return q < 0 ? q + state_len
               : q < state_len ? q : q < 2 * state_len ? q - state_len : floor_mod(q, state_len);
}

// Shifted buffer: the offset that position j holds after the update (< 0:
// the held input now at position j + T, which is read before it is written
// when positions are updated in increasing order).
ROWCONV_HOST_DEVICE int64_t shifted_state_source(int64_t j, int64_t steps, int64_t state_len) {
  return j + steps - state_len;
}

// Circular buffer: the first new input stored (the last min(T, S) are).
ROWCONV_HOST_DEVICE int64_t circular_first_stored(int64_t steps, int64_t state_len) {
  return steps > state_len ? steps - state_len : 0;
}

// The input at offset r (-S <= r < T) of one (batch entry, channel, row):
// x_row = x + conv.in_offset(b, c, h, 0), state_row = state +
// state_row_offset(row, c, h), offset 0 at buffer position start.
template <typename scalar_t>
ROWCONV_HOST_DEVICE scalar_t update_input(const RowConvUpdateParams& p, const scalar_t* x_row,
                                          const scalar_t* state_row, int64_t start, int64_t r) {
  return r >= 0 ? x_row[r * p.conv.in_stride_w]
                : state_row[update_state_position(start, r, p.state_len) * p.state_stride_s];
}

// Writes the new inputs of one (batch entry, channel, row) into its state row
// (after every read of that row's held inputs): circular, the last min(T, S)
// at their positions; shifted, positions in increasing order, each from
// position j + T (not yet written) or from x.
template <typename scalar_t>
ROWCONV_HOST_DEVICE void store_new_inputs(const RowConvUpdateParams& p, const scalar_t* x_row,
                                          scalar_t* state_row, bool circular, int64_t start) {
  const int64_t T = p.conv.width, S = p.state_len, ss = p.state_stride_s, xs = p.conv.in_stride_w;
  if (circular) {
    for (int64_t r = circular_first_stored(T, S); r < T; ++r)
      state_row[update_state_position(start, r, S) * ss] = x_row[r * xs];
    return;
  }
  const int64_t kept = S > T ? S - T : 0;  // positions j < kept take held inputs (offset j + T - S < 0)
  for (int64_t j = 0; j < kept; ++j) state_row[j * ss] = state_row[(j + T) * ss];
  for (int64_t j = kept; j < S; ++j) state_row[j * ss] = x_row[shifted_state_source(j, T, S) * xs];
}

}  // namespace rowconv
