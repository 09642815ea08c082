// Gradient of the weight on CUDA (and on the CPU emulator):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// x is the virtual row prefix ++ x where x has a prefix (row_conv1d_params.h).
// Tiled kernel (geometry in launch_geometry.h): per (h, group) a GEMM
// reduced over (b, t), from grad_out and x tiles in shared memory, each
// thread a kRows x kTaps register tile; a fixed slice of the (b, t) steps per
// block, the slices' partial sums added in order by row_conv1d_sum_splits
// (block_reduce.cuh). Direct kernel: the general path for
// kernels too long for the tiles; a block owns (h, co, ci, kTaps taps) and
// reduces over (b, t) with a block reduction. Both deterministic, no atomics.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "block_reduce.cuh"
#include "launch_geometry.h"
#include "load_tile.cuh"

namespace rowconv::cuda {

// partial == nullptr (one split): the block writes grad_w itself.
ROWCONV_DECLARE_LAUNCH_BOUNDS(row_conv1d_grad_weight_tiled, kGradWeightThreads)
template <typename scalar_t, typename acc_t, int kRows, int kTaps>
ROWCONV_GLOBAL ROWCONV_LAUNCH_BOUNDS(row_conv1d_grad_weight_tiled) void row_conv1d_grad_weight_tiled(
    RowConvParams p, GradWeightGeometry G, const scalar_t* __restrict__ grad_out,
    const scalar_t* __restrict__ x, acc_t* __restrict__ partial, scalar_t* __restrict__ grad_w) {
  acc_t* gs = dynamic_shared<acc_t>();       // [co_block][go_pitch]
  acc_t* xs = gs + G.co_block * G.go_pitch;  // [ci_block][x_pitch]
  acc_t* folded = gs;                        // after the steps: [reduce_lanes - 1][out_threads][kRows * kTaps]
  // Thread tile: columns (ci, tap chunk) vary fastest, so a warp shares grad_out rows.
  const int64_t o = threadIdx.x % G.out_threads, lane = threadIdx.x / G.out_threads;
  const int64_t columns = G.ci_block * G.tap_chunks;
  const int64_t m = o / columns, ci_local = o % columns / G.tap_chunks;
  const int64_t k0 = o % G.tap_chunks * kTaps;
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    const int64_t split = blk % G.splits;
    int64_t rest = blk / G.splits;
    const int64_t cib = rest % G.ci_blocks;
    rest /= G.ci_blocks;
    const int64_t cob = rest % G.co_blocks;
    rest /= G.co_blocks;
    const int64_t g = rest % p.groups, h = rest / p.groups;
    const int64_t co_base = cob * G.co_block, ci_base = cib * G.ci_block;  // within the group
    const int64_t nco = p.out_per_group - co_base < G.co_block ? p.out_per_group - co_base : G.co_block;
    const int64_t nci = p.in_per_group - ci_base < G.ci_block ? p.in_per_group - ci_base : G.ci_block;

    // Rows past nco / nci keep whatever the shared memory held: the thread
    // tiles reading them are never written out.
    acc_t acc[kRows][kTaps];
    for (int i = 0; i < kRows; ++i)
      for (int kk = 0; kk < kTaps; ++kk) acc[i][kk] = acc_t(0);
    for (int64_t step = split; step < G.steps; step += G.splits) {
      const int64_t b = step / G.t_tiles, t0 = step % G.t_tiles * G.positions;
      load_tile(gs, G.go_pitch, grad_out + p.gout_offset(b, g * p.out_per_group + co_base, h, 0),
                p.gout_stride_c, p.gout_stride_w, p.out_width, t0, G.positions, nco);
      load_tile(xs, G.x_pitch, x + p.in_offset(b, g * p.in_per_group + ci_base, h, 0), p.in_stride_c,
                p.in_stride_w, p.width, p.input_position(t0, 0), G.x_span, nci,
                p.prefix_row<scalar_t>(b, g * p.in_per_group + ci_base, h), p.pre_stride_c,
                p.pre_stride_w, p.prefix_width);
      sync_threads();
      // Shared-memory offsets fit in int (the tiles fit in the budget): 32-bit index math.
      const int nt = static_cast<int>(p.out_width - t0 < G.positions ? p.out_width - t0 : G.positions);
      const int go_pitch = static_cast<int>(G.go_pitch), lanes = static_cast<int>(G.reduce_lanes);
      const int stride = static_cast<int>(p.stride), dilation = static_cast<int>(p.dilation);
      const acc_t* gr = gs + static_cast<int>(m) * kRows * go_pitch;
      const acc_t* xr = xs + static_cast<int>(ci_local * G.x_pitch + k0 * p.dilation);
      for (int u = static_cast<int>(lane); u < nt; u += lanes) {
        acc_t gv[kRows], xv[kTaps];
        for (int i = 0; i < kRows; ++i) gv[i] = gr[i * go_pitch + u];
        for (int kk = 0; kk < kTaps; ++kk) xv[kk] = xr[u * stride + kk * dilation];
        for (int i = 0; i < kRows; ++i)
          for (int kk = 0; kk < kTaps; ++kk) acc[i][kk] += gv[i] * xv[kk];
      }
      sync_threads();  // the next step overwrites the tiles
    }
    // Loops over acc have constant bounds, so that it stays in registers.
    if (G.reduce_lanes > 1) {  // fold the lanes, in lane order
      constexpr int kTile = kRows * kTaps;
      if (lane > 0)
        for (int i = 0; i < kRows; ++i)
          for (int kk = 0; kk < kTaps; ++kk)
            folded[((lane - 1) * G.out_threads + o) * kTile + i * kTaps + kk] = acc[i][kk];
      sync_threads();
      if (lane == 0)
        for (int64_t l = 1; l < G.reduce_lanes; ++l)
          for (int i = 0; i < kRows; ++i)
            for (int kk = 0; kk < kTaps; ++kk)
              acc[i][kk] += folded[((l - 1) * G.out_threads + o) * kTile + i * kTaps + kk];
      sync_threads();  // the next block's tiles overwrite `folded`
    }
    if (lane == 0 && ci_local < nci) {
      for (int i = 0; i < kRows; ++i) {
        for (int kk = 0; kk < kTaps; ++kk) {
          if (m * kRows + i >= nco || k0 + kk >= p.kernel_size) continue;
          const int64_t co = g * p.out_per_group + co_base + m * kRows + i;
          const int64_t at = p.weight_offset(h, co, ci_base + ci_local, k0 + kk);
          if (partial != nullptr)
            partial[split * G.outputs + at] = acc[i][kk];
          else
            grad_w[at] = static_cast<scalar_t>(acc[i][kk]);
        }
      }
    }
  }
}

ROWCONV_UNBOUNDED_KERNEL(row_conv1d_grad_weight_direct)
template <typename scalar_t, typename acc_t, int kTaps>
ROWCONV_GLOBAL void row_conv1d_grad_weight_direct(RowConvParams p, ReduceGeometry G,
                                                  const scalar_t* __restrict__ grad_out,
                                                  const scalar_t* __restrict__ x,
                                                  scalar_t* __restrict__ grad_w) {
  acc_t* scratch = dynamic_shared<acc_t>();  // one value per warp
  const int64_t pairs = p.batch * p.out_width;
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    int64_t rest = blk;
    const int64_t chunk = rest % G.tap_chunks;
    rest /= G.tap_chunks;
    const int64_t ci = rest % p.in_per_group;
    rest /= p.in_per_group;
    const int64_t co = rest % p.out_channels, h = rest / p.out_channels;
    const int64_t c = co / p.out_per_group * p.in_per_group + ci;  // input channel of x
    const int64_t k0 = chunk * kTaps;

    acc_t acc[kTaps];
    for (int kk = 0; kk < kTaps; ++kk) acc[kk] = acc_t(0);
    for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
      const int64_t b = i / p.out_width, t = i % p.out_width;
      const acc_t gv = static_cast<acc_t>(grad_out[p.gout_offset(b, co, h, t)]);
      for (int kk = 0; kk < kTaps; ++kk) {
        if (k0 + kk < p.kernel_size)
          acc[kk] += gv * static_cast<acc_t>(p.virtual_input(x, b, c, h, p.input_position(t, k0 + kk)));
      }
    }
    for (int kk = 0; kk < kTaps; ++kk) {
      const acc_t total = block_sum(acc[kk], scratch);
      if (threadIdx.x == 0 && k0 + kk < p.kernel_size)
        grad_w[p.weight_offset(h, co, ci, k0 + kk)] = static_cast<scalar_t>(total);
    }
  }
}

}  // namespace rowconv::cuda
