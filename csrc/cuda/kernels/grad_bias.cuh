// Gradient of the bias on CUDA (and on the CPU emulator):
//   grad_bias[h, co] = sum_b sum_t grad_out[b, co, h, t]
// A warp owns one (h, co) slice and one of G.splits fixed slices of the batch
// (b = split, split + splits, ...); its lanes stride over that slice's
// (b, t) pairs, coalesced along t, and a warp shuffle sums them. With
// several splits the partial sums go to a workspace and row_conv1d_sum_splits
// adds them in order: deterministic, no atomics, and enough blocks to keep
// the GPU busy when there are few (h, co) and a long batch.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "block_reduce.cuh"
#include "launch_geometry.h"

namespace rowconv::cuda {

// partial == nullptr (one split): the warps write grad_bias themselves.
ROWCONV_UNBOUNDED_KERNEL(row_conv1d_grad_bias_partial)
template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL void row_conv1d_grad_bias_partial(RowConvParams p, BiasGeometry G,
                                                 const scalar_t* __restrict__ grad_out,
                                                 acc_t* __restrict__ partial,
                                                 scalar_t* __restrict__ grad_bias) {
  constexpr int64_t kWarp = 32;
  const int64_t warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    const int64_t split = blk % G.splits;
    const int64_t slice = blk / G.splits * warps + warp;  // = bias_offset(h, co)
    acc_t acc = 0;
    if (slice < G.slices) {
      const int64_t h = slice / p.out_channels, co = slice % p.out_channels;
      const int64_t pairs = (p.batch - split + G.splits - 1) / G.splits * p.out_width;
      for (int64_t i = lane; i < pairs; i += kWarp) {
        const int64_t b = split + i / p.out_width * G.splits, t = i % p.out_width;
        acc += static_cast<acc_t>(grad_out[p.gout_offset(b, co, h, t)]);
      }
    }
    acc = warp_sum(acc);  // every lane calls it
    if (lane == 0 && slice < G.slices) {
      if (partial != nullptr)
        partial[split * G.slices + slice] = acc;
      else
        grad_bias[slice] = static_cast<scalar_t>(acc);
    }
  }
}

}  // namespace rowconv::cuda
