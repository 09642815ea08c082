// Tiling and window loads shared by the CPU kernels.
//
// Every CPU kernel works on tiles along the width: it loads the input window
// that a tile reads (one channel at a time, converted to the accumulation type,
// zero where the window hangs over the padding), then runs unit-stride
// multiply-add loops over that window. Each output element is owned by exactly
// one work item and is reduced in a fixed order, so results do not depend on
// the number of threads.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "../row_conv1d_params.h"

namespace rowconv::cpu {

// Width of a tile when `channels` accumulator rows of it must stay resident
// together: keeps the accumulators around 32 KiB of floats.
inline int64_t tile_width(int64_t channels, int64_t length) {
  const int64_t target = 8192 / std::max<int64_t>(channels, 1);
  const int64_t tile = std::clamp<int64_t>(target, 64, 1024);
  return std::min(tile, std::max<int64_t>(length, 1));
}

inline int64_t tile_count(int64_t length, int64_t tile) { return (length + tile - 1) / tile; }

// Smallest number of work items worth handing to a thread, given the
// multiply-adds of one item, so that tiny problems stay on one thread.
inline int64_t grain_for(int64_t madds_per_item) {
  constexpr int64_t kMinMaddsPerThread = 32768;  // a few microseconds of work
  return std::max<int64_t>(1, kMinMaddsPerThread / std::max<int64_t>(madds_per_item, 1));
}

// window[u] = x[b, c, h, start + u] for u in [0, span): zero outside [0, W).
template <typename scalar_t, typename acc_t>
void load_input_window(const RowConvParams& p, const scalar_t* x, int64_t b, int64_t c,
                       int64_t h, int64_t start, int64_t span, acc_t* window) {
  const int64_t lo = std::clamp<int64_t>(-start, 0, span);
  const int64_t hi = std::clamp<int64_t>(p.width - start, lo, span);
  std::fill(window, window + lo, acc_t(0));
  const scalar_t* src = x + p.in_offset(b, c, h, start + lo);
  const int64_t step = p.in_stride_w;
  for (int64_t u = lo; u < hi; ++u) window[u] = static_cast<acc_t>(src[(u - lo) * step]);
  std::fill(window + hi, window + span, acc_t(0));
}

// window[v] = up[start + v] for v in [0, span), where up is grad_out of row
// (b, co, h) upsampled by the stride (see RowConvParams::upsampled_source).
template <typename scalar_t, typename acc_t>
void load_upsampled_grad_window(const RowConvParams& p, const scalar_t* grad_out, int64_t b,
                                int64_t co, int64_t h, int64_t start, int64_t span,
                                acc_t* window) {
  const scalar_t* row = grad_out + p.gout_offset(b, co, h, 0);
  for (int64_t v = 0; v < span; ++v) {
    const int64_t t = p.upsampled_source(start + v);
    window[v] = t < 0 ? acc_t(0) : static_cast<acc_t>(row[t * p.gout_stride_w]);
  }
}

// dst[i] += w * src[i * stride] for i in [0, n): the inner loop of forward
// and grad-weight; unit stride is split out so that it vectorises.
template <typename acc_t>
inline void strided_axpy(acc_t* __restrict dst, const acc_t* __restrict src, acc_t w, int64_t n,
                         int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] += w * src[i];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] += w * src[i * stride];
  }
}

// sum_i a[i] * src[i * stride] for i in [0, n), in a fixed order.
template <typename acc_t>
inline acc_t strided_dot(const acc_t* __restrict a, const acc_t* __restrict src, int64_t n,
                         int64_t stride) {
  // Eight independent partial sums: vectorisable without -ffast-math and
  // still a fixed order of additions.
  acc_t part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  if (stride == 1) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) part[j] += a[i + j] * src[i + j];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) part[j] += a[i + j] * src[(i + j) * stride];
  }
  for (; i < n; ++i) part[i & 7] += a[i] * src[i * stride];
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

}  // namespace rowconv::cpu
