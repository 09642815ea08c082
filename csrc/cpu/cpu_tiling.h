// Tiling and input gathering shared by the CPU kernels.
//
// Every kernel works on tiles of positions of one (b, h, group): it loads the
// windows the tile reads (converted to the accumulation type, zero where they
// hang over the padding: no padded copy of the input is made) and hands the
// micro-kernels row pointers into them. Each output element is owned by one
// work item and reduced in an order fixed by the shape alone, so results do
// not depend on the number of threads.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../row_conv1d_params.h"
#include "microkernels.h"

namespace rowconv::cpu {

// Tile width (a multiple of 64) such that `channels` rows of it stay around
// 128 KiB, and no wider than `length` rounded up.
inline int64_t tile_width(int64_t channels, int64_t length) {
  const int64_t target = 32768 / std::max<int64_t>(channels, 1);
  const int64_t tile = std::clamp<int64_t>(target, 64, 1024) / 64 * 64;
  return std::min(tile, std::max<int64_t>((length + 63) / 64 * 64, 64));
}

inline int64_t tile_count(int64_t length, int64_t tile) { return (length + tile - 1) / tile; }

// Smallest number of work items worth handing to a thread, given the
// multiply-adds of one item, so that tiny problems stay on one thread.
inline int64_t grain_for(int64_t madds_per_item) {
  constexpr int64_t kMinMaddsPerThread = 32768;  // a few microseconds of work
  return std::max<int64_t>(1, kMinMaddsPerThread / std::max<int64_t>(madds_per_item, 1));
}

// dst[u] = row[(start + u) * step] for u in [0, span), zero where start + u
// falls outside [0, length): the window of a row of x or grad_out, converted
// to the accumulation type.
template <typename scalar_t, typename acc_t>
void load_window(const scalar_t* row, int64_t length, int64_t step, int64_t start, int64_t span,
                 acc_t* dst) {
  const int64_t lo = std::clamp<int64_t>(-start, 0, span);
  const int64_t hi = std::clamp<int64_t>(length - start, lo, span);
  std::fill(dst, dst + lo, acc_t(0));
  const scalar_t* src = row + (start + lo) * step;
  acc_t* out = dst + lo;
  if (step == 1) {  // the common case, split out so that it vectorises
    for (int64_t u = 0; u < hi - lo; ++u) out[u] = static_cast<acc_t>(src[u]);
  } else {
    for (int64_t u = 0; u < hi - lo; ++u) out[u] = static_cast<acc_t>(src[u * step]);
  }
  std::fill(dst + hi, dst + span, acc_t(0));
}

// The input that output positions [t0, t0 + n) of one (b, h, group) read, as
// Cin_g * K rows contiguous in t (an im2col matrix that is never built):
//   rows[ci * K + k][t] = x[b, g * Cin_g + ci, h, (t0 + t) * stride - pad_left + k * dilation].
// Rows are shifted views of one window per channel; with stride > 1 the
// window is split into `stride` phases (phase q holds window[q + stride * j])
// so that the views stay contiguous. Each row has kRowSlack finite elements
// past n for the micro-kernels' whole-vector reads.
template <typename acc_t>
struct InputRows {
  InputRows(const RowConvParams& p, int64_t tile)
      : p(p),
        phase_len((p.forward_window(tile) + p.stride - 1) / p.stride + kRowSlack),
        phases(p.in_per_group * p.stride * phase_len),
        window(p.stride > 1 ? p.forward_window(tile) : 0),
        rows(p.in_per_group * p.kernel_size) {
    for (int64_t ci = 0; ci < p.in_per_group; ++ci) {
      for (int64_t k = 0; k < p.kernel_size; ++k) {
        const int64_t u = k * p.dilation;
        rows[ci * p.kernel_size + k] = channel(ci) + (u % p.stride) * phase_len + u / p.stride;
      }
    }
  }

  // Fills the rows of channels [ci_begin, ci_end) of the group (all by default).
  template <typename scalar_t>
  void gather(const scalar_t* x, int64_t b, int64_t h, int64_t g, int64_t t0, int64_t n,
              int64_t ci_begin = 0, int64_t ci_end = -1) {
    const int64_t start = p.input_position(t0, 0), span = p.forward_window(n), s = p.stride;
    if (ci_end < 0) ci_end = p.in_per_group;
    for (int64_t ci = ci_begin; ci < ci_end; ++ci) {
      acc_t* base = channel(ci);
      const int64_t c = g * p.in_per_group + ci;
      const scalar_t* row = x + p.in_offset(b, c, h, 0);
      if (s == 1) {
        load_window(row, p.width, p.in_stride_w, start, phase_len, base);
        continue;
      }
      load_window(row, p.width, p.in_stride_w, start, span, window.data());
      for (int64_t q = 0; q < s; ++q) {
        acc_t* phase = base + q * phase_len;
        int64_t j = 0;
        for (int64_t u = q; u < span; u += s) phase[j++] = window[u];
        std::fill(phase + j, phase + phase_len, acc_t(0));
      }
    }
  }

  acc_t* channel(int64_t ci) { return phases.data() + ci * p.stride * phase_len; }

  const RowConvParams& p;
  const int64_t phase_len;
  std::vector<acc_t> phases, window;
  std::vector<const acc_t*> rows;
};

}  // namespace rowconv::cpu
