// Forward on CUDA (and on the CPU emulator):
//   y[b, co, h, t] = bias[h, co]
//       + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * x[b, ci, h, t*stride - pad_left + k*dilation]
// x is the virtual row prefix ++ x where x has a prefix (row_conv1d_params.h).
// Tiled kernel: a block owns (b, h, group, G.lanes * kOut output channels,
// a tile of G.tile positions); a thread owns kPos positions G.lane_threads
// apart (conflict-free shared-memory reads) and kOut channels: kOut * kPos
// accumulators, so each tap of a channel costs kPos + kOut shared-memory
// reads for kOut * kPos FMAs. The input tile of a chunk of the group's
// channels (with its halo, zeros in the padding) and their weights are
// loaded once into shared memory and reused by every channel and position
// of the block: with lanes * kOut >= the group's output channels (up to 512
// threads per block), the whole group is served by one load. kTaps > 0 fixes
// the kernel size at compile time (unrolled taps); 0 reads it from the params.
// Direct kernel: the general path when even one channel's tile does not fit
// in shared memory (very long dilated kernels): one thread per output.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "launch_geometry.h"
#include "load_tile.cuh"

namespace rowconv::cuda {

ROWCONV_DECLARE_LAUNCH_BOUNDS(row_conv1d_forward_tiled, kMaxTileThreads)
template <typename scalar_t, typename acc_t, int kOut, int kPos, int kTaps, bool kSlide>
ROWCONV_GLOBAL ROWCONV_LAUNCH_BOUNDS(row_conv1d_forward_tiled) void row_conv1d_forward_tiled(
    RowConvParams p, TileGeometry G, const scalar_t* __restrict__ x,
    const scalar_t* __restrict__ weight, const scalar_t* __restrict__ bias,
    scalar_t* __restrict__ y) {
  const int64_t K = kTaps > 0 ? kTaps : p.kernel_size;
  const int64_t block_channels = G.lanes * kOut;  // output channels of a block
  const int64_t lane = threadIdx.x / G.lane_threads, first = threadIdx.x % G.lane_threads;
  acc_t* xs = dynamic_shared<acc_t>();  // [chunk][span]
  acc_t* ws = xs + G.chunk * G.span;    // [block_channels][chunk][K]
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    const TileBlock at = tile_block(blk, G, p);
    const int64_t b = at.b, h = at.h, g = at.g, t0 = at.tile * G.tile;
    const int64_t block_co0 = at.channel_block * block_channels;  // within the group
    const int64_t block_nco = p.out_per_group - block_co0 < block_channels ? p.out_per_group - block_co0
                                                                            : block_channels;
    const int64_t co0 = g * p.out_per_group + block_co0 + lane * kOut;
    const int64_t nco = block_nco - lane * kOut;  // this thread's channels (<= 0: an idle lane)
    const int64_t start = p.input_position(t0, 0);

    acc_t acc[kOut][kPos];
    for (int j = 0; j < kOut; ++j) {
      const acc_t b0 = bias != nullptr && j < nco ? static_cast<acc_t>(bias[p.bias_offset(h, co0 + j)]) : acc_t(0);
      for (int q = 0; q < kPos; ++q) acc[j][q] = b0;
    }
    for (int64_t c0 = 0; c0 < p.in_per_group; c0 += G.chunk) {
      const int64_t nc = p.in_per_group - c0 < G.chunk ? p.in_per_group - c0 : G.chunk;
      load_tile(xs, G.span, x + p.in_offset(b, g * p.in_per_group + c0, h, 0), p.in_stride_c,
                p.in_stride_w, p.width, start, G.span, nc,
                p.prefix_row<scalar_t>(b, g * p.in_per_group + c0, h), p.pre_stride_c,
                p.pre_stride_w, p.prefix_width);
      load_weight_tile(ws, weight, block_channels, block_nco, nc, K, [&](int j, int c, int k) {
        return p.weight_offset(h, g * p.out_per_group + block_co0 + j, c0 + c, k);
      });
      sync_threads();
      // Positions past the row read the tile's halo (in bounds) and are not written.
      if (nco > 0) {
        // Shared-memory offsets fit in int (the tiles fit in the budget): 32-bit index math.
        const int n = static_cast<int>(nc), taps = static_cast<int>(K), span = static_cast<int>(G.span);
        const acc_t* wl = ws + static_cast<int>(lane) * kOut * n * taps;
        if constexpr (kSlide) {
          for (int c = 0; c < n; ++c) {
            const acc_t* xr = xs + c * span + static_cast<int>(first) * kPos;
            acc_t window[2 * kPos];  // the thread's inputs for taps k0 .. k0 + kPos - 1
            for (int i = 0; i < kPos; ++i) window[i] = xr[i];
            for (int k0 = 0; k0 < taps; k0 += kPos) {
              for (int i = 0; i < kPos; ++i) window[kPos + i] = xr[k0 + kPos + i];  // inside the span
              for (int kk = 0; kk < kPos; ++kk) {
                if (k0 + kk >= taps) continue;
                acc_t wv[kOut];
                for (int j = 0; j < kOut; ++j) wv[j] = wl[(j * n + c) * taps + k0 + kk];
                for (int j = 0; j < kOut; ++j)
                  for (int q = 0; q < kPos; ++q) acc[j][q] += wv[j] * window[q + kk];
              }
              for (int i = 0; i < kPos; ++i) window[i] = window[kPos + i];
            }
          }
        } else {
          const int stride = static_cast<int>(p.stride), dilation = static_cast<int>(p.dilation);
          const int apart = static_cast<int>(G.lane_threads) * stride;  // between a thread's positions
          const acc_t* xl = xs + static_cast<int>(first) * stride;
          for (int c = 0; c < n; ++c) {
            for (int k = 0; k < taps; ++k) {
              acc_t xv[kPos], wv[kOut];
              for (int q = 0; q < kPos; ++q) xv[q] = xl[c * span + q * apart + k * dilation];
              for (int j = 0; j < kOut; ++j) wv[j] = wl[(j * n + c) * taps + k];
              for (int j = 0; j < kOut; ++j)
                for (int q = 0; q < kPos; ++q) acc[j][q] += wv[j] * xv[q];
            }
          }
        }
      }
#ifndef ROWCONV_PLANTED_MISSING_BARRIER  // the sanitizer self-test removes it
      sync_threads();  // the next chunk overwrites the tiles
#endif
    }
    for (int q = 0; q < kPos; ++q) {
      const int64_t t = t0 + (kSlide ? first * kPos + q : first + q * G.lane_threads);
      if (t < p.out_width)
        for (int j = 0; j < kOut; ++j)  // constant bounds keep acc in registers
          if (j < nco) y[p.output_offset(b, co0 + j, h, t)] = static_cast<scalar_t>(acc[j][q]);
    }
  }
}

ROWCONV_UNBOUNDED_KERNEL(row_conv1d_forward_direct)
template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL void row_conv1d_forward_direct(RowConvParams p, int64_t total,
                                              const scalar_t* __restrict__ x,
                                              const scalar_t* __restrict__ weight,
                                              const scalar_t* __restrict__ bias,
                                              scalar_t* __restrict__ y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i % p.out_width, h = i / p.out_width % p.rows;
    const int64_t co = i / p.out_width / p.rows % p.out_channels;
    const int64_t b = i / p.out_width / p.rows / p.out_channels;
    const int64_t g = co / p.out_per_group;
    acc_t acc = bias != nullptr ? static_cast<acc_t>(bias[p.bias_offset(h, co)]) : acc_t(0);
    for (int64_t c = 0; c < p.in_per_group; ++c) {
      for (int64_t k = 0; k < p.kernel_size; ++k) {
        acc += static_cast<acc_t>(weight[p.weight_offset(h, co, c, k)]) *
               static_cast<acc_t>(p.virtual_input(x, b, g * p.in_per_group + c, h, p.input_position(t, k)));
      }
    }
    y[p.output_offset(b, co, h, t)] = static_cast<scalar_t>(acc);
  }
}

}  // namespace rowconv::cuda
