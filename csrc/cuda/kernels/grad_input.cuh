// Gradient of the input on CUDA (and on the CPU emulator):
//   grad_x[b, ci, h, j] = sum_{co in group(ci)} sum_k weight[h, co, ci, k] * grad_out[b, co, h, t],
//   t = (j + pad_left - k*dilation) / stride when exact and 0 <= t < Wout.
// Tiled kernel: a block owns (b, h, group, G.lanes * kIn input channels, a
// tile of G.tile positions j), laid out like the forward's (kPos positions
// and kIn channels per thread); the grad_out tile
// of a chunk of output channels (outputs t_lo .. t_lo + span - 1, zeros
// outside [0, Wout)) and the weights are loaded once into shared memory and
// serve every input channel of the block. kUnitStride drops the
// divisibility test. Direct kernel: the general path when one channel's tile does not fit.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "launch_geometry.h"
#include "load_tile.cuh"

namespace rowconv::cuda {

ROWCONV_DECLARE_LAUNCH_BOUNDS(row_conv1d_grad_input_tiled, kMaxTileThreads)
template <typename scalar_t, typename acc_t, int kIn, int kPos, bool kUnitStride>
ROWCONV_GLOBAL ROWCONV_LAUNCH_BOUNDS(row_conv1d_grad_input_tiled) void row_conv1d_grad_input_tiled(
    RowConvParams p, TileGeometry G, const scalar_t* __restrict__ grad_out,
    const scalar_t* __restrict__ weight, scalar_t* __restrict__ grad_x) {
  const int64_t K = p.kernel_size, s = kUnitStride ? 1 : p.stride;
  const int64_t block_channels = G.lanes * kIn;  // input channels of a block
  const int64_t lane = threadIdx.x / G.lane_threads, first = threadIdx.x % G.lane_threads;
  acc_t* gs = dynamic_shared<acc_t>();  // [chunk][span]
  acc_t* ws = gs + G.chunk * G.span;    // [block_channels][chunk][K]
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    const TileBlock at = tile_block(blk, G, p);
    const int64_t b = at.b, h = at.h, g = at.g, j0 = at.tile * G.tile;
    const int64_t block_ci0 = at.channel_block * block_channels;  // within the group
    const int64_t block_nci = p.in_per_group - block_ci0 < block_channels ? p.in_per_group - block_ci0
                                                                           : block_channels;
    const int64_t ci0 = block_ci0 + lane * kIn;  // within the group
    const int64_t nci = block_nci - lane * kIn;  // this thread's channels (<= 0: an idle lane)
    const int64_t t_lo = floor_div(p.grad_numerator(j0, K - 1), s);

    acc_t acc[kIn][kPos];
    for (int i = 0; i < kIn; ++i)
      for (int q = 0; q < kPos; ++q) acc[i][q] = acc_t(0);
    for (int64_t c0 = 0; c0 < p.out_per_group; c0 += G.chunk) {
      const int64_t nc = p.out_per_group - c0 < G.chunk ? p.out_per_group - c0 : G.chunk;
      load_tile(gs, G.span, grad_out + p.gout_offset(b, g * p.out_per_group + c0, h, 0),
                p.gout_stride_c, p.gout_stride_w, p.out_width, t_lo, G.span, nc);
      load_weight_tile(ws, weight, block_channels, block_nci, nc, K, [&](int i, int c, int k) {
        return p.weight_offset(h, g * p.out_per_group + c0 + c, block_ci0 + i, k);
      });
      sync_threads();
      // Positions past the row read inside the tile and are not written.
      if (nci > 0) {
        // Shared-memory offsets fit in int (the tiles fit in the budget): 32-bit index math.
        const int n = static_cast<int>(nc), taps = static_cast<int>(K), span = static_cast<int>(G.span);
        const int stride = static_cast<int>(s), dilation = static_cast<int>(p.dilation);
        const int apart = static_cast<int>(G.lane_threads);  // between a thread's positions
        // offset of the thread's first position and tap 0 from t_lo * s (>= 0 for every tap)
        const int e0 = static_cast<int>(p.grad_numerator(j0 + first, 0) - t_lo * s);
        const acc_t* wl = ws + static_cast<int>(lane) * kIn * n * taps;
        for (int c = 0; c < n; ++c) {
          for (int k = 0; k < taps; ++k) {
            acc_t gv[kPos], wv[kIn];
            for (int q = 0; q < kPos; ++q) {
              const int e = e0 - k * dilation + q * apart;
              gv[q] = kUnitStride ? gs[c * span + e] : e % stride == 0 ? gs[c * span + e / stride] : acc_t(0);
            }
            for (int i = 0; i < kIn; ++i) wv[i] = wl[(i * n + c) * taps + k];
            for (int i = 0; i < kIn; ++i)
              for (int q = 0; q < kPos; ++q) acc[i][q] += wv[i] * gv[q];
          }
        }
      }
      sync_threads();  // the next chunk overwrites the tiles
    }
    for (int q = 0; q < kPos; ++q) {
      const int64_t j = j0 + first + q * G.lane_threads;
      if (j < p.width)
        for (int i = 0; i < kIn; ++i)  // constant bounds keep acc in registers
          if (i < nci)
            grad_x[p.grad_input_offset(b, g * p.in_per_group + ci0 + i, h, j)] =
                static_cast<scalar_t>(acc[i][q]);
    }
  }
}

ROWCONV_UNBOUNDED_KERNEL(row_conv1d_grad_input_direct)
template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL void row_conv1d_grad_input_direct(RowConvParams p, int64_t total,
                                                 const scalar_t* __restrict__ grad_out,
                                                 const scalar_t* __restrict__ weight,
                                                 scalar_t* __restrict__ grad_x) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % p.width, h = i / p.width % p.rows;
    const int64_t ci = i / p.width / p.rows % p.in_channels;
    const int64_t b = i / p.width / p.rows / p.in_channels;
    const int64_t g = ci / p.in_per_group;
    acc_t acc = 0;
    for (int64_t c = 0; c < p.out_per_group; ++c) {
      const int64_t co = g * p.out_per_group + c;
      for (int64_t k = 0; k < p.kernel_size; ++k) {
        const int64_t e = p.grad_numerator(j, k);
        if (e < 0 || e % p.stride != 0 || e / p.stride >= p.out_width) continue;
        acc += static_cast<acc_t>(weight[p.weight_offset(h, co, ci % p.in_per_group, k)]) *
               static_cast<acc_t>(grad_out[p.gout_offset(b, co, h, e / p.stride)]);
      }
    }
    grad_x[p.grad_input_offset(b, ci, h, j)] = static_cast<scalar_t>(acc);
  }
}

}  // namespace rowconv::cuda
